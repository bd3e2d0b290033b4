#include "cli/target_flags.hpp"

#include "cli/command.hpp"
#include "tunnel/secrets.hpp"

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace funcie::cli {

namespace fs = std::filesystem;

namespace {

std::string variable(const getenv_fn& getenv, const char* name) {
  const char* value = getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

// A flag's path, absolute (the runtimes of funcie connect run in other directories); checked
// where it is used, with that check's one message.
std::string absolute(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  auto full = fs::absolute(path, ec);
  return ec ? path : full.lexically_normal().string();
}

std::string flag_of(std::string_view variable) {
  std::string flag = tunnel::sqs_option_key(variable);
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

const std::string& or_shared(const std::string& own, const std::string& shared) {
  return own.empty() ? shared : own;
}

std::string_view sqs_help(std::string_view variable) {
  if (variable == "FUNCIE_SQS_CLAIM_MS") return "how long an offer waits for a claim, ms";
  if (variable == "FUNCIE_SQS_ABSENT_MS")
    return "without ListQueueTags, how long nobody is assumed connected, ms";
  if (variable == "FUNCIE_SQS_PRESENCE_MS") return "how often the presence tag is refreshed, ms";
  if (variable == "FUNCIE_SQS_PRESENCE_IDLE_MS")
    return "the longest pause between presence reads, ms";
  if (variable == "FUNCIE_SQS_RECEIVE_BATCH") return "messages per long poll, 1..10";
  return "message size limit in bytes (0: ask the queue)";
}

}  // namespace

bool target_flags::given(const char* flag) const {
  return parsed_by != nullptr && parsed_by->count(flag) > 0;
}

void add_target_flags(CLI::App* sub, target_flags& flags, const target_help& help) {
  flags.parsed_by = sub;
  // The variables are read by hand (resolve_targets), not through CLI11's envname: a project
  // file comes between the flag and the variable.
  sub->add_option("--backend", flags.backend,
                  "The broker URL: redis://[user:password@]host[:port][/db], rediss://... or "
                  "sqs:// (default: the project's backend, else FUNCIE_BACKEND)");
  sub->add_option("--request-queue", flags.request_queue,
                  "sqs://: the request queue's URL (default: the project's request_queue, else "
                  "FUNCIE_REQUEST_QUEUE_URL)");
  sub->add_option("--response-queue", flags.response_queue,
                  "sqs://: the response queue's URL (default: the project's response_queue, "
                  "else FUNCIE_RESPONSE_QUEUE_URL)");
  sub->add_option("--app", flags.app,
                  or_shared(help.app,
                            "The app (tunnel) name the function forwards to (default: "
                            "FUNCIE_APP); without it, the project's functions"));
  sub->add_option("--ca-file", flags.ca_file, "TLS: a CA bundle (PEM) to trust for rediss://");
  sub->add_flag("--tls-insecure", flags.tls_insecure,
                "TLS: do not verify the broker's certificate (tests only)");
  sub->add_option("--secret-file", flags.secret_file,
                  or_shared(help.secret_file,
                            "The shared secret (the function's FUNCIE_SECRET): first line "
                            "current, second previous (default: the project's secret_file, else "
                            "FUNCIE_SECRET, FUNCIE_SECRET_PREVIOUS)"));
  sub->add_flag("--no-encrypt", flags.no_encrypt,
                "With a secret: sign messages without encrypting them (readable on the broker)");
  sub->add_option("--config,-c", flags.config,
                  or_shared(help.config,
                            "The project file (default: funcie.toml here or above "
                            "when --app is not given)"));
  sub->add_option("--only", flags.only,
                  or_shared(help.only, "Only this function of the project (repeatable)"))
      ->allow_extra_args(false);
  const auto& names = tunnel::sqs_option_names();
  for (std::size_t i = 0; i < names.size() && i < flags.sqs.size(); ++i) {
    sub->add_option("--" + flag_of(names[i]), flags.sqs[i],
                    fmt::format("sqs://: {} (default: the project's {}, else {}; docs/sqs.md)",
                                sqs_help(names[i]), tunnel::sqs_option_key(names[i]), names[i]))
        ->group("SQS tuning");
  }
}

std::optional<std::string> project_for(const target_flags& flags, const std::string& cwd) {
  const bool names_functions = !flags.config.empty() || !flags.only.empty();
  if (names_functions && !flags.app.empty()) {
    throw usage_error(
        "--app names one app outside a project file; to pick some of a project's functions, "
        "use --only NAME");
  }
  if (!flags.config.empty()) return flags.config;
  if (!flags.app.empty()) return std::nullopt;
  auto found = project::find_project(cwd);
  if (!found && !flags.only.empty()) {
    throw usage_error(
        "--only names a function of a funcie.toml, and there is none here or above: give "
        "--config FILE");
  }
  return found;
}

void apply_target_flags(const target_flags& flags, project::function_spec& spec) {
  if (!flags.backend.empty()) spec.backend = flags.backend;
  if (!flags.request_queue.empty()) spec.request_queue = flags.request_queue;
  if (!flags.response_queue.empty()) spec.response_queue = flags.response_queue;
  if (flags.given("--ca-file")) spec.ca_file = absolute(flags.ca_file);
  if (flags.given("--tls-insecure")) spec.tls_verify = !flags.tls_insecure;
  if (!flags.secret_file.empty()) spec.secret_file = absolute(flags.secret_file);
  if (flags.given("--no-encrypt") && flags.no_encrypt) spec.encrypt = false;
  const auto& names = tunnel::sqs_option_names();
  for (std::size_t i = 0; i < names.size() && i < flags.sqs.size(); ++i) {
    if (flags.sqs[i].empty()) continue;
    try {
      tunnel::set_sqs_option(spec.sqs, names[i], flags.sqs[i]);
    } catch (const tunnel::backend_config_error& e) {
      std::string message = e.what();
      message.replace(0, names[i].size(), "--" + flag_of(names[i]));
      throw usage_error(message);
    }
    spec.sqs_given.insert(std::string(names[i]));
  }
}

std::vector<project::function_spec> resolve_targets(const target_flags& flags,
                                                    const std::optional<std::string>& project_path,
                                                    const getenv_fn& getenv) {
  std::vector<project::function_spec> specs;
  if (!project_path) {
    project::function_spec spec;
    spec.app = flags.app.empty() ? variable(getenv, "FUNCIE_APP") : flags.app;
    spec.name = spec.app;
    specs.push_back(std::move(spec));
  } else {
    auto file = project::load_project(*project_path);
    for (const auto& name : flags.only) {
      if (std::none_of(file.functions.begin(), file.functions.end(),
                       [&](const project::function_spec& f) { return f.name == name; })) {
        std::string names;
        for (const auto& f : file.functions) names += (names.empty() ? "" : ", ") + f.name;
        throw usage_error(
            fmt::format("--only {}: {} has no such function (it has {})", name, file.path, names));
      }
    }
    for (auto& spec : file.functions) {
      if (flags.only.empty() ||
          std::find(flags.only.begin(), flags.only.end(), spec.name) != flags.only.end()) {
        specs.push_back(std::move(spec));
      }
    }
  }
  for (auto& spec : specs) {
    apply_target_flags(flags, spec);
    if (spec.backend.empty()) spec.backend = variable(getenv, "FUNCIE_BACKEND");
    if (spec.request_queue.empty()) {
      spec.request_queue = variable(getenv, "FUNCIE_REQUEST_QUEUE_URL");
    }
    if (spec.response_queue.empty()) {
      spec.response_queue = variable(getenv, "FUNCIE_RESPONSE_QUEUE_URL");
    }
    // The SQS tunables: the flag (apply_target_flags), the project's key, else the
    // variable. A bad one is a usage error (exit 2) naming the variable, range and value.
    for (const auto name : tunnel::sqs_option_names()) {
      if (spec.sqs_given.contains(std::string(name))) continue;
      try {
        tunnel::set_sqs_option(spec.sqs, name, variable(getenv, std::string(name).c_str()));
      } catch (const tunnel::backend_config_error& e) {
        throw usage_error(
            fmt::format("{} (fix or unset the variable, or give --{})", e.what(), flag_of(name)));
      }
    }
  }
  return specs;
}

tunnel::backend_options backend_options_for(const project::function_spec& spec) {
  return project::unsealed_backend_options(spec);
}

tunnel::backend_options backend_options_for(const project::function_spec& spec,
                                            const getenv_fn& getenv) {
  auto backend = backend_options_for(spec);
  backend.keys = tunnel::load_keyring(spec.secret_file, spec.encrypt, getenv);
  return backend;
}

tunnel::backend_options check_target(const project::function_spec& spec, const getenv_fn& getenv) {
  if (spec.backend.empty()) {
    throw usage_error(
        "no broker: give --backend URL (or FUNCIE_BACKEND), e.g. --backend "
        "redis://localhost:6379");
  }
  if (spec.app.empty()) {
    throw usage_error("no app: give --app NAME (or FUNCIE_APP), the name the function forwards to");
  }
  tunnel::check_app(spec.app);  // the one message for a bad app name
  if (!spec.ca_file.empty() && !std::ifstream(spec.ca_file).good()) {
    throw usage_error("--ca-file: cannot read '" + spec.ca_file + "'");
  }
  auto backend = backend_options_for(spec, getenv);
  // The backend checks its URL and options when a session is made, before any I/O: one made
  // here and dropped checks them up front.
  boost::asio::io_context probe;
  tunnel::make_consumer_session(probe.get_executor(), backend);
  return backend;
}

const char* process_getenv(const char* name) {
  return std::getenv(name);
}

}  // namespace funcie::cli
