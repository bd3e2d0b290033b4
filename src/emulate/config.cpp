#include "emulate/config.hpp"

#include "util/ids.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>

namespace funcie::emulate {
namespace {

// Keys Lambda reserves: a function may not set them.
constexpr std::array<std::string_view, 18> reserved_keys = {
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
};

bool is_valid_key(std::string_view key) {
  if (key.empty() || !(std::isalpha(static_cast<unsigned char>(key[0])))) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool is_valid_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

bool is_valid_region(std::string_view region) {
  return !region.empty() && region.size() <= 32 &&
         std::all_of(region.begin(), region.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
         });
}

}  // namespace

std::string function_config::arn() const {
  return fmt::format("arn:aws:lambda:{}:{}:function:{}", region, account, name);
}

void validate(const function_config& config) {
  if (!is_valid_name(config.name)) {
    throw config_error("--function must be 1 to 64 letters, digits, '-' or '_' (got '" +
                       config.name + "')");
  }
  if (!is_valid_region(config.region)) {
    throw config_error("the region must look like 'us-east-1' (got '" + config.region + "')");
  }
  using std::chrono::seconds;
  if (config.timeout < seconds(1) || config.timeout > seconds(900)) {
    throw config_error("--timeout must be between 1 and 900 seconds, as on Lambda");
  }
  if (config.memory_mb < 128 || config.memory_mb > 10240) {
    throw config_error("--memory must be between 128 and 10240 MB, as on Lambda");
  }
  if (config.concurrency < 1 || config.concurrency > 1000) {
    throw config_error("--concurrency must be between 1 and 1000");
  }
  if (config.command.empty()) {
    throw config_error("no runtime command: give it after '--', e.g. -- ./bootstrap");
  }
  if (!config.working_directory.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_directory(config.working_directory, ec)) {
      throw config_error("the working directory '" + config.working_directory +
                         "' is not a directory");
    }
  }
}

void add_environment(function_config& config, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos) {
    throw config_error("--env takes KEY=VALUE (got '" + assignment.substr(0, 64) + "')");
  }
  auto key = assignment.substr(0, eq);
  if (!is_valid_key(key)) {
    throw config_error("--env key '" + key.substr(0, 64) +
                       "' must start with a letter and hold only letters, digits and '_'");
  }
  if (std::find(reserved_keys.begin(), reserved_keys.end(), key) != reserved_keys.end()) {
    throw config_error("--env key '" + key + "' is reserved by Lambda and set by funcie");
  }
  config.environment[key] = assignment.substr(eq + 1);
}

std::string new_log_stream_name() {
  auto now = std::chrono::system_clock::now();
  return fmt::format("{:%Y/%m/%d}/[$LATEST]{}",
                     fmt::gmtime(std::chrono::system_clock::to_time_t(now)), util::random_hex(32));
}

std::vector<std::string> runtime_environment(const function_config& config,
                                             const std::string& runtime_api,
                                             const std::string& log_stream) {
  auto inherited = [](const char* key, const char* fallback) {
    const char* value = std::getenv(key);
    return std::string(value && *value ? value : fallback);
  };
  std::error_code ec;
  auto task_root = std::filesystem::current_path(ec).string();
  if (!config.working_directory.empty()) {
    auto root = std::filesystem::absolute(config.working_directory, ec).lexically_normal();
    task_root = ec ? config.working_directory : root.string();
    if (task_root.size() > 1 && task_root.back() == '/') task_root.pop_back();
  }
  std::map<std::string, std::string> env = {
      {"AWS_LAMBDA_RUNTIME_API", runtime_api},
      {"AWS_LAMBDA_FUNCTION_NAME", config.name},
      {"AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"},
      {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", std::to_string(config.memory_mb)},
      {"AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/" + config.name},
      {"AWS_LAMBDA_LOG_STREAM_NAME", log_stream},
      {"AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"},
      {"AWS_REGION", config.region},
      {"AWS_DEFAULT_REGION", config.region},
      {"LAMBDA_TASK_ROOT", task_root},
      {"LAMBDA_RUNTIME_DIR", task_root},
      {"_HANDLER", config.handler},
      {"TZ", ":UTC"},
      {"LANG", "en_US.UTF-8"},
      // Not Lambda's, but a local runtime needs them to find its interpreter and packages.
      {"PATH", inherited("PATH", "/usr/local/bin:/usr/bin:/bin")},
      {"HOME", inherited("HOME", "/tmp")},
  };
  if (const char* ld = std::getenv("LD_LIBRARY_PATH")) env["LD_LIBRARY_PATH"] = ld;
  for (const auto& name : config.inherit_environment) {
    // The Runtime API address is funcie's to give: never one funcie itself was given.
    if (name.empty() || name.find('=') != std::string::npos || name == "AWS_LAMBDA_RUNTIME_API") {
      continue;
    }
    if (const char* value = std::getenv(name.c_str())) env[name] = value;
  }
  for (const auto& [key, value] : config.role_credentials) env[key] = value;
  for (const auto& [key, value] : config.environment) env[key] = value;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [key, value] : env) out.push_back(key + "=" + value);
  return out;
}

}  // namespace funcie::emulate
