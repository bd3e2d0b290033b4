// A client of the Lambda Runtime API (what a runtime calls): one keep-alive HTTP/1.1
// connection, C++20 coroutines. Used by run_handler and by the `funcie wrap` proxy.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "runtime_api/protocol.hpp"

namespace funcie::runtime_api {
class piece_source;
}

namespace funcie::runtime {

/// What went wrong in a call to the Runtime API.
enum class client_errc {
  connect_failed,   ///< Nobody accepted a connection (after the connect retries).
  connection_lost,  ///< The connection broke during the exchange.
  timeout,          ///< Connecting or a bounded exchange took too long.
  http_status,      ///< The Runtime API answered with a status other than 2xx.
  bad_response,     ///< The answer was not HTTP or not the protocol (e.g. no request id).
};

/// The one exception type client throws; the message names the call and the cause.
class client_error : public std::runtime_error {
 public:
  client_error(client_errc code, const std::string& message,
               std::optional<unsigned> http_status = std::nullopt, std::string api_error_type = {},
               std::string api_error_message = {});

  client_errc code() const noexcept { return code_; }
  /// The HTTP status when the Runtime API answered at all.
  std::optional<unsigned> http_status() const noexcept { return http_status_; }
  /// errorType of the Runtime API's JSON error body (e.g. "InvalidStateTransition"); may be empty.
  const std::string& api_error_type() const noexcept { return api_error_type_; }
  /// errorMessage of the Runtime API's JSON error body; may be empty.
  const std::string& api_error_message() const noexcept { return api_error_message_; }
  /// True when the Runtime API could not be talked to at all (connect, lost, timeout).
  bool is_connection_error() const noexcept;

 private:
  client_errc code_;
  std::optional<unsigned> http_status_;
  std::string api_error_type_;
  std::string api_error_message_;
};

class client {
 public:
  struct options {
    /// Bound of one connect attempt.
    std::chrono::milliseconds connect_timeout{10'000};
    /// Bound of a post, from write to the end of the answer. GET /next has none.
    std::chrono::milliseconds io_timeout{10'000};
    /// Connect attempts before connect_failed; the pauses between them double from
    /// connect_retry_pause, so the defaults give up after about 1.3 s.
    int connect_attempts = 8;
    std::chrono::milliseconds connect_retry_pause{10};
  };

  /// `host_port` is the value of AWS_LAMBDA_RUNTIME_API: "host:port" or "[v6]:port".
  /// Nothing is connected until the first call.
  client(boost::asio::any_io_executor executor, std::string host_port);
  client(boost::asio::any_io_executor executor, std::string host_port, options opts);

  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// GET /runtime/invocation/next: waits, without a time limit, for the next invocation.
  boost::asio::awaitable<runtime_api::invocation> next();

  /// POST /runtime/invocation/{id}/response with `body` as is.
  boost::asio::awaitable<void> post_response(std::string_view request_id, std::string body,
                                             std::string_view content_type);

  /// POST /runtime/invocation/{id}/response in streaming mode
  /// (Lambda-Runtime-Function-Response-Mode: streaming, chunked): each piece of `source` as
  /// it is read; its error, if any, as the trailers Lambda-Runtime-Function-Error-Type and
  /// -Body (base64).
  boost::asio::awaitable<void> post_streaming_response(std::string_view request_id,
                                                       std::string_view content_type,
                                                       runtime_api::piece_source& source);

  /// POST /runtime/invocation/{id}/error.
  boost::asio::awaitable<void> post_error(std::string_view request_id,
                                          const runtime_api::function_error& error);

  /// POST /runtime/init/error.
  boost::asio::awaitable<void> post_init_error(const runtime_api::function_error& error);

  /// POST /runtime/invocation/{id}/error with `body` as is (an error JSON another runtime
  /// posted) and `error_type` in Lambda-Runtime-Function-Error-Type: for proxies.
  boost::asio::awaitable<void> post_error_body(std::string_view request_id, std::string body,
                                               std::string_view error_type);

  /// POST /runtime/init/error with `body` as is and `error_type` in the header.
  boost::asio::awaitable<void> post_init_error_body(std::string body, std::string_view error_type);

  /// Whether the runtime will call next() after the result it posts next: only then may the
  /// post carry the GET /next with it (when the server takes pipelined requests). Off at
  /// first. The post then returns once written, and next() reads its answer together with
  /// the next event's (the server may hold the one until the other is ready): a post that
  /// fails is thrown by next(), and one the Runtime API refused with a 4xx is told by
  /// take_refused_result() after next() returned.
  void expect_next(bool on) noexcept { expect_next_ = on; }

  /// After next(): the refusal (a 4xx) of the result posted before it, when that post's
  /// answer was read by next() and refused; cleared by the call.
  std::optional<client_error> take_refused_result();

  /// Disarms the client's one timer (it bounds posts lazily and stays armed between calls):
  /// for a caller that is done with the client, so that its event loop can run out of work.
  void stop_watchdog() noexcept;

  /// The address this client talks to, as given.
  const std::string& host_port() const noexcept { return host_port_; }

 private:
  using request_type = boost::beast::http::request<boost::beast::http::string_body>;
  using response_type = boost::beast::http::response<boost::beast::http::string_body>;

  // Sends request_ and returns the 2xx answer; throws client_error for anything else.
  // `bounded` puts io_timeout on the whole exchange.
  // `then_next`: a GET /next goes out in the same write, right behind request_ (the server
  // said it takes pipelined requests), and next() then only reads its answer.
  // `mode` write_only: returns after the write (the answer is read later, read_only, with
  // request_ unchanged); read_only: request_ is already on the connection.
  enum class mode { whole, write_only, read_only };
  boost::asio::awaitable<response_type> exchange(bool bounded, bool then_next = false,
                                                 mode how = mode::whole);
  boost::asio::awaitable<response_type> exchange_once(bool bounded, bool then_next, mode how);
  // Reads the answer of a post written with mode::write_only (next() does, first).
  boost::asio::awaitable<void> finish_post();
  boost::asio::awaitable<void> connect();
  boost::asio::awaitable<void> post(std::string target, std::string body,
                                    std::string_view content_type, std::string_view error_type);
  void close() noexcept;
  // Writes request_ and then `after`: at once when the socket takes it all (one send),
  // else what is left asynchronously.
  boost::asio::awaitable<void> write_request(boost::system::error_code& ec,
                                             std::string_view after = {});
  // Parses what buffer_ holds into `parser`: true when that finished the message (or ec
  // says it is malformed), false when more must be read.
  bool parse_buffered(boost::beast::http::response_parser<boost::beast::http::string_body>& parser,
                      boost::system::error_code& ec);
  // Bounds the exchange in progress until `deadline` ({} for no bound). One timer for the
  // client's life, moved only when a bound comes earlier than the one it waits for: no timer
  // is set or cancelled per call (bench/README.md).
  void bound_until(std::chrono::steady_clock::time_point deadline);
  void on_watchdog();

  std::string host_port_;
  std::string host_;
  std::string port_;
  options options_;
  std::string next_target_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::ip::tcp::resolver::results_type endpoints_;
  // Set when host_ is an IP address (as Lambda gives it): connects without a resolver, whose
  // first use starts a thread and costs a runtime's start about a millisecond.
  std::optional<boost::asio::ip::tcp::endpoint> literal_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  request_type request_;      // reused so its header storage is allocated once
  std::string header_bytes_;  // request_'s header as sent, reused
  boost::asio::steady_timer watchdog_;
  std::chrono::steady_clock::time_point bound_{};  // of the exchange in progress; {} for none
  std::chrono::steady_clock::time_point armed_{};  // when the watchdog fires; {} when idle
  bool timed_out_ = false;
  // funcie's own Runtime API answers /next with runtime_api::header::pipelining: a result's
  // POST then carries the next GET /next behind it (docs/emulate.md, "How an invocation
  // waits"). Never set against Lambda's, which does not say so.
  bool pipelining_ = false;
  std::string next_request_;  // the GET /next request, whole
  bool next_sent_ = false;    // a GET /next is on the connection, its answer not read yet
  // A result's POST (request_, body included) went out with mode::write_only: next() reads
  // its answer before the /next one's.
  bool post_pending_ = false;
  std::optional<client_error> refused_;  // of the post next() finished
  bool expect_next_ = false;
  // Lets the watchdog's handler find the client while it lives.
  std::shared_ptr<client*> anchor_;
};

}  // namespace funcie::runtime
