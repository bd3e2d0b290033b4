// What `funcie wrap` and `funcie proxy` share: the runtime process of a deployed function
// with the forwarder in front. The real Runtime API's client, the forwarder configured from
// the FUNCIE_* variables (a bad value is Lambda's init error Funcie.ConfigError), the loop of
// /next, forward, post, and SIGTERM/SIGINT. What differs is the fallback: what happens to an
// invocation nobody took. docs/tunnel.md, "Using it".
#pragma once

#include "forwarder/forwarder.hpp"
#include "runtime/client.hpp"
#include "runtime_api/server.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace funcie::forwarder {

inline constexpr int exit_failure = 1;
/// Exit code of a bad configuration (FUNCIE_* variables): also reported to Lambda as the
/// init error "Funcie.ConfigError".
inline constexpr int exit_config = 2;

/// What runs an invocation nobody took through the tunnel: CMD for wrap, an error for proxy.
struct fallback {
  struct outcome {
    /// Posted for the invocation.
    runtime_api::result result;
    /// Set: the process ends with this code once the result is posted (CMD exited).
    std::optional<int> exit_code;
  };
  /// Runs the invocation (moved in). Must not throw for anything the function did.
  std::function<boost::asio::awaitable<outcome>(runtime_api::invocation)> run;
  /// May be empty. Completes with an exit code when the runtime ends by itself between
  /// invocations (CMD exited); raced with each /next.
  std::function<boost::asio::awaitable<int>()> ended;
};

/// One per process, on the calling thread.
class cloud_runtime {
 public:
  /// `name` ("wrap", "proxy") starts every message, `upstream` is the real Runtime API
  /// (host:port). No I/O yet.
  cloud_runtime(std::string name, const std::string& upstream);
  cloud_runtime(const cloud_runtime&) = delete;
  cloud_runtime& operator=(const cloud_runtime&) = delete;

  boost::asio::io_context& io() { return io_; }
  runtime::client& upstream() { return upstream_; }

  /// The forwarder as the environment configures it (`app` overrides FUNCIE_APP when not
  /// empty); forwarding may be off. nullptr when a FUNCIE_* value is bad: it was reported
  /// with report_config_error and the process should exit with exit_config.
  const forwarder* open_forwarder(std::string_view app);

  /// Prints `message`, reports it to Lambda as the init error Funcie.ConfigError and
  /// returns exit_config.
  int report_config_error(const std::string& message);

  /// Reports an init error, then waits for Lambda to stop the environment (SIGTERM or
  /// SIGINT) as a runtime does: exiting at once would race the report (the service may see
  /// the exit first and call it Runtime.ExitError). Returns exit_failure.
  int report_init_error_and_wait(const runtime_api::function_error& error);

  /// For each invocation from the real Runtime API: the forwarder's result, else what
  /// `not_taken` makes of it; posts it. Returns an exit code from `not_taken`; throws
  /// runtime::client_error when the real Runtime API goes away.
  boost::asio::awaitable<int> serve(const fallback& not_taken);

  /// Runs `main` until it returns an exit code, or until SIGTERM or SIGINT, then
  /// `on_signal(signal)` and the exit code it returns: whichever ends first decides. An
  /// exception from `main` is one line on stderr and exit_failure.
  int run(boost::asio::awaitable<int> main,
          const std::function<boost::asio::awaitable<int>(int)>& on_signal);

 private:
  std::string name_;
  boost::asio::io_context io_;
  runtime::client upstream_;
  std::optional<forwarder> forwarder_;
};

}  // namespace funcie::forwarder
