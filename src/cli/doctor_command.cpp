// funcie doctor: checks a configuration before anyone invokes anything, and says what to fix.
// The checks live in src/doctor/; this file reads the flags (the same as funcie connect and
// funcie status), picks what to check and prints one line per check.
#include "cli/command.hpp"
#include "cli/target_flags.hpp"
#include "doctor/doctor.hpp"
#include "project/project.hpp"
#include "tunnel/backend.hpp"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;  // NOLINT: POSIX

namespace funcie::cli {

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

struct doctor_options {
  target_flags target;  // --backend, --app, the queues, TLS, the secret, --config, --only
  bool function_env = false;
  std::string env_file;
  long timeout_ms = 3000;
};

/// One configuration to check: the command line's, or one function of a funcie.toml.
struct target {
  std::string title;  ///< Printed before its lines when several are checked.
  tunnel::backend_options backend;
  std::string secret_file;
  bool encrypt = true;
  const char* app_flag = "--app";
};

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw usage_error(fmt::format("{}: cannot read '{}'", what, path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The configurations the flags ask for, by the precedence every command shares
/// (target_flags.hpp): each function of a funcie.toml (--config, or found here or above when
/// --app is not given), or the one app of the flags and FUNCIE_*. A project file that cannot
/// be read is a finding.
std::vector<target> targets_for(const doctor_options& o, doctor::report& out) {
  std::error_code ec;
  const auto project_path = project_for(o.target, fs::current_path(ec).string());
  std::vector<project::function_spec> specs;
  try {
    specs = resolve_targets(o.target, project_path, process_getenv);
  } catch (const project::project_error& e) {
    out.add(doctor::level::failed, "project file", e.what(),
            "correct the file (docs/local.md describes funcie.toml)");
    return {};
  }
  if (project_path) {
    out.add(
        doctor::level::info, "project file",
        fmt::format("{}: {} function(s)", fs::absolute(*project_path, ec).string(), specs.size()));
  }
  std::vector<target> targets;
  for (const auto& spec : specs) {
    target t;
    if (project_path) {
      t.title = fmt::format("function {} (app {})", spec.name, spec.app);
      t.app_flag = "the project's app";
    }
    t.backend = backend_options_for(spec);
    t.secret_file = spec.secret_file;
    t.encrypt = spec.encrypt;
    targets.push_back(std::move(t));
  }
  return targets;
}

/// The developer's side: URL, app, secret, the broker, who is connected.
asio::awaitable<void> check_configuration(asio::any_io_executor executor, target t,
                                          std::chrono::milliseconds timeout, doctor::report& out) {
  auto url = doctor::check_backend_url(t.backend.url);
  const bool url_ok = url.severity != doctor::level::failed;
  out.add(std::move(url));
  auto app = doctor::check_app(t.backend.app, t.app_flag);
  const bool app_ok = app.severity != doctor::level::failed;
  out.add(std::move(app));
  auto secret = doctor::check_secret(t.secret_file, t.encrypt,
                                     [](const char* name) { return std::getenv(name); });
  out.add(secret.result);
  t.backend.keys = secret.keys;
  if (!t.backend.ca_file.empty() && !std::ifstream(t.backend.ca_file).good()) {
    out.add(doctor::level::failed, "CA file", fmt::format("cannot read '{}'", t.backend.ca_file),
            "give --ca-file a readable PEM bundle of the CA that signed the broker's certificate");
    co_return;
  }
  if (!t.backend.tls_verify) {
    out.add(doctor::level::warning, "TLS", "certificate verification is off (--tls-insecure)",
            "give --ca-file for a private CA instead");
  }
  if (!url_ok || !app_ok) co_return;
  t.backend.timing.connect_timeout = timeout;
  doctor::reach_options reach;
  reach.timeout = timeout;
  const bool reached = co_await doctor::check_broker(executor, t.backend, reach, out);
  if (reached) co_await doctor::check_consumers(executor, t.backend, out);
}

/// A function's environment (--function-env), then the broker as it gives it.
asio::awaitable<void> check_function(asio::any_io_executor executor, doctor::environment env,
                                     const target_flags& o, std::chrono::milliseconds timeout,
                                     doctor::report& out) {
  auto checked = doctor::check_function_environment(env, o.app, out);
  if (!checked.backend) co_return;
  auto backend = *checked.backend;
  if (!o.secret_file.empty()) {
    // The developer's secret against the function's: the same key id, or a clear mismatch.
    auto mine = doctor::check_secret(o.secret_file, !o.no_encrypt,
                                     [](const char* name) { return std::getenv(name); });
    if (mine.result.severity == doctor::level::failed) {
      out.add(mine.result);
    } else if (backend.keys.enabled() && mine.keys.enabled()) {
      const auto function_id = backend.keys.current_key_id();
      if (mine.keys.holds(function_id)) {
        out.add(doctor::level::ok, "secret match",
                fmt::format("--secret-file holds the function's key {}", function_id));
      } else {
        out.add(doctor::level::failed, "secret match",
                fmt::format("the function seals with key {}, --secret-file holds {}", function_id,
                            mine.keys.current_key_id()),
                "give both sides the same secret (docs/security.md, Rotation, to change it "
                "without downtime)");
      }
    } else if (backend.keys.enabled() != mine.keys.enabled()) {
      out.add(doctor::level::failed, "secret match",
              backend.keys.enabled() ? "the function has a secret, --secret-file none"
                                     : "--secret-file has a secret, the function none",
              "set the same secret on both sides");
    }
  }
  if (o.given("--ca-file")) backend.ca_file = o.ca_file;
  if (o.given("--tls-insecure")) backend.tls_verify = !o.tls_insecure;
  backend.timing.connect_timeout = timeout;
  doctor::reach_options reach;
  reach.timeout = timeout;
  reach.from_function = true;
  const bool reached = co_await doctor::check_broker(executor, backend, reach, out);
  if (reached && checked.app_known) co_await doctor::check_consumers(executor, backend, out);
}

doctor::environment current_environment() {
  doctor::environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return env;
}

}  // namespace

command add_doctor(CLI::App& app) {
  auto o = std::make_shared<doctor_options>();
  auto* sub = app.add_subcommand(
      "doctor",
      "Checks a configuration and says what to fix: the backend URL, the app, the shared "
      "secret, the broker (reachable, credentials, queues), who is connected. With "
      "--function-env, a function's environment before you deploy it");
  target_help help;
  help.app =
      "The app (tunnel) name (default: FUNCIE_APP; without it, the project's functions); with "
      "--function-env, the function's name";
  help.secret_file =
      "The shared secret (default: the project's secret_file, else FUNCIE_SECRET, "
      "FUNCIE_SECRET_PREVIOUS); with --function-env, compared with the function's";
  help.only = "Check only this function of the project (repeatable)";
  add_target_flags(sub, o->target, help);
  sub->add_flag("--function-env", o->function_env,
                "Check a function's environment (the variables funcie reads in Lambda) instead "
                "of this machine's side: from --env-file, else this process's environment");
  sub->add_option("--env-file", o->env_file,
                  "With --function-env: KEY=VALUE lines, or the JSON object `aws lambda "
                  "get-function-configuration --query Environment.Variables` prints");
  sub->add_option("--timeout-ms", o->timeout_ms,
                  "Bound of each attempt to reach the broker (100-60000)")
      ->capture_default_str();

  return {
      sub, [=]() -> int {
        return run_guarded("doctor", [&]() -> int {
          auto usage = [](const std::string& message) {
            fmt::print(stderr, "funcie doctor: {}\n", message);
            return exit_usage;
          };
          if (o->timeout_ms < 100 || o->timeout_ms > 60000) {
            return usage("--timeout-ms must be between 100 and 60000 (default 3000)");
          }
          const bool from_function = o->function_env || !o->env_file.empty();
          const auto& t = o->target;
          if (from_function && (!t.backend.empty() || !t.config.empty() || !t.only.empty() ||
                                !t.request_queue.empty() || !t.response_queue.empty())) {
            return usage(
                "--function-env checks the function's own variables: give them in "
                "--env-file (FUNCIE_BACKEND, FUNCIE_REQUEST_QUEUE_URL...), not as flags");
          }
          const std::chrono::milliseconds timeout(o->timeout_ms);

          doctor::report out;
          out.on_finding = [](const doctor::finding& f) {
            fmt::print("{}", doctor::format_finding(f));
            std::fflush(stdout);
          };
          asio::io_context io;
          std::exception_ptr failure;
          std::vector<target> targets;
          try {
            if (from_function) {
              doctor::environment env;
              if (!o->env_file.empty()) {
                env = doctor::parse_environment(read_file(o->env_file, "--env-file"), o->env_file);
                fmt::print("checking the function environment in {}\n", o->env_file);
              } else {
                env = current_environment();
                fmt::print("checking this process's environment as a function's\n");
              }
              asio::co_spawn(io, check_function(io.get_executor(), std::move(env), t, timeout, out),
                             [&](std::exception_ptr e) { failure = e; });
            } else {
              targets = targets_for(*o, out);
              const bool several = targets.size() > 1;
              asio::co_spawn(
                  io,
                  [&, several]() -> asio::awaitable<void> {
                    for (const auto& each : targets) {
                      if (several || !each.title.empty()) fmt::print("{}\n", each.title);
                      co_await check_configuration(io.get_executor(), each, timeout, out);
                    }
                  },
                  [&](std::exception_ptr e) { failure = e; });
            }
          } catch (const util::user_error& e) {
            return usage(e.what());
          }
          io.run();
          if (failure) std::rethrow_exception(failure);
          fmt::print("{}\n", doctor::summary(out));
          return out.failed() ? exit_failure : exit_ok;
        });
      }};
}

}  // namespace funcie::cli
