// The Lambda Invoke API (POST /2015-03-31/functions/NAME/invocations), InvokeWithResponseStream
// and the read-only function operations tools call first (GetFunction,
// GetFunctionConfiguration, ListFunctions) in front of an emulator, answering as AWS does so
// that any SDK or curl can call it.
#pragma once

#include "emulate/emulator.hpp"
#include "emulate/invoke_protocol.hpp"
#include "http/server.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <variant>

namespace funcie::emulate {

/// Largest Invoke request body Lambda accepts (6 MB = 6291456 bytes).
inline constexpr std::size_t max_invoke_request_bytes = 6291456;

class invoke_api {
 public:
  /// Listens on `endpoint` at once; throws std::system_error when it cannot.
  invoke_api(boost::asio::any_io_executor executor, emulator& target,
             const boost::asio::ip::tcp::endpoint& endpoint);
  std::uint16_t port() const;
  void stop();

 private:
  struct prepared {
    runtime_api::invocation inv;
    invocation_type type = invocation_type::request_response;
    bool tail = false;  ///< X-Amz-Log-Type: Tail
  };
  boost::asio::awaitable<http::response> handle(http::request& req);
  boost::asio::awaitable<bool> invoke_streaming(http::streamed_request& in);
  /// ResourceNotFoundException when `ref` names another function.
  std::optional<http::response> not_this_function(const function_ref& ref) const;
  /// The invocation a request asks for, or the error answer it gets.
  std::variant<http::response, prepared> prepare(const http::request_header& req,
                                                 const function_ref& ref, std::string body) const;
  boost::asio::any_io_executor executor_;
  emulator& emulator_;
  std::unique_ptr<http::server> server_;
};

}  // namespace funcie::emulate
