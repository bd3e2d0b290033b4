// A small HTTP/1.1 server on Asio coroutines: one coroutine per connection, keep-alive,
// a body limit per server. The Runtime API and the Invoke API are both built on it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstdint>
#include <functional>
#include <memory>

namespace funcie::http {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;
using request_header = boost::beast::http::request_header<>;

struct server_options {
  /// Largest request body accepted; a larger one is answered by `too_large` and the
  /// connection is closed.
  std::size_t body_limit = 1024 * 1024;
  std::size_t header_limit = 16 * 1024;
};

struct handlers {
  /// Answers one request. May wait as long as it likes (a Runtime API /next does).
  /// An exception becomes a 500 with a short message; the server keeps running.
  std::function<boost::asio::awaitable<response>(request&)> on_request;
  /// Answers a request whose body is over the limit; sees the header only.
  std::function<response(const request_header&)> too_large;
};

/// The value of header `name`, or empty when absent.
std::string_view header_value(const request_header& req, std::string_view name);

/// Builds a response with the common headers set.
response make_response(unsigned status, std::string body, std::string_view content_type,
                       unsigned version = 11);

class server {
 public:
  /// Binds `endpoint` at once (port 0 picks a free port); throws std::system_error with
  /// the address in the message when it cannot.
  server(boost::asio::any_io_executor executor, const boost::asio::ip::tcp::endpoint& endpoint,
         server_options options, handlers handlers);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  std::uint16_t port() const;
  /// Starts accepting connections.
  void start();
  /// Stops accepting and closes every open connection; pending handlers see their
  /// connection fail. Safe to call more than once.
  void stop();

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace funcie::http
