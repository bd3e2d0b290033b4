// The Lambda service in miniature: up to `concurrency` execution environments, made on
// demand, an invocation waiting for a free one when all are busy (until its deadline when
// it carries one), and a reload that restarts every runtime.
#pragma once

#include "emulate/config.hpp"
#include "emulate/environment.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace funcie::emulate {

class emulator {
 public:
  emulator(boost::asio::any_io_executor executor, function_config config);
  ~emulator();
  emulator(const emulator&) = delete;
  emulator& operator=(const emulator&) = delete;

  const function_config& config() const { return config_; }

  /// Runs `invocation` (request id and trace id set by the caller) in a free environment:
  /// an idle one (most recently used first), a new one while fewer than `concurrency`
  /// exist, else the first to be released, in FIFO order. When the invocation carries a
  /// deadline (context.deadline_ms != 0) and it passes while waiting, the outcome is
  /// Sandbox.Timedout and nothing runs. `start_by_ms` (Unix ms, 0: the deadline) bounds the
  /// wait instead: funcie connect passes the forwarder's limit, after which the caller has
  /// its answer and running the request would only repeat its side effects for nobody.
  /// Throws when the emulator shuts down meanwhile.
  /// `sink`: where a streamed response goes as it is written (environment::run).
  boost::asio::awaitable<outcome> invoke(runtime_api::invocation invocation,
                                         std::int64_t start_by_ms = 0,
                                         const stream_sink* sink = nullptr);

  /// A reload: every idle environment's runtime is killed now (the next invocation starts
  /// it afresh); a busy one finishes its invocation and is reset when it is released,
  /// before anyone reuses it. Waiting invocations are unaffected.
  void restart();
  /// How many times restart() was called.
  std::uint64_t generation() const { return generation_; }

  /// Environments running an invocation (or handed to one about to run).
  std::size_t busy() const { return environments_.size() - idle_.size(); }
  /// Invocations waiting for a free environment.
  std::size_t waiting() const { return waiting_.size(); }
  /// Environment `index` (as on_invoke and output name it); nullptr when there is none.
  const environment* environment_at(unsigned index) const;

  /// Stops every runtime: SIGTERM, then SIGKILL after `grace`.
  boost::asio::awaitable<void> shut_down(std::chrono::milliseconds grace);

 private:
  struct waiter;
  /// nullptr when `deadline_ms` passed while waiting.
  boost::asio::awaitable<environment*> acquire(std::int64_t deadline_ms);
  void release(environment* env);

  boost::asio::any_io_executor executor_;
  function_config config_;
  std::vector<std::unique_ptr<environment>> environments_;
  std::vector<environment*> idle_;  // most recently used last: warm ones go first
  std::deque<std::shared_ptr<waiter>> waiting_;
  std::vector<environment*> stale_;  // busy through a restart: reset when released
  std::uint64_t generation_ = 0;
  bool shutting_down_ = false;
};

}  // namespace funcie::emulate
