// The Runtime API as Lambda serves it to one execution environment. The owner (the
// emulator, later the consumer) hands it invocations one at a time; the runtime process
// pulls them with GET /next and answers with POST .../response or .../error.
#pragma once

#include <funcie/runtime_api/protocol.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace funcie::runtime_api {

/// What came of one invocation, as the runtime reported it.
struct result {
  enum class kind {
    success,         ///< POST .../response
    function_error,  ///< POST .../error, or a response Lambda refuses (too large)
    init_error,      ///< POST /init/error before the runtime took the invocation
  };
  kind outcome = kind::success;
  /// The response payload, byte for byte, or the error body as JSON
  /// ({"errorMessage","errorType",...}): as posted when it is a JSON object, else built.
  std::string body;
  std::string content_type;  ///< Of a success; empty when the runtime sent none.
  std::string error_type;    ///< Of an error.
};

class server {
 public:
  /// Listens on 127.0.0.1 at `port` (0 picks a free one) at once.
  explicit server(boost::asio::any_io_executor executor, std::uint16_t port = 0);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// "127.0.0.1:PORT", the value for AWS_LAMBDA_RUNTIME_API.
  std::string address() const;

  /// Waits until the runtime is ready for an invocation (it called /next). Returns the
  /// runtime's init error instead if it posted one.
  boost::asio::awaitable<std::optional<result>> wait_ready();

  /// Hands `inv` to the waiting /next and waits for the runtime's answer. Call after
  /// wait_ready() returned nullopt, one invocation at a time. Cancellable; the owner then
  /// resets the environment.
  boost::asio::awaitable<result> invoke(invocation inv);

  /// Stops serving and fails every wait in progress. Safe to call more than once.
  void close();

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace funcie::runtime_api
