// funcie invoke: one event run against the local handler of a funcie.toml function (or the
// command after --), with no broker: the response on stdout, the handler's lines on stderr,
// exit 1 on a function error. docs/console.md is the design.
#include "cli/command.hpp"
#include "cli/history_flags.hpp"
#include "emulate/config.hpp"
#include "emulate/invoke_protocol.hpp"
#include "history/local_run.hpp"
#include "project/project.hpp"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace funcie::cli {

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

struct invoke_options {
  std::string app;
  std::string event;
  std::string from_history;
  std::string config;
  double timeout_s = 30;
  std::vector<std::string> env_assignments;
  std::vector<std::string> command;
  history_flags history;
};

/// The function to run: the command after --, or the project's function (by name or app).
project::function_spec spec_for(const invoke_options& o) {
  project::function_spec spec;
  if (!o.command.empty()) {
    if (!o.config.empty())
      throw usage_error("--config reads a project file: give it without a command");
    spec.app = o.app.empty() ? std::string("local") : o.app;
    spec.name = spec.app;
    spec.command = o.command;
  } else {
    std::string path = o.config;
    if (path.empty()) {
      std::error_code ec;
      auto found = project::find_project(fs::current_path(ec).string());
      if (!found) {
        throw usage_error(
            "no handler: give its command after '--' (funcie invoke --event e.json -- "
            "./bootstrap) or run in a project with a funcie.toml");
      }
      path = *found;
    }
    auto p = project::load_project(path);
    std::string names;
    for (auto& f : p.functions) {
      names += (names.empty() ? "" : ", ") + f.name;
      if ((o.app.empty() && p.functions.size() == 1) || f.name == o.app || f.app == o.app) {
        spec = std::move(f);
        break;
      }
    }
    if (spec.command.empty()) {
      throw usage_error(
          o.app.empty()
              ? fmt::format("{} has several functions ({}): say which with --app NAME", p.path,
                            names)
              : fmt::format("--app {}: {} has no such function (it has {})", o.app, p.path, names));
    }
  }
  emulate::function_config env_check;
  for (const auto& assignment : o.env_assignments) {
    emulate::add_environment(env_check, assignment);
  }
  for (const auto& [key, value] : env_check.environment) spec.environment[key] = value;
  return spec;
}

std::string read_event(const invoke_options& o, history::store* store) {
  if (!o.from_history.empty()) {
    if (!o.event.empty()) throw usage_error("give --event or --from-history, not both");
    if (store == nullptr)
      throw usage_error("--from-history reads the history: not with --no-history");
    auto e = store->find(o.from_history);
    if (!e) {
      throw usage_error(fmt::format(
          "--from-history {}: no such invocation in {} (give its number or request id, as funcie "
          "ui shows them)",
          o.from_history.substr(0, 64), store->path()));
    }
    return e->event;
  }
  if (o.event.empty())
    throw usage_error("no event: give --event FILE (or - for stdin) or --from-history ID");
  std::ostringstream text;
  if (o.event == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(o.event, std::ios::binary);
    if (!in) {
      throw usage_error(
          fmt::format("--event: cannot read '{}': {} (give a JSON file, or - for stdin)", o.event,
                      std::strerror(errno)));
    }
    text << in.rdbuf();
  }
  auto event = text.str();
  if (event.size() > 6 * 1024 * 1024) {
    throw usage_error("--event: the event is over Lambda's 6 MB limit for a synchronous invoke");
  }
  // As Lambda: no payload is "{}", and one that is not JSON never reaches the function.
  if (event.empty()) return "{}";
  if (!emulate::is_json(event)) {
    throw usage_error(fmt::format(
        "--event: {} is not one valid JSON value, and Lambda refuses such a payload before the "
        "function runs (InvalidRequestContentException): fix the JSON",
        o.event == "-" ? std::string("what came on stdin") : fmt::format("'{}'", o.event)));
  }
  return event;
}

int run_invoke(const invoke_options& o) {
  project::function_spec spec;
  std::shared_ptr<history::store> store;
  std::string event;
  try {
    spec = spec_for(o);
    if (o.timeout_s < 1 || o.timeout_s > 900)
      throw usage_error("--timeout must be between 1 and 900 seconds");
    store = open_history(o.history);
    event = read_event(o, store.get());
  } catch (const std::exception& e) {
    fmt::print(stderr, "funcie invoke: {}\n", e.what());
    return exit_usage;
  }
  asio::io_context io;
  history::local_run_options r;
  r.spec = spec;
  r.timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000));
  // The handler's lines on stderr: stdout holds the response alone.
  r.output = [](int, std::string_view line) {
    fmt::print(stderr, "{}\n", line);
    std::fflush(stderr);
  };
  history::local_runner runner(io.get_executor(), std::move(r));
  history::entry result;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  bool interrupted = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        result = co_await runner.run(std::move(event));
        signals.cancel();
        co_await runner.shut_down();
      },
      [&](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (ec) return;
    interrupted = true;
    asio::co_spawn(io, runner.shut_down(), [&](std::exception_ptr) { io.stop(); });
  });
  io.run();
  if (interrupted) {
    fmt::print(stderr, "funcie invoke: interrupted\n");
    return 130;
  }
  if (store) {
    try {
      store->record(result);
    } catch (const std::exception& e) {
      fmt::print(stderr, "funcie invoke: {} (the invocation ran; it is not recorded)\n", e.what());
    }
  }
  fmt::print(stdout, "{}\n", result.response);
  std::fflush(stdout);
  if (result.outcome != "ok") {
    fmt::print(stderr, "funcie invoke: {}: {}\n", result.error_type, result.error_message);
    return exit_failure;
  }
  return exit_ok;
}

}  // namespace

command add_invoke(CLI::App& app) {
  auto o = std::make_shared<invoke_options>();
  auto* sub = app.add_subcommand(
      "invoke",
      "Runs one event against the local handler (a funcie.toml function, or CMD after --) "
      "without any broker: prints the response, exits 1 on a function error");
  sub->add_option("--app", o->app, "The funcie.toml function (its name or app)");
  sub->add_option("--event", o->event, "The event's file, or - for stdin");
  sub->add_option("--from-history", o->from_history,
                  "Run a recorded invocation's event again (its number or request id)");
  sub->add_option("--config,-c", o->config,
                  "The project file (default: funcie.toml here or above)");
  sub->add_option("--timeout", o->timeout_s, "Seconds the handler may run (1-900)")
      ->capture_default_str();
  sub->add_option("--env", o->env_assignments, "KEY=VALUE for the runtime's environment")
      ->allow_extra_args(false);
  add_history_flags(sub, o->history);
  sub->add_option("command", o->command, "The runtime command, after --");
  return {sub, [=]() -> int { return run_guarded("invoke", [&] { return run_invoke(*o); }); }};
}

}  // namespace funcie::cli
