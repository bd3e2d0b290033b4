// A small HTTP/1.1 server on Asio coroutines: one coroutine per connection, keep-alive,
// a body limit per server. The Runtime API and the Invoke API are both built on it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <any>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

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

/// A request whose body its handler reads piece by piece as it arrives, instead of the
/// server reading it whole first: for a relay that passes every byte on as it comes, or a
/// streamed Runtime API response. The handler also writes the answer itself.
class streamed_request {
 public:
  /// What one read() took off the connection.
  struct piece {
    std::string_view raw;   ///< The bytes as received, framing (chunk sizes, trailers) included.
    std::string_view body;  ///< The body bytes among them, decoded.
  };

  virtual ~streamed_request() = default;
  /// The request line and fields as parsed; trailer fields are added once done().
  virtual const request_header& header() const = 0;
  /// The request line and header fields exactly as received, up to the empty line.
  virtual std::string_view raw_header() const = 0;
  /// Waits for the next bytes of the body. An empty piece once the message is done.
  /// Throws std::system_error when the connection breaks or the framing is malformed.
  virtual boost::asio::awaitable<piece> read() = 0;
  virtual bool done() const = 0;
  /// Writes bytes to the client as they are.
  virtual boost::asio::awaitable<void> write_raw(std::string_view bytes) = 0;
  /// Writes a whole response (version and keep-alive as the request's).
  virtual boost::asio::awaitable<void> write(response& res) = 0;
  /// Sends "100 Continue" when the client asked for it (Expect: 100-continue), once.
  virtual boost::asio::awaitable<void> send_continue() = 0;
  /// Kept for the life of the client's connection, across its requests (a relay's
  /// connection upstream).
  virtual std::any& connection_data() = 0;
};

struct handlers {
  /// Answers one request. May wait as long as it likes (a Runtime API /next does).
  /// An exception becomes a 500 with a short message; the server keeps running.
  std::function<boost::asio::awaitable<response>(request&)> on_request;
  /// Answers a request whose body is over the limit; sees the header only.
  std::function<response(const request_header&)> too_large;
  /// May be empty. True: the request goes to on_stream instead, before its body is read
  /// (and without the body limit).
  std::function<bool(const request_header&)> wants_stream;
  /// Reads the request and writes the answer; returns whether the connection may serve
  /// another request. An exception closes the connection.
  std::function<boost::asio::awaitable<bool>(streamed_request&)> on_stream;
  /// May be empty. True: the answer to this request may wait and go out in one write with
  /// the answer to the next request on the connection. Only asked when the client has
  /// already sent bytes of that next request (it pipelined it), so a client that waits for
  /// this answer before it sends more still gets it at once. Sees the header only.
  std::function<bool(const request_header&)> may_hold;
};

/// The value of header `name`, or empty when absent.
std::string_view header_value(const request_header& req, std::string_view name);

/// Whether the client lets its connection serve another request after this one (HTTP/1.1
/// unless "Connection: close", HTTP/1.0 only with "Connection: keep-alive").
bool wants_keep_alive(const request_header& req);

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
