// The Lambda service in miniature: up to `concurrency` execution environments, made on
// demand, an invocation waiting for a free one when all are busy.
#pragma once

#include "emulate/config.hpp"
#include "emulate/environment.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/channel.hpp>

#include <deque>
#include <memory>
#include <vector>

namespace funcie::emulate {

class emulator {
 public:
  emulator(boost::asio::any_io_executor executor, function_config config);
  ~emulator();

  const function_config& config() const { return config_; }

  /// Runs `invocation` (request id and trace id set by the caller) in a free environment.
  boost::asio::awaitable<outcome> invoke(runtime_api::invocation invocation);

  /// Stops every runtime: SIGTERM, then SIGKILL after `grace`.
  boost::asio::awaitable<void> shut_down(std::chrono::milliseconds grace);

 private:
  using slot_channel =
      boost::asio::experimental::channel<void(boost::system::error_code, environment*)>;
  boost::asio::awaitable<environment*> acquire();
  void release(environment* env);

  boost::asio::any_io_executor executor_;
  function_config config_;
  std::vector<std::unique_ptr<environment>> environments_;
  std::vector<environment*> idle_;  // most recently used last: warm ones go first
  std::deque<std::shared_ptr<slot_channel>> waiting_;
  bool shutting_down_ = false;
};

}  // namespace funcie::emulate
