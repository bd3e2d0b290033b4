#include "forwarder/wrap.hpp"

#include "forwarder/forwarder.hpp"
#include "process/child.hpp"
#include "runtime/client.hpp"
#include "runtime/loop.hpp"
#include "runtime_api/server.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <malloc.h>

#include <csignal>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <variant>

extern char** environ;  // NOLINT: POSIX

namespace funcie::forwarder {

namespace {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

constexpr int exit_failure = 1;
// How long CMD may take to exit after SIGTERM before it is killed (Lambda's shutdown phase
// gives a runtime without extensions about this long).
constexpr std::chrono::milliseconds shutdown_grace{2000};

int exit_code_of(const process::exit_status& status) {
  return status.signal != 0 ? 128 + status.signal : status.code;
}

// wrap's own environment for CMD, with the Runtime API pointing at our server. FUNCIE_BACKEND
// is left out: wrap forwards, a funcie::start runtime under it must not offer again.
std::vector<std::string> command_environment(const std::string& runtime_api) {
  const std::string api_prefix = std::string(runtime_api::runtime_api_env) + "=";
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    if (text.starts_with(api_prefix) || text.starts_with("FUNCIE_BACKEND=")) continue;
    env.emplace_back(text);
  }
  env.push_back(api_prefix + runtime_api);
  return env;
}

// What Lambda answers for an invocation whose runtime exited (as funcie emulate does).
runtime_api::result exit_error(const std::string& request_id, const process::exit_status& status) {
  const std::string why = status.signal == 0 && status.code == 0
                              ? std::string("Runtime exited without providing a reason")
                              : "Runtime exited with error: " + status.describe();
  runtime_api::function_error error{
      .error_type = "Runtime.ExitError",
      .error_message = fmt::format("RequestId: {} Error: {}", request_id, why),
      .stack_trace = {}};
  runtime_api::result r;
  r.outcome = runtime_api::result::kind::function_error;
  r.body = runtime_api::format_error(error);
  r.error_type = std::move(error.error_type);
  return r;
}

class proxy {
 public:
  proxy(asio::any_io_executor executor, runtime::client& upstream, forwarder& fwd,
        const std::vector<std::string>& command)
      : upstream_(upstream),
        forwarder_(fwd),
        server_(executor),
        cmd_(executor, command, command_environment(server_.address())) {
    spdlog::debug("wrap: started {} (pid {}) with Runtime API {}", command.front(), cmd_.pid(),
                  server_.address());
  }

  process::child& cmd() { return cmd_; }

  // Until CMD exits or the real Runtime API goes away (client_error); returns the exit code.
  asio::awaitable<int> run() {
    // Init: Lambda's init phase lasts until CMD asks for its first invocation.
    auto ready = co_await (server_.wait_ready() || cmd_.wait());
    if (ready.index() == 1) co_return exit_code_of(std::get<1>(ready));
    if (auto& init_error = std::get<0>(ready)) {
      spdlog::debug("wrap: {} reported an init error {}", cmd_.pid(), init_error->error_type);
      co_await upstream_.post_init_error_body(std::move(init_error->body), init_error->error_type);
      // Lambda now stops the environment; until then wrap mirrors CMD.
      const process::exit_status status = co_await cmd_.wait();
      co_return exit_code_of(status);
    }

    for (;;) {
      auto next = co_await (upstream_.next() || cmd_.wait());
      if (next.index() == 1) co_return exit_code_of(std::get<1>(next));
      runtime_api::invocation invocation = std::move(std::get<0>(next));
      const std::string request_id = invocation.context.request_id;

      std::optional<runtime_api::result> result;
      if (forwarder_.config().enabled()) result = co_await forwarder_.forward(invocation);
      if (!result) {
        auto done = co_await run_in_cmd(std::move(invocation));
        if (done.index() == 1) {
          const process::exit_status status = std::get<1>(done);
          spdlog::debug("wrap: {} ended during {}: {}", cmd_.pid(), request_id, status.describe());
          runtime_api::result error = exit_error(request_id, status);
          co_await runtime::post_result(upstream_, request_id, std::move(error));
          co_return exit_code_of(status);
        }
        result = std::move(std::get<0>(done));
      }
      co_await runtime::post_result(upstream_, request_id, std::move(*result));
    }
  }

 private:
  // Hands the invocation to CMD's waiting /next and returns what it posted, or how it ended.
  asio::awaitable<std::variant<runtime_api::result, process::exit_status>> run_in_cmd(
      runtime_api::invocation invocation) {
    auto ready = co_await (server_.wait_ready() || cmd_.wait());
    if (ready.index() == 1) co_return std::get<1>(ready);
    auto done = co_await (server_.invoke(std::move(invocation)) || cmd_.wait());
    if (done.index() == 1) co_return std::get<1>(done);
    co_return std::move(std::get<0>(done));
  }

  runtime::client& upstream_;
  forwarder& forwarder_;
  runtime_api::server server_;
  process::child cmd_;
};

// SIGTERM or SIGINT: passed on to CMD, which gets shutdown_grace to exit before it is killed.
asio::awaitable<void> on_signal(asio::signal_set& signals, process::child& cmd,
                                std::optional<int>& exit_code) {
  const int sig = co_await signals.async_wait(asio::use_awaitable);
  spdlog::debug("wrap: {}: stopping {}", sig == SIGINT ? "interrupted" : "terminated", cmd.pid());
  cmd.signal(sig);
  asio::steady_timer timer(signals.get_executor(), shutdown_grace);
  auto ended = co_await (cmd.wait() || timer.async_wait(asio::use_awaitable));
  if (ended.index() == 1) cmd.signal(SIGKILL);
  const process::exit_status status = co_await cmd.wait();
  if (!exit_code) exit_code = exit_code_of(status);
}

// Lambda shows the caller an init error for a configuration the forwarder refuses.
void report_config_error(asio::io_context& io, runtime::client& upstream,
                         const std::string& message) {
  runtime_api::function_error error{
      .error_type = "Funcie.ConfigError", .error_message = message, .stack_trace = {}};
  asio::co_spawn(io, upstream.post_init_error(error), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& failure) {
      spdlog::error("wrap: could not report the init error: {}", failure.what());
    }
  });
  io.run();
  io.restart();
}

}  // namespace

int run_wrap(const wrap_options& options) {
  // A 6 MB event and its answer pass through several buffers. glibc would raise its mmap
  // threshold past them after the first one is freed and then keep them in the heap: wrap
  // would stay 6 MB bigger for the rest of the environment's life. A fixed threshold keeps
  // every buffer over 1 MiB in its own mapping, returned to the system when freed.
  ::mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
  try {
    asio::io_context io(1);
    runtime::client::options client_options;
    client_options.connect_attempts = 3;
    runtime::client upstream(io.get_executor(), options.upstream, client_options);

    std::optional<forwarder> fwd;
    try {
      auto getenv = [](const char* name) -> const char* { return std::getenv(name); };
      fwd.emplace(io.get_executor(), config_from_environment(getenv, options.app));
    } catch (const config_error& e) {
      fmt::print(stderr, "funcie wrap: {}\n", e.what());
      report_config_error(io, upstream, e.what());
      return wrap_exit_config;
    }
    if (!fwd->config().enabled()) {
      spdlog::warn(
          "funcie wrap: FUNCIE_BACKEND is not set: forwarding is off, every invocation runs {}",
          options.command.front());
    }

    std::optional<proxy> p;
    try {
      p.emplace(io.get_executor(), upstream, *fwd, options.command);
    } catch (const process::spawn_error& e) {
      fmt::print(stderr, "funcie wrap: {}\n", e.what());
      runtime_api::function_error error{
          .error_type = "Runtime.InvalidEntrypoint", .error_message = e.what(), .stack_trace = {}};
      // As a runtime does after an init error: report it, then wait for Lambda to stop the
      // environment. Exiting at once would race the report (the service may see the exit
      // first and call it Runtime.ExitError).
      asio::signal_set stop_signals(io, SIGINT, SIGTERM);
      stop_signals.async_wait([&io](boost::system::error_code, int) { io.stop(); });
      asio::co_spawn(io, upstream.post_init_error(error), [&io](std::exception_ptr failed) {
        if (failed) io.stop();  // nobody to report to: exit now
      });
      io.run();
      return exit_failure;
    }

    std::optional<int> exit_code;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::co_spawn(io, on_signal(signals, p->cmd(), exit_code),
                   [&io](std::exception_ptr) { io.stop(); });
    asio::co_spawn(io, p->run(), [&](std::exception_ptr e, int code) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& failure) {
          fmt::print(stderr, "funcie wrap: {}\n", failure.what());
        }
        code = exit_failure;
      }
      if (!exit_code) exit_code = code;
      io.stop();
    });
    io.run();
    return exit_code.value_or(exit_failure);
  } catch (const std::exception& e) {
    fmt::print(stderr, "funcie wrap: {}\n", e.what());
    return exit_failure;
  }
}

}  // namespace funcie::forwarder
