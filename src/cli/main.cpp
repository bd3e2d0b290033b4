// funcie: one binary, one subcommand per job (src/cli/*_command.cpp).
#include "cli/command.hpp"
#include "console/console.hpp"

#include <funcie/runtime_api/protocol.hpp>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <vector>

namespace funcie::cli {

int run_guarded(const char* name, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    fmt::print(stderr, "funcie {}: {}\n", name, e.what());
    return exit_failure;
  }
}

std::optional<std::string> lambda_runtime_api(const char* name) {
  const char* api = std::getenv(std::string(runtime_api::runtime_api_env).c_str());
  if (api != nullptr && *api != '\0') return std::string(api);
  fmt::print(stderr, "funcie {} runs inside Lambda (or funcie emulate): {} is not set\n", name,
             runtime_api::runtime_api_env);
  return std::nullopt;
}

}  // namespace funcie::cli

namespace {

// Deployed as a function's `bootstrap` (the binary renamed, as Lambda's custom runtimes
// name their entry point), funcie with no arguments is `funcie proxy`.
bool runs_as_bootstrap(int argc, const char* const* argv) {
  if (argc != 1 || argv[0] == nullptr) return false;
  const std::string_view path(argv[0]);
  return path.substr(path.rfind('/') + 1) == "bootstrap";
}

// Deployed as /opt/funcie-wrapper (the layer of `funcie package --layer`), funcie is
// `funcie wrap -- ARGS`: a managed runtime's bootstrap runs AWS_LAMBDA_EXEC_WRAPPER with its
// own command line as the arguments.
bool runs_as_wrapper(int argc, const char* const* argv) {
  if (argc < 1 || argv[0] == nullptr) return false;
  const std::string_view path(argv[0]);
  return path.substr(path.rfind('/') + 1) == "funcie-wrapper";
}

void setup_logging(const std::string& level) {
  // Colours as the console has them: only on a terminal, never with NO_COLOR.
  auto logger = spdlog::stderr_color_mt("funcie", funcie::console::wants_colour(stderr)
                                                      ? spdlog::color_mode::always
                                                      : spdlog::color_mode::never);
  logger->set_pattern("%^%H:%M:%S.%e %-5l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace funcie::cli;
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"funcie: develop AWS Lambda functions live, on your machine, invoked by the cloud"};
  app.require_subcommand(1);
  app.fallthrough();  // --log-level after the subcommand too
  app.set_version_flag("--version", "funcie 0.1.0");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  const command commands[] = {add_emulate(app), add_wrap(app),    add_proxy(app),  add_connect(app),
                              add_status(app),  add_package(app), add_doctor(app), add_secret(app),
                              add_invoke(app),  add_ui(app)};
  // After the subcommands, which would inherit it.
  app.footer(
      "Named `bootstrap` and run with no arguments (a custom runtime's entry point in a Lambda "
      "function's zip), funcie runs `funcie proxy`. Named `funcie-wrapper` (the layer's "
      "/opt/funcie-wrapper, AWS_LAMBDA_EXEC_WRAPPER), it runs `funcie wrap -- ARGS`.");
  const char* const as_proxy[] = {argv[0], "proxy", nullptr};
  const char* const* args = argv;
  if (runs_as_bootstrap(argc, args)) {
    argc = 2;
    args = as_proxy;
  }
  std::vector<const char*> as_wrap;
  if (runs_as_wrapper(argc, args)) {
    as_wrap = {argv[0], "wrap", "--"};
    as_wrap.insert(as_wrap.end(), argv + 1, argv + argc);
    as_wrap.push_back(nullptr);
    argc = static_cast<int>(as_wrap.size()) - 1;
    args = as_wrap.data();
  }
  try {
    app.parse(argc, args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  setup_logging(log_level);
  for (const auto& c : commands) {
    if (c.app->parsed()) return c.run();
  }
  return exit_usage;
}
