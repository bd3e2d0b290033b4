// funcie emulate: a local stand-in for the Lambda service.
#include "cli/command.hpp"
#include "emulate/config.hpp"
#include "emulate/emulator.hpp"
#include "emulate/invoke_api.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdio>
#include <memory>

namespace funcie::cli {

namespace {

namespace asio = boost::asio;

int run_emulate(funcie::emulate::function_config config, const std::string& host,
                std::uint16_t port) {
  using namespace funcie::emulate;
  asio::io_context io;
  emulator emu(io.get_executor(), std::move(config));
  std::unique_ptr<invoke_api> api;
  try {
    api = std::make_unique<invoke_api>(io.get_executor(), emu,
                                       asio::ip::tcp::endpoint(asio::ip::make_address(host), port));
  } catch (const std::exception& e) {
    fmt::print(stderr,
               "funcie emulate: {}; is another process using the port? Pick another "
               "with --port (0 picks a free one).\n",
               e.what());
    return exit_failure;
  }
  // Ctrl-C is handled before anyone is told where we listen, so that a stop sent right
  // after the line is never lost.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("{}: stopping the function's runtimes",
                 sig == SIGINT ? "interrupted" : "terminated");
    api->stop();
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await emu.shut_down(std::chrono::milliseconds(2000));
          io.stop();
        },
        asio::detached);
  });
  // One line on stdout that scripts can read: where to send invocations.
  fmt::print("funcie emulate: function {} listening on http://{}:{} (Lambda Invoke API)\n",
             emu.config().name, host, api->port());
  std::fflush(stdout);

  io.run();
  return 0;
}

}  // namespace

command add_emulate(CLI::App& app) {
  struct options {
    funcie::emulate::function_config config;
    std::string host = "127.0.0.1";
    std::uint16_t port = 9001;
    double timeout_seconds = 3;
    std::vector<std::string> env_assignments;
  };
  auto o = std::make_shared<options>();
  auto& config = o->config;
  auto& host = o->host;
  auto& port = o->port;
  auto& timeout_seconds = o->timeout_seconds;
  auto& env_assignments = o->env_assignments;
  auto* emulate = app.add_subcommand(
      "emulate",
      "A local stand-in for the Lambda service: runs CMD as the function's runtime and serves "
      "the Lambda Invoke API");
  emulate->add_option("--function", config.name, "The function's name")->required();
  emulate->add_option("--port", port, "Port of the Invoke API on 127.0.0.1 (0: a free one)")
      ->capture_default_str();
  emulate->add_option("--host", host, "Address of the Invoke API")->capture_default_str();
  emulate->add_option("--timeout", timeout_seconds, "Function timeout in seconds (1-900)")
      ->capture_default_str();
  emulate->add_option("--memory", config.memory_mb, "Memory size in MB (128-10240)")
      ->capture_default_str();
  emulate
      ->add_option("--concurrency", config.concurrency,
                   "Execution environments at most, each its own CMD process (1-1000)")
      ->capture_default_str();
  emulate->add_option("--region", config.region, "The function's region")->capture_default_str();
  emulate->add_option("--handler", config.handler, "The _HANDLER value the runtime sees")
      ->capture_default_str();
  emulate->add_option("--env", env_assignments, "KEY=VALUE for the function's environment")
      ->allow_extra_args(false);
  emulate->add_option("command", config.command, "The runtime command, after --")->required();

  return {emulate, [o]() -> int {
            auto& fn = o->config;
            try {
              if (!(o->timeout_seconds >= 1 && o->timeout_seconds <= 900)) {
                throw funcie::emulate::config_error(
                    "--timeout must be between 1 and 900 seconds, as on Lambda");
              }
              fn.timeout = std::chrono::milliseconds(static_cast<long>(o->timeout_seconds * 1000));
              for (const auto& assignment : o->env_assignments) {
                funcie::emulate::add_environment(fn, assignment);
              }
              funcie::emulate::validate(fn);
            } catch (const funcie::emulate::config_error& e) {
              fmt::print(stderr, "funcie emulate: {}\n", e.what());
              return exit_usage;
            }
            return run_emulate(std::move(fn), o->host, o->port);
          }};
}

}  // namespace funcie::cli
