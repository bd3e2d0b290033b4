// funcie connect: joins an app's tunnel and runs the invocations it receives in the
// developer's own runtime (CMD), each execution environment with a local Runtime API.
#include "cli/command.hpp"
#include "consumer/consumer.hpp"
#include "consumer/runtime_pool.hpp"
#include "emulate/config.hpp"
#include "tunnel/backend.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace funcie::cli {

namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

struct connect_options {
  std::string backend;
  std::string app;
  unsigned concurrency = 10;
  long heartbeat_ms = 3000;
  std::string ca_file;
  bool tls_insecure = false;
  std::vector<std::string> env_assignments;
  std::vector<std::string> command;
};

/// "HH:MM:SS.mmm", local time.
std::string clock_text() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  return fmt::format("{:%H:%M:%S}.{:03}", fmt::localtime(std::chrono::system_clock::to_time_t(now)),
                     ms);
}

/// The one line per invocation on stderr.
void log_invocation(const tunnel::request& req, milliseconds took,
                    const runtime_api::result* result) {
  auto id = req.context.request_id.substr(0, 8);
  if (result && result->outcome == runtime_api::result::kind::success) {
    fmt::print(stderr, "{} {} {}ms ok\n", clock_text(), id, took.count());
  } else {
    fmt::print(stderr, "{} {} {}ms error {}\n", clock_text(), id, took.count(),
               result ? result->error_type : std::string("Funcie.ConsumerError"));
  }
  std::fflush(stderr);
}

int run_connect(const connect_options& o, tunnel::backend_options backend,
                consumer::runtime_pool_options pool_options) {
  asio::io_context io;
  auto executor = io.get_executor();
  const auto url = tunnel::redact_url(backend.url);

  bool leaving = false;
  consumer::runtime_pool pool(executor, std::move(pool_options));
  consumer::runner run =
      [&pool, &leaving](const tunnel::request& req) -> asio::awaitable<runtime_api::result> {
    auto start = std::chrono::steady_clock::now();
    runtime_api::result result;
    std::exception_ptr failure;
    try {
      result = co_await pool.run(req);
    } catch (...) {
      failure = std::current_exception();
    }
    auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
    // After leaving, the caller already got Funcie.ConsumerLeft: this result goes nowhere.
    if (!leaving) log_invocation(req, took, failure ? nullptr : &result);
    if (failure) std::rethrow_exception(failure);
    co_return result;
  };

  consumer::consumer_options options;
  options.backend = std::move(backend);
  options.on_session = [&o, url](const std::string& session, bool first) {
    if (first) {
      fmt::print("funcie connect: serving app {} through {} (session {})\n", o.app, url,
                 session.substr(0, 8));
    } else {
      fmt::print("funcie connect: reconnected to {} (session {})\n", url, session.substr(0, 8));
    }
    std::fflush(stdout);
  };
  consumer::consumer tunnel_consumer(executor, std::move(options), std::move(run));

  int exit_code = exit_ok;
  auto leave = [&]() {
    if (leaving) return;
    leaving = true;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          try {
            co_await tunnel_consumer.stop();
          } catch (const std::exception& e) {
            spdlog::warn("leaving the tunnel: {}", e.what());
          }
          co_await pool.shut_down(milliseconds(2000));
          io.stop();
        },
        asio::detached);
  };

  // Ctrl-C is handled before anything starts; a second one exits at once.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec,
                                                                      int sig) {
    if (ec) return;
    if (leaving) {
      fmt::print(stderr, "funcie connect: interrupted again; exiting at once\n");
      std::fflush(stderr);
      std::_Exit(128 + sig);
    }
    spdlog::info("{}: leaving the tunnel and stopping the runtimes",
                 sig == SIGINT ? "interrupted" : "terminated");
    signals.async_wait(on_signal);
    leave();
  };
  signals.async_wait(on_signal);

  asio::co_spawn(io, tunnel_consumer.run(), [&](std::exception_ptr e) {
    if (!e) return;  // stopped: leave() finishes the work
    try {
      std::rethrow_exception(e);
    } catch (const tunnel::backend_config_error& error) {
      fmt::print(stderr, "funcie connect: {}\n", error.what());
      exit_code = exit_usage;
    } catch (const std::exception& error) {
      fmt::print(stderr, "funcie connect: {}\n", error.what());
      exit_code = exit_failure;
    }
    leave();
  });

  io.run();
  return exit_code;
}

}  // namespace

command add_connect(CLI::App& app) {
  auto o = std::make_shared<connect_options>();
  auto* sub = app.add_subcommand(
      "connect",
      "Joins an app's tunnel and runs the invocations forwarded from the cloud in CMD, the "
      "function's runtime on this machine, through a local Lambda Runtime API");
  sub->add_option("--backend", o->backend,
                  "The broker URL: redis://[user:password@]host[:port][/db] or rediss://...")
      ->envname("FUNCIE_BACKEND");
  sub->add_option("--app", o->app, "The app (tunnel) name the function forwards to")
      ->envname("FUNCIE_APP");
  sub->add_option("--concurrency", o->concurrency,
                  "Execution environments at most, each its own CMD process (1-1000)")
      ->capture_default_str();
  sub->add_option("--heartbeat-ms", o->heartbeat_ms,
                  "Within this bound a vanished consumer has what it holds failed (ms)")
      ->capture_default_str();
  sub->add_option("--ca-file", o->ca_file, "TLS: a CA bundle (PEM) to trust for rediss://");
  sub->add_flag("--tls-insecure", o->tls_insecure,
                "TLS: do not verify the broker's certificate (tests only)");
  sub->add_option("--env", o->env_assignments, "KEY=VALUE for the runtime's environment")
      ->allow_extra_args(false);
  sub->add_option("command", o->command, "The runtime command, after --");

  return {sub, [o]() -> int {
            return run_guarded("connect", [&]() -> int {
              tunnel::backend_options backend;
              consumer::runtime_pool_options pool;
              try {
                if (o->backend.empty()) {
                  throw std::invalid_argument(
                      "no broker: give --backend URL (or FUNCIE_BACKEND), e.g. "
                      "--backend redis://localhost:6379");
                }
                if (o->app.empty()) {
                  throw std::invalid_argument(
                      "no app: give --app NAME (or FUNCIE_APP), the name the function "
                      "forwards to");
                }
                if (!tunnel::is_valid_app(o->app)) {
                  throw std::invalid_argument(
                      "--app must be 1 to 64 letters, digits, '-', '_' or '.' (got '" +
                      o->app.substr(0, 80) + "')");
                }
                if (o->concurrency < 1 || o->concurrency > 1000) {
                  throw std::invalid_argument("--concurrency must be between 1 and 1000");
                }
                if (o->heartbeat_ms < 300 || o->heartbeat_ms > 300000) {
                  throw std::invalid_argument(
                      "--heartbeat-ms must be between 300 and 300000 (default 3000)");
                }
                if (o->command.empty()) {
                  throw std::invalid_argument(
                      "no runtime command: give it after '--', e.g. funcie connect --app "
                      "orders -- ./bootstrap");
                }
                if (!o->ca_file.empty() && !std::ifstream(o->ca_file).good()) {
                  throw std::invalid_argument("--ca-file: cannot read '" + o->ca_file + "'");
                }
                emulate::function_config env_check;
                for (const auto& assignment : o->env_assignments) {
                  emulate::add_environment(env_check, assignment);
                }
                backend.url = o->backend;
                backend.app = o->app;
                backend.timing.heartbeat = milliseconds(o->heartbeat_ms);
                backend.ca_file = o->ca_file;
                backend.tls_verify = !o->tls_insecure;
                // The backend checks its URL and options when a session is made, before
                // any I/O: one made here and dropped checks them up front.
                asio::io_context probe;
                tunnel::make_consumer_session(probe.get_executor(), backend);
                pool.command = o->command;
                pool.concurrency = o->concurrency;
                pool.app = o->app;
                pool.environment = std::move(env_check.environment);
              } catch (const std::invalid_argument& e) {
                fmt::print(stderr, "funcie connect: {}\n", e.what());
                return exit_usage;
              } catch (const tunnel::backend_config_error& e) {
                fmt::print(stderr, "funcie connect: {}\n", e.what());
                return exit_usage;
              } catch (const emulate::config_error& e) {
                fmt::print(stderr, "funcie connect: {}\n", e.what());
                return exit_usage;
              }
              return run_connect(*o, std::move(backend), std::move(pool));
            });
          }};
}

}  // namespace funcie::cli
