// The Runtime API as Lambda serves it to one execution environment. The owner (the
// emulator, later the consumer) hands it invocations one at a time; the runtime process
// pulls them with GET /next and answers with POST .../response or .../error.
#pragma once

#include "runtime_api/protocol.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace funcie::runtime_api {

/// Lambda's limit for a streamed response (Lambda-Runtime-Function-Response-Mode:
/// streaming): 200 MB, docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html.
inline constexpr std::size_t max_streamed_response_bytes = 200 * 1024 * 1024;

/// The body of a streamed response, read as the runtime writes it.
class response_stream {
 public:
  struct state;
  explicit response_stream(std::shared_ptr<state> s) : state_(std::move(s)) {}

  /// The next bytes the runtime wrote, nullopt at the end of the stream (then error() says
  /// how it ended). Throws when the environment closes meanwhile.
  boost::asio::awaitable<std::optional<std::string>> read();
  /// After read() returned nullopt: the error the runtime reported in its trailers
  /// (Lambda-Runtime-Function-Error-Type and -Body, the body as JSON), or the one its
  /// stream ended with (broken off, over the size limit); nullopt when it succeeded.
  const std::optional<function_error>& error() const;
  /// The error's body as JSON (the runtime's own when it sent one), when error() is set.
  const std::string& error_body() const;

 private:
  std::shared_ptr<state> state_;
};

/// A streamed response that comes from elsewhere than a runtime of this server (the
/// forwarder's tunnel): read() as response_stream's, then error() and error_body().
class piece_source {
 public:
  virtual ~piece_source() = default;
  virtual boost::asio::awaitable<std::optional<std::string>> read() = 0;
  virtual const std::optional<function_error>& error() const = 0;
  virtual const std::string& error_body() const = 0;
};

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
  /// Set when the runtime streams its response: `body` is empty and the bytes come through
  /// here as they are written; a mid-stream error ends the stream (outcome stays success
  /// until then).
  std::shared_ptr<response_stream> stream;
  /// Set when the response is to be posted streamed from `pieces` (a forwarded streamed
  /// response); `body` is empty, content_type holds the stream's.
  std::shared_ptr<piece_source> pieces;
  /// Already passed on to the real Runtime API as the runtime sent it (a relaying server):
  /// nothing is left to post. `body` is empty.
  bool relayed = false;
};

class server {
 public:
  /// Listens on 127.0.0.1 at `port` (0 picks a free one) at once. With `relay_to` (the
  /// real Runtime API, host:port), every request but GET /next is passed on there as it
  /// arrives, byte for byte (http/relay.hpp), and its answer back: results are `relayed`.
  explicit server(boost::asio::any_io_executor executor, std::uint16_t port = 0,
                  std::string relay_to = {});
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// "127.0.0.1:PORT", the value for AWS_LAMBDA_RUNTIME_API.
  std::string address() const;

  /// Waits until the runtime is ready for an invocation (it called /next). Returns the
  /// runtime's init error instead if it posted one.
  boost::asio::awaitable<std::optional<result>> wait_ready();
  /// Whether wait_ready() would complete at once: the runtime waits in /next, or it posted
  /// an init error.
  bool ready() const;

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
