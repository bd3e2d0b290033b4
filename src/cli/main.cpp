// funcie: one binary, one subcommand per job (src/cli/*_command.cpp).
#include "cli/command.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <exception>

namespace funcie::cli {

int run_guarded(const char* name, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    fmt::print(stderr, "funcie {}: {}\n", name, e.what());
    return exit_failure;
  }
}

}  // namespace funcie::cli

namespace {

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("funcie");
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

  const command commands[] = {add_emulate(app), add_wrap(app), add_connect(app), add_status(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  setup_logging(log_level);
  for (const auto& c : commands) {
    if (c.app->parsed()) return c.run();
  }
  return exit_usage;
}
