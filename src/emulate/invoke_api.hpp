// The Lambda Invoke API (POST /2015-03-31/functions/NAME/invocations) in front of an
// emulator, answering as AWS does so that any SDK or curl can call it.
#pragma once

#include "emulate/emulator.hpp"
#include "http/server.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <memory>

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
  boost::asio::awaitable<http::response> handle(http::request& req);
  boost::asio::any_io_executor executor_;
  emulator& emulator_;
  std::unique_ptr<http::server> server_;
};

}  // namespace funcie::emulate
