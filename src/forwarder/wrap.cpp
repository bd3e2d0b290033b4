#include "forwarder/wrap.hpp"

#include "forwarder/cloud_runtime.hpp"
#include "forwarder/forwarder.hpp"
#include "process/child.hpp"
#include "runtime_api/server.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <exception>
#include <optional>
#include <string>
#include <vector>

extern char** environ;  // NOLINT: POSIX

namespace funcie::forwarder {

namespace {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

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

// CMD behind our own Runtime API: the fallback of wrap for the invocations nobody took.
class wrapped_cmd {
 public:
  wrapped_cmd(cloud_runtime& cloud, const std::vector<std::string>& command)
      : cloud_(cloud),
        // Everything CMD sends but its /next goes on to the real Runtime API as it arrives,
        // byte for byte: streamed responses, trailers, fields wrap does not know.
        server_(cloud.io().get_executor(), 0, cloud.upstream().host_port()),
        cmd_(cloud.io().get_executor(), command, command_environment(server_.address())) {
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
      // Already passed on to Lambda as CMD posted it.
      spdlog::debug("wrap: {} reported an init error {}", cmd_.pid(), init_error->error_type);
      // Lambda now stops the environment; until then wrap mirrors CMD.
      co_return co_await wait_exit();
    }
    const fallback in_cmd{.run =
                              [this](runtime_api::invocation invocation) {
                                return run_in_cmd(std::move(invocation));
                              },
                          .ended = [this] { return wait_exit(); }};
    co_return co_await cloud_.serve(in_cmd);
  }

 private:
  asio::awaitable<int> wait_exit() {
    const process::exit_status status = co_await cmd_.wait();
    co_return exit_code_of(status);
  }

  // Hands the invocation to CMD's waiting /next and returns what it posted, or
  // Runtime.ExitError and the exit code when CMD ends first.
  asio::awaitable<fallback::outcome> run_in_cmd(runtime_api::invocation invocation) {
    const std::string request_id = invocation.context.request_id;
    std::optional<process::exit_status> exited;
    auto ready = co_await (server_.wait_ready() || cmd_.wait());
    if (ready.index() == 1) {
      exited = std::get<1>(ready);
    } else {
      auto done = co_await (server_.invoke(std::move(invocation)) || cmd_.wait());
      if (done.index() == 0) {
        fallback::outcome answered{.result = std::move(std::get<0>(done)), .exit_code = {}};
        co_return answered;
      }
      exited = std::get<1>(done);
    }
    spdlog::debug("wrap: {} ended during {}: {}", cmd_.pid(), request_id, exited->describe());
    fallback::outcome ended{.result = exit_error(request_id, *exited),
                            .exit_code = exit_code_of(*exited)};
    co_return ended;
  }

  cloud_runtime& cloud_;
  runtime_api::server server_;
  process::child cmd_;
};

// SIGTERM or SIGINT: passed on to CMD, which gets shutdown_grace to exit before it is killed.
asio::awaitable<int> stop_cmd(process::child& cmd, int sig) {
  spdlog::debug("wrap: {}: stopping {}", sig == SIGINT ? "interrupted" : "terminated", cmd.pid());
  cmd.signal(sig);
  asio::steady_timer timer(co_await asio::this_coro::executor, shutdown_grace);
  auto ended = co_await (cmd.wait() || timer.async_wait(asio::use_awaitable));
  if (ended.index() == 1) cmd.signal(SIGKILL);
  const process::exit_status status = co_await cmd.wait();
  co_return exit_code_of(status);
}

}  // namespace

int run_wrap(const wrap_options& options) {
  try {
    cloud_runtime cloud("wrap", options.upstream);
    const forwarder* fwd = cloud.open_forwarder(options.app);
    if (fwd == nullptr) return exit_config;
    if (!fwd->config().enabled()) {
      spdlog::warn(
          "funcie wrap: FUNCIE_BACKEND is not set: forwarding is off, every invocation runs {}",
          options.command.front());
    }

    std::optional<wrapped_cmd> cmd;
    try {
      cmd.emplace(cloud, options.command);
    } catch (const process::spawn_error& e) {
      fmt::print(stderr, "funcie wrap: {}\n", e.what());
      const runtime_api::function_error error{
          .error_type = "Runtime.InvalidEntrypoint", .error_message = e.what(), .stack_trace = {}};
      return cloud.report_init_error_and_wait(error);
    }
    return cloud.run(cmd->run(), [&cmd](int sig) { return stop_cmd(cmd->cmd(), sig); });
  } catch (const std::exception& e) {
    fmt::print(stderr, "funcie wrap: {}\n", e.what());
    return exit_failure;
  }
}

}  // namespace funcie::forwarder
