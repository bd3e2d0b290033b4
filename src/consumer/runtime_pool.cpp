#include "consumer/runtime_pool.hpp"

#include "emulate/environment.hpp"
#include "process/child.hpp"

#include <spdlog/spdlog.h>

namespace funcie::consumer {

namespace asio = boost::asio;

namespace {

runtime_api::result error_result(std::string type, std::string message) {
  runtime_api::result r;
  r.outcome = runtime_api::result::kind::function_error;
  r.body = runtime_api::format_error(runtime_api::function_error{type, std::move(message), {}});
  r.error_type = std::move(type);
  return r;
}

/// Field `index` (0-based) of "arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]".
std::string arn_field(std::string_view arn, std::size_t index) {
  for (std::size_t i = 0; i < index; ++i) {
    auto colon = arn.find(':');
    if (colon == std::string_view::npos) return {};
    arn.remove_prefix(colon + 1);
  }
  return std::string(arn.substr(0, arn.find(':')));
}

}  // namespace

const std::vector<std::string>& developer_variables() {
  static const std::vector<std::string> names = {
      "AWS_PROFILE",
      "AWS_DEFAULT_PROFILE",
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
      "AWS_CONFIG_FILE",
      "AWS_SHARED_CREDENTIALS_FILE",
      "AWS_CA_BUNDLE",
      "AWS_ENDPOINT_URL",
      "AWS_SDK_LOAD_CONFIG",
      // Not AWS settings, but a sanitized local runtime should report where its build says.
      "ASAN_OPTIONS",
      "UBSAN_OPTIONS",
      "LSAN_OPTIONS",
  };
  return names;
}

emulate::function_config config_for(const runtime_pool_options& options,
                                    const tunnel::request& first) {
  const auto& fn = first.function;
  emulate::function_config config;
  config.name = fn.name.empty() ? options.app : fn.name;
  config.region = fn.region;
  if (config.region.empty()) config.region = arn_field(first.context.function_arn, 3);
  if (config.region.empty()) config.region = "us-east-1";
  if (auto account = arn_field(first.context.function_arn, 4); !account.empty()) {
    config.account = account;
  }
  if (fn.memory_mb != 0) config.memory_mb = fn.memory_mb;
  if (!fn.handler.empty()) config.handler = fn.handler;
  // Forwarded invocations carry the cloud's deadline; this only bounds one that does not.
  config.timeout = std::chrono::seconds(900);
  // Not Lambda's 10 s: a runtime started under a debugger may wait at its start (node
  // --inspect-brk, gdbserver) for as long as the developer takes to attach.
  config.init_timeout = std::chrono::seconds(900);
  config.concurrency = options.concurrency;
  config.command = options.command;
  config.environment = options.environment;
  // What the cloud said overrides emulate's defaults for these (set after Lambda's own).
  if (!fn.version.empty()) config.environment["AWS_LAMBDA_FUNCTION_VERSION"] = fn.version;
  if (!fn.log_group.empty()) config.environment["AWS_LAMBDA_LOG_GROUP_NAME"] = fn.log_group;
  if (!fn.log_stream.empty()) config.environment["AWS_LAMBDA_LOG_STREAM_NAME"] = fn.log_stream;
  config.working_directory = options.working_directory;
  config.output = options.output;
  config.output_room = options.output_room;
  config.on_invoke = options.on_invoke;
  if (options.forward_credentials && !first.credentials.empty()) {
    // The function's role, as Lambda gives it: the developer's own settings stay out.
    config.environment["AWS_ACCESS_KEY_ID"] = first.credentials.access_key_id;
    config.environment["AWS_SECRET_ACCESS_KEY"] = first.credentials.secret_access_key;
    if (!first.credentials.session_token.empty()) {
      config.environment["AWS_SESSION_TOKEN"] = first.credentials.session_token;
    }
  } else {
    config.inherit_environment = developer_variables();
  }
  return config;
}

runtime_pool::runtime_pool(asio::any_io_executor executor, runtime_pool_options options)
    : executor_(std::move(executor)), options_(std::move(options)) {}

runtime_pool::~runtime_pool() = default;

asio::awaitable<runtime_api::result> runtime_pool::run(const tunnel::request& req) {
  if (shutting_down_) {
    co_return error_result("Funcie.ConsumerLeft", "the local runtimes are shutting down");
  }
  if (!emulator_) {
    auto config = config_for(options_, req);
    spdlog::debug("starting execution environments for function {} ({} MB, {})", config.name,
                  config.memory_mb, config.region);
    emulator_ = std::make_unique<emulate::emulator>(executor_, std::move(config));
  } else if (req.function != tunnel::function_info{} &&
             req.function.name != emulator_->config().name) {
    spdlog::debug("request for function {} runs in the environments made for {}", req.function.name,
                  emulator_->config().name);
  }
  runtime_api::invocation inv{req.context, req.payload};
  emulate::outcome out;
  try {
    // A request still queued when the forwarder is about to stop waiting never runs: its
    // caller has an answer (this one, in time to arrive first).
    const std::int64_t start_by = req.answer_by_ms != 0 ? req.answer_by_ms - answer_transit_ms : 0;
    out = co_await emulator_->invoke(std::move(inv), start_by);
  } catch (const process::spawn_error& e) {
    co_return error_result("Runtime.InvalidEntrypoint", e.what());
  } catch (const std::exception& e) {
    if (shutting_down_) {
      co_return error_result("Funcie.ConsumerLeft", "the local runtimes are shutting down");
    }
    throw;
  }
  runtime_api::result r;
  r.outcome = out.function_error ? runtime_api::result::kind::function_error
                                 : runtime_api::result::kind::success;
  r.body = std::move(out.body);
  r.content_type = out.function_error ? std::string() : std::move(out.content_type);
  r.error_type = std::move(out.error_type);
  co_return r;
}

void runtime_pool::restart() {
  if (emulator_) emulator_->restart();
}

std::optional<environment_report> runtime_pool::report_of(unsigned index) const {
  if (!emulator_) return std::nullopt;
  const auto* env = emulator_->environment_at(index);
  if (env == nullptr) return std::nullopt;
  return environment_report{env->runtime_pid(), env->last_init()};
}

runner runtime_pool::as_runner() {
  return [this](const tunnel::request& req) { return run(req); };
}

asio::awaitable<void> runtime_pool::shut_down(std::chrono::milliseconds grace) {
  shutting_down_ = true;
  if (emulator_) co_await emulator_->shut_down(grace);
}

}  // namespace funcie::consumer
