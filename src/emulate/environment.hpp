// One execution environment: a runtime process with its own Runtime API endpoint, started
// on first use and reset (process killed, started afresh next time) after a timeout, an
// exit or an init error, as on Lambda.
#pragma once

#include "emulate/config.hpp"
#include "process/child.hpp"
#include "runtime_api/server.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace funcie::emulate {

/// What the caller of Invoke gets back.
struct outcome {
  bool function_error = false;  ///< X-Amz-Function-Error: Unhandled
  std::string body;             ///< The payload, or the error JSON.
  std::string content_type;
  std::string error_type;
  /// The runtime streamed its response. With a stream_sink, its bytes went there and `body`
  /// holds only an error's JSON; without one, `body` is the whole stream (up to Lambda's
  /// 6 MB buffered limit), as Lambda answers a buffered Invoke of a streaming function.
  bool streamed = false;
  /// The lines the runtime printed while it ran this invocation (for LogType Tail).
  std::string log;
};

/// Where a streamed response goes as the runtime writes it (InvokeWithResponseStream).
struct stream_sink {
  /// Once, before the first bytes, with the content type the runtime set.
  std::function<boost::asio::awaitable<void>(std::string_view content_type)> start;
  std::function<boost::asio::awaitable<void>(std::string_view bytes)> bytes;
};

class environment {
 public:
  environment(boost::asio::any_io_executor executor, const function_config& config, unsigned index);
  ~environment();

  /// Runs one invocation to its end. Sets the deadline (now + timeout) when the runtime
  /// takes it, unless the invocation carries one (context.deadline_ms != 0, forwarded from
  /// the cloud): that one is kept and the invocation times out at it. Never throws for what the
  /// runtime does; throws process::spawn_error when the command cannot start at all.
  boost::asio::awaitable<outcome> run(runtime_api::invocation invocation,
                                      const stream_sink* sink = nullptr);

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
  // What ends a wait on the runtime early. Set by the process's exit watcher or the
  // watchdog, which then close the Runtime API so that the wait in progress ends
  // (docs/emulate.md, "How an invocation waits").
  enum class interruption { none, exited, timed_out };
  // One per runtime process: its exit watcher may outlive the environment's interest in it.
  struct watch {
    runtime_api::server* api = nullptr;  // closed to interrupt; null once reset
    bool busy = false;                   // a run() waits on the runtime
    interruption why = interruption::none;
    std::optional<process::exit_status> exit;
  };
  // Lets the watchdog's handler find the environment while it lives.
  struct anchor {
    environment* self = nullptr;
  };
  void start();
  void reset();
  // The phase in progress (init, invoke) ends at `deadline`: the watchdog is armed for it
  // unless it already fires earlier (then it looks again when it fires).
  void watch_until(std::chrono::steady_clock::time_point deadline);
  void on_watchdog();
  void interrupt(interruption why);
  outcome exit_outcome(const std::string& request_id) const;
  boost::asio::awaitable<outcome> timed_out(const std::string& request_id, bool forwarded_deadline);

  boost::asio::any_io_executor executor_;
  const function_config& config_;
  unsigned index_;
  std::unique_ptr<runtime_api::server> api_;
  std::unique_ptr<process::child> process_;
  std::shared_ptr<watch> watch_;
  // One timer for the environment's whole life, re-armed only when a deadline comes earlier
  // than the one it waits for: no timer is set or cancelled per invocation.
  boost::asio::steady_timer watchdog_;
  std::chrono::steady_clock::time_point armed_{};  // when the watchdog fires; {} when idle
  std::chrono::steady_clock::time_point phase_deadline_{};
  std::shared_ptr<anchor> anchor_ = std::make_shared<anchor>();
  struct log_capture {
    bool active = false;
    std::string text;
  };
  std::shared_ptr<log_capture> log_ = std::make_shared<log_capture>();
  boost::asio::awaitable<outcome> run_invocation(runtime_api::invocation invocation,
                                                 const stream_sink* sink);
  std::chrono::microseconds last_init_{0};
};

}  // namespace funcie::emulate
