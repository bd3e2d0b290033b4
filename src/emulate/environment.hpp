// One execution environment: a runtime process with its own Runtime API endpoint, started
// on first use and reset (process killed, started afresh next time) after a timeout, an
// exit or an init error, as on Lambda.
#pragma once

#include "emulate/config.hpp"
#include "process/child.hpp"
#include "runtime_api/server.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/channel.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace funcie::emulate {

/// What the caller of Invoke gets back.
struct outcome {
  bool function_error = false;  ///< X-Amz-Function-Error: Unhandled
  std::string body;             ///< The payload, or the error JSON.
  std::string content_type;
  std::string error_type;
};

class environment {
 public:
  environment(boost::asio::any_io_executor executor, const function_config& config, unsigned index);
  ~environment();

  /// Runs one invocation to its end. Sets the deadline (now + timeout) when the runtime
  /// takes it, unless the invocation carries one (context.deadline_ms != 0, forwarded from
  /// the cloud): that one is kept and the invocation times out at it. Never throws for what the
  /// runtime does; throws process::spawn_error when the command cannot start at all.
  boost::asio::awaitable<outcome> run(runtime_api::invocation invocation);

  /// Asks the runtime to stop (SIGTERM).
  void terminate();
  /// Kills the runtime now (SIGKILL to its process group) and forgets it: the next run()
  /// starts it afresh. Only while no run() is in progress (the emulator's idle ones).
  void stop() { reset(); }
  /// Waits until `deadline` for the runtime to exit, then kills it.
  boost::asio::awaitable<void> shut_down(std::chrono::steady_clock::time_point deadline);

  unsigned index() const { return index_; }
  /// The runtime process's pid; 0 when none was started.
  int runtime_pid() const;
  /// How long the last run() waited for a runtime it started to ask for work (Lambda's
  /// Init Duration); zero when the runtime was warm.
  std::chrono::microseconds last_init() const { return last_init_; }

 private:
  using exit_channel =
      boost::asio::experimental::channel<void(boost::system::error_code, process::exit_status)>;
  void start();
  void reset();
  boost::asio::awaitable<outcome> exited(const std::string& request_id);

  boost::asio::any_io_executor executor_;
  const function_config& config_;
  unsigned index_;
  std::unique_ptr<runtime_api::server> api_;
  std::unique_ptr<process::child> process_;
  std::shared_ptr<exit_channel> exit_;
  std::chrono::microseconds last_init_{0};
};

}  // namespace funcie::emulate
