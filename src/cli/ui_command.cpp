// funcie ui: the console page for the invocation history, on 127.0.0.1 (docs/console.md).
// Replay runs the funcie.toml functions found from here, or the command after --.
#include "cli/command.hpp"
#include "cli/history_flags.hpp"
#include "project/project.hpp"
#include "ui/console_page.hpp"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>

namespace funcie::cli {

namespace {

namespace asio = boost::asio;

struct ui_options {
  history_flags history;
  unsigned port = 0;
  std::string app;
  std::string config;
  std::vector<std::string> command;
};

int run_ui(const ui_options& o) {
  std::shared_ptr<history::store> store;
  std::vector<project::function_spec> functions;
  try {
    if (o.history.off) throw std::invalid_argument("--no-history: funcie ui shows the history");
    if (o.port > 65535) throw std::invalid_argument("--port must be between 0 and 65535");
    store = open_history(o.history);
    if (!o.command.empty()) {
      if (o.app.empty()) {
        throw std::invalid_argument(
            "--app NAME: which app's invocations the command after -- replays");
      }
      project::function_spec spec;
      spec.app = o.app;
      spec.name = o.app;
      spec.command = o.command;
      functions.push_back(std::move(spec));
    } else {
      std::error_code ec;
      auto path = o.config.empty()
                      ? project::find_project(std::filesystem::current_path(ec).string())
                      : std::optional<std::string>(o.config);
      if (path) functions = project::load_project(*path).functions;
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "funcie ui: {}\n", e.what());
    return exit_usage;
  }
  asio::io_context io;
  ui::page_options p;
  p.store = store;
  p.port = static_cast<std::uint16_t>(o.port);
  p.functions = functions;
  p.fixtures_dir = ui::fixtures_dir_here();
  p.output = [](const std::string& app, int, std::string_view line) {
    fmt::print(stderr, "[{} replay] {}\n", app, line);
    std::fflush(stderr);
  };
  ui::console_page page(io.get_executor(), std::move(p));
  fmt::print(stdout, "console {}\n", page.url());
  fmt::print(stdout, "history {} ({} invocations)\n", store->path(), store->count());
  std::fflush(stdout);
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (ec) return;
    asio::co_spawn(io, page.stop(), [&](std::exception_ptr) { io.stop(); });
  });
  io.run();
  return exit_ok;
}

}  // namespace

command add_ui(CLI::App& app) {
  auto o = std::make_shared<ui_options>();
  auto* sub = app.add_subcommand(
      "ui",
      "Serves the console page on 127.0.0.1: every recorded invocation, live, with Replay and "
      "Save as fixture (the URL with its token is printed)");
  add_history_flags(sub, o->history);
  sub->add_option("--port", o->port, "The port on 127.0.0.1 (default: a free one)");
  sub->add_option("--app", o->app, "With a command after --: the app it replays");
  sub->add_option("--config,-c", o->config,
                  "The project file (default: funcie.toml here or above)");
  sub->add_option("command", o->command, "A runtime command for Replay, after --");
  return {sub, [=]() -> int { return run_guarded("ui", [&] { return run_ui(*o); }); }};
}

}  // namespace funcie::cli
