#include "runtime/client.hpp"
#include "runtime_api/pipelining.hpp"

#include "runtime_api/server.hpp"
#include "util/base64.hpp"

#include <fmt/format.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <array>
#include <charconv>
#include <utility>

namespace funcie::runtime {

namespace {
constexpr std::size_t read_buffer_bytes = 64 * 1024;
}  // namespace

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

namespace {

// An event may be max_payload_bytes; the headroom keeps a slightly larger one from turning
// into a protocol error here rather than a clear one from the Runtime API.
constexpr std::size_t max_body_bytes = runtime_api::max_payload_bytes + 64 * 1024;
// Client context and Cognito identity ride in headers and can be a few KiB each.
constexpr std::uint32_t max_header_bytes = 64 * 1024;

std::string_view to_std(beast::string_view s) {
  return {s.data(), s.size()};
}
beast::string_view to_beast(std::string_view s) {
  return {s.data(), s.size()};
}

// The Runtime API's own error body: {"errorType": ..., "errorMessage": ...}.
std::pair<std::string, std::string> parse_api_error(std::string_view body) {
  error_code ec;
  const boost::json::value value = boost::json::parse(body, ec);
  const auto* object = ec ? nullptr : value.if_object();
  if (object == nullptr) return {};
  auto text = [&](std::string_view key) {
    const auto* field = object->if_contains(key);
    const auto* string = field != nullptr ? field->if_string() : nullptr;
    return string != nullptr ? std::string(string->data(), string->size()) : std::string();
  };
  return {text("errorType"), text("errorMessage")};
}

}  // namespace

client_error::client_error(client_errc code, const std::string& message,
                           std::optional<unsigned> http_status, std::string api_error_type,
                           std::string api_error_message)
    : std::runtime_error(message),
      code_(code),
      http_status_(http_status),
      api_error_type_(std::move(api_error_type)),
      api_error_message_(std::move(api_error_message)) {}

bool client_error::is_connection_error() const noexcept {
  return code_ == client_errc::connect_failed || code_ == client_errc::connection_lost ||
         code_ == client_errc::timeout;
}

// The one place where a failure of a call becomes a client_error.
namespace {

[[noreturn]] void fail(const std::string& host_port, const http::request<http::string_body>& call,
                       error_code ec) {
  client_errc code = client_errc::connection_lost;
  if (ec == beast::error::timeout) {
    code = client_errc::timeout;
  } else if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
             ec != http::error::end_of_stream && ec != http::error::partial_message) {
    code = client_errc::bad_response;  // not HTTP, or over a size limit
  }
  throw client_error(
      code, fmt::format("Runtime API {}: {} {}: {}", host_port, to_std(call.method_string()),
                        to_std(call.target()), ec.message()));
}

[[noreturn]] void fail(const std::string& host_port, const http::request<http::string_body>& call,
                       const http::response<http::string_body>& answer) {
  auto [type, message] = parse_api_error(answer.body());
  std::string text =
      fmt::format("Runtime API {}: {} {}: HTTP {}", host_port, to_std(call.method_string()),
                  to_std(call.target()), answer.result_int());
  if (!type.empty() || !message.empty()) text += fmt::format(": {}: {}", type, message);
  throw client_error(client_errc::http_status, text, answer.result_int(), std::move(type),
                     std::move(message));
}

[[noreturn]] void fail_connect(const std::string& host_port, std::string_view why) {
  throw client_error(client_errc::connect_failed,
                     fmt::format("Runtime API {}: cannot connect: {}", host_port, why));
}

[[noreturn]] void fail_protocol(const std::string& host_port, std::string_view why) {
  throw client_error(client_errc::bad_response,
                     fmt::format("Runtime API {}: GET next: {}", host_port, why));
}

}  // namespace

client::client(asio::any_io_executor executor, std::string host_port)
    : client(std::move(executor), std::move(host_port), options{}) {}

client::client(asio::any_io_executor executor, std::string host_port, options opts)
    : host_port_(std::move(host_port)),
      options_(opts),
      next_target_(runtime_api::route_path(runtime_api::route_kind::next)),
      resolver_(executor),
      stream_(executor),
      watchdog_(executor),
      anchor_(std::make_shared<client*>(this)) {
  // Beast sizes each read from the buffer's free capacity: without room, a 6 MiB event
  // arrives 512 bytes per recv.
  buffer_.reserve(read_buffer_bytes);
  // "host:port", or "[v6 address]:port"; Lambda always gives a port.
  std::string_view address = host_port_;
  std::size_t colon = std::string_view::npos;
  if (address.starts_with('[')) {
    const std::size_t close = address.find(']');
    if (close != std::string_view::npos) {
      host_ = address.substr(1, close - 1);
      if (address.size() > close + 1 && address[close + 1] == ':') colon = close + 1;
    }
  } else {
    colon = address.rfind(':');
    host_ = address.substr(0, colon);
  }
  if (colon != std::string_view::npos) port_ = address.substr(colon + 1);
  if (host_.empty() || port_.empty()) fail_connect(host_port_, "the address is not host:port");
  error_code not_literal;
  const auto ip = asio::ip::make_address(host_, not_literal);
  unsigned port = 0;
  const auto [end, port_ec] = std::from_chars(port_.data(), port_.data() + port_.size(), port);
  if (!not_literal && port_ec == std::errc() && end == port_.data() + port_.size() && port > 0 &&
      port <= 65535) {
    literal_.emplace(ip, static_cast<std::uint16_t>(port));
  }

  request_.version(11);
  request_.keep_alive(true);
  request_.set(http::field::host, to_beast(host_port_));
  request_.set(http::field::user_agent, "funcie-runtime");
  next_request_ = fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: funcie-runtime\r\n\r\n",
                              next_target_, host_port_);
}

client::~client() {
  *anchor_ = nullptr;
}

void client::bound_until(std::chrono::steady_clock::time_point deadline) {
  bound_ = deadline;
  if (deadline == std::chrono::steady_clock::time_point{}) return;
  if (armed_ != std::chrono::steady_clock::time_point{} && armed_ <= deadline) return;
  armed_ = deadline;
  watchdog_.expires_at(deadline);  // a wait in progress ends with operation_aborted
  watchdog_.async_wait([anchor = anchor_](error_code ec) {
    if (ec || *anchor == nullptr) return;
    (*anchor)->armed_ = {};
    (*anchor)->on_watchdog();
  });
}

void client::on_watchdog() {
  if (bound_ == std::chrono::steady_clock::time_point{}) return;  // idle: armed by the next call
  if (std::chrono::steady_clock::now() < bound_) {
    bound_until(bound_);
    return;
  }
  // Past the bound: the pending read or write ends with operation_aborted, reported as a
  // timeout.
  timed_out_ = true;
  error_code ignored;
  stream_.socket().cancel(ignored);
}

asio::awaitable<void> client::write_request(error_code& ec, std::string_view after) {
  // The header as bytes, then header, body and `after` in one send: a result's POST and the
  // GET /next behind it cost the runtime one system call.
  http::request_serializer<http::string_body> serializer(request_);
  serializer.split(true);
  header_bytes_.clear();
  while (!ec && !serializer.is_header_done()) {
    serializer.next(ec, [&](error_code&, const auto& buffers) {
      for (const auto piece : beast::buffers_range_ref(buffers)) {
        header_bytes_.append(static_cast<const char*>(piece.data()), piece.size());
      }
      serializer.consume(beast::buffer_bytes(buffers));
    });
  }
  if (ec) co_return;
  const std::array<asio::const_buffer, 3> pieces{asio::buffer(header_bytes_),
                                                 asio::buffer(request_.body()),
                                                 asio::const_buffer(after.data(), after.size())};
  auto& socket = stream_.socket();
  // Writes that would wait fail at once instead; what is left then goes asynchronously.
  if (!socket.non_blocking()) socket.non_blocking(true, ec);
  if (ec) co_return;
  std::size_t sent = socket.send(pieces, 0, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec = {};
    sent = 0;
  }
  if (ec || sent == asio::buffer_size(pieces)) co_return;
  beast::buffers_suffix<std::array<asio::const_buffer, 3>> rest(pieces);
  rest.consume(sent);
  co_await asio::async_write(stream_, rest, asio::redirect_error(asio::use_awaitable, ec));
}

void client::close() noexcept {
  next_sent_ = false;
  error_code ignored;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
  buffer_.consume(buffer_.size());
}

asio::awaitable<void> client::connect() {
  auto pause = options_.connect_retry_pause;
  std::string last_error;
  for (int attempt = 1;; ++attempt) {
    error_code ec;
    if (endpoints_.empty() && !literal_) {
      endpoints_ = co_await resolver_.async_resolve(host_, port_,
                                                    asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!ec) {
      stream_.expires_after(options_.connect_timeout);
      if (literal_) {
        co_await stream_.async_connect(*literal_, asio::redirect_error(asio::use_awaitable, ec));
      } else {
        co_await stream_.async_connect(endpoints_, asio::redirect_error(asio::use_awaitable, ec));
      }
      stream_.expires_never();
      if (!ec) {
        stream_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
        co_return;
      }
    }
    endpoints_ = {};  // resolve again: the address may have moved
    last_error = ec.message();
    if (attempt >= options_.connect_attempts) break;
    asio::steady_timer timer(stream_.get_executor(), pause);
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    pause *= 2;
  }
  fail_connect(host_port_, last_error);
}

asio::awaitable<client::response_type> client::exchange(bool bounded, bool then_next, mode how) {
  try {
    co_return co_await exchange_once(bounded, then_next, how);
  } catch (...) {
    // A failed call often ends the caller's loop: an armed watchdog would keep its event
    // loop running until it fires.
    stop_watchdog();
    throw;
  }
}

void client::stop_watchdog() noexcept {
  bound_ = {};
  armed_ = {};
  watchdog_.cancel();
}

asio::awaitable<client::response_type> client::exchange_once(bool bounded, bool then_next,
                                                             mode how) {
  for (bool resent = false;; resent = true) {
    const bool reused = stream_.socket().is_open();
    if (!reused) co_await connect();

    error_code ec;
    bool answered = false;
    timed_out_ = false;
    bound_until(std::chrono::steady_clock::now() + options_.io_timeout);
    // A post written earlier (mode::write_only) or a GET /next that went out with the last
    // post is only waited for here; once the connection broke, it is sent again.
    bool already_sent = false;
    if (how == mode::read_only) {
      already_sent = reused && !resent;
    } else {
      already_sent = std::exchange(next_sent_, false) && reused;
    }
    if (!already_sent) {
      const std::string_view after = then_next ? std::string_view(next_request_) : "";
      co_await write_request(ec, after);
      if (!ec && then_next) next_sent_ = true;  // close() clears it when the connection ends
    }
    if (!ec && how == mode::write_only) {
      bound_until({});
      co_return response_type{};
    }
    if (!ec) {
      if (!bounded) bound_until({});
      http::response_parser<http::string_body> parser;
      parser.header_limit(max_header_bytes);
      parser.body_limit(max_body_bytes);
      // An answer that came with the one before it (the event behind a held 202) is parsed
      // from the buffer here: Beast's read would complete it through the event loop.
      if (!parse_buffered(parser, ec)) {
        co_await http::async_read(stream_, buffer_, parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
      }
      answered = parser.got_some();
      if (!ec) {
        bound_until({});
        response_type answer = parser.release();
        if (!answer.keep_alive()) close();
        if (answer.result_int() / 100 != 2) fail(host_port_, request_, answer);
        co_return answer;
      }
    }
    bound_until({});
    if (timed_out_) ec = beast::error::timeout;
    close();
    // A kept-alive connection the server has closed meanwhile fails before any answer
    // arrives: the server never saw the request, so send it once more on a new connection.
    if (reused && !resent && !answered && ec != beast::error::timeout) continue;
    fail(host_port_, request_, ec);
  }
}

bool client::parse_buffered(http::response_parser<http::string_body>& parser, error_code& ec) {
  parser.eager(true);
  while (buffer_.size() > 0 && !parser.is_done()) {
    const std::size_t used = parser.put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec == http::error::need_more) {
      ec = {};
      return false;
    }
    if (ec) return true;  // malformed: the caller fails it as a read would
    if (used == 0) return false;
  }
  return parser.is_done();
}

std::optional<client_error> client::take_refused_result() {
  return std::exchange(refused_, std::nullopt);
}

asio::awaitable<void> client::finish_post() {
  post_pending_ = false;
  try {
    // Not bounded: the server may hold this answer until the next event is ready.
    co_await exchange(false, true, mode::read_only);
  } catch (const client_error& e) {
    std::string().swap(request_.body());
    // A refused result does not end the runtime (run_handler's post_result).
    if (e.code() != client_errc::http_status || e.http_status().value_or(500) >= 500) throw;
    refused_ = e;
    co_return;
  }
  std::string().swap(request_.body());
}

asio::awaitable<runtime_api::invocation> client::next() {
  refused_.reset();
  if (post_pending_) co_await finish_post();
  request_.method(http::verb::get);
  request_.target(to_beast(next_target_));
  request_.erase(http::field::content_type);
  request_.erase(to_beast(runtime_api::header::function_error_type));
  request_.erase(to_beast(runtime_api::header::pipelining));
  request_.body().clear();
  request_.prepare_payload();

  response_type answer = co_await exchange(false);
  pipelining_ = answer.find(to_beast(runtime_api::header::pipelining)) != answer.end();
  runtime_api::invocation invocation;
  try {
    invocation.context = runtime_api::parse_invocation_headers(
        [&answer](std::string_view name) -> std::optional<std::string_view> {
          const auto field = answer.find(to_beast(name));
          if (field == answer.end()) return std::nullopt;
          return to_std(field->value());
        });
  } catch (const runtime_api::protocol_error& e) {
    stop_watchdog();
    fail_protocol(host_port_, e.what());
  }
  for (const auto& field : answer) {
    const std::string_view name = to_std(field.name_string());
    const std::string_view value = to_std(field.value());
    if (runtime_api::is_other_next_header(name, value)) {
      invocation.other_headers.emplace_back(name, value);
    }
  }
  invocation.payload = std::move(answer.body());
  co_return invocation;
}

asio::awaitable<void> client::post(std::string target, std::string body,
                                   std::string_view content_type, std::string_view error_type) {
  request_.method(http::verb::post);
  request_.target(to_beast(target));
  request_.set(http::field::content_type, to_beast(content_type));
  if (error_type.empty()) {
    request_.erase(to_beast(runtime_api::header::function_error_type));
  } else {
    request_.set(to_beast(runtime_api::header::function_error_type), to_beast(error_type));
  }
  request_.body() = std::move(body);
  request_.prepare_payload();
  // An init error ends the runtime: no /next follows it.
  const bool then_next = pipelining_ && expect_next_ &&
                         target != runtime_api::route_path(runtime_api::route_kind::init_error);
  if (then_next) {
    // The GET /next goes behind it and next() reads both answers: the server may hold this
    // one until the next event is ready, and write both at once (one wake-up of the runtime
    // instead of two; docs/emulate.md). The body is kept until then, for a resend.
    request_.set(to_beast(runtime_api::header::pipelining), "1");
    try {
      co_await exchange(true, true, mode::write_only);
    } catch (...) {
      std::string().swap(request_.body());
      throw;
    }
    post_pending_ = true;
    co_return;
  }
  request_.erase(to_beast(runtime_api::header::pipelining));
  try {
    co_await exchange(true, then_next);
  } catch (...) {
    std::string().swap(request_.body());
    throw;
  }
  std::string().swap(request_.body());  // a response may be 6 MiB: do not keep it around
}

// Arguments of co_await calls are named locals: GCC 12 destroys some temporaries in a
// co_await full-expression twice.
asio::awaitable<void> client::post_response(std::string_view request_id, std::string body,
                                            std::string_view content_type) {
  std::string target = runtime_api::route_path(runtime_api::route_kind::response, request_id);
  co_await post(std::move(target), std::move(body), content_type, {});
}

asio::awaitable<void> client::post_streaming_response(std::string_view request_id,
                                                      std::string_view content_type,
                                                      runtime_api::piece_source& source) {
  const std::string target = runtime_api::route_path(runtime_api::route_kind::response, request_id);
  request_.method(http::verb::post);
  request_.target(to_beast(target));
  request_.set(
      http::field::content_type,
      to_beast(content_type.empty() ? std::string_view("application/octet-stream") : content_type));
  request_.erase(to_beast(runtime_api::header::function_error_type));
  request_.erase(to_beast(runtime_api::header::pipelining));
  request_.erase(http::field::content_length);
  request_.set(to_beast(runtime_api::header::response_mode), "streaming");
  request_.set(http::field::trailer,
               "Lambda-Runtime-Function-Error-Type, "
               "Lambda-Runtime-Function-Error-Body");
  request_.body().clear();
  request_.chunked(true);
  auto restore = [this] {
    request_.chunked(false);
    request_.erase(to_beast(runtime_api::header::response_mode));
    request_.erase(http::field::trailer);
  };
  error_code ec;
  try {
    // The header goes at once (on a fresh connection if the kept one was closed meanwhile),
    // each piece as it is read, the error (if any) as trailers.
    for (bool resent = false;; resent = true) {
      const bool reused = stream_.socket().is_open();
      if (!reused) co_await connect();
      http::request_serializer<http::string_body> header(request_);
      stream_.expires_after(options_.io_timeout);
      co_await http::async_write_header(stream_, header,
                                        asio::redirect_error(asio::use_awaitable, ec));
      stream_.expires_never();
      if (!ec) break;
      close();
      if (!reused || resent) fail(host_port_, request_, ec);
    }
    while (std::optional<std::string> piece = co_await source.read()) {
      if (piece->empty()) continue;
      stream_.expires_after(options_.io_timeout);
      co_await asio::async_write(stream_, http::make_chunk(asio::buffer(*piece)),
                                 asio::redirect_error(asio::use_awaitable, ec));
      stream_.expires_never();
      if (ec) {
        close();
        fail(host_port_, request_, ec);
      }
    }
    http::fields trailers;
    if (const auto& error = source.error()) {
      trailers.set(to_beast(runtime_api::header::function_error_type), to_beast(error->error_type));
      trailers.set(to_beast(runtime_api::header::function_error_body),
                   util::to_base64(source.error_body()));
    }
    stream_.expires_after(options_.io_timeout);
    co_await asio::async_write(stream_, http::make_chunk_last(trailers),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      stream_.expires_never();
      close();
      fail(host_port_, request_, ec);
    }
    http::response_parser<http::string_body> parser;
    parser.header_limit(max_header_bytes);
    parser.body_limit(max_body_bytes);
    co_await http::async_read(stream_, buffer_, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    stream_.expires_never();
    if (ec) {
      close();
      fail(host_port_, request_, ec);
    }
    response_type answer = parser.release();
    if (!answer.keep_alive()) close();
    if (answer.result_int() / 100 != 2) fail(host_port_, request_, answer);
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

asio::awaitable<void> client::post_error(std::string_view request_id,
                                         const runtime_api::function_error& error) {
  std::string body = runtime_api::format_error(error);
  co_await post_error_body(request_id, std::move(body), error.error_type);
}

asio::awaitable<void> client::post_init_error(const runtime_api::function_error& error) {
  std::string body = runtime_api::format_error(error);
  co_await post_init_error_body(std::move(body), error.error_type);
}

asio::awaitable<void> client::post_error_body(std::string_view request_id, std::string body,
                                              std::string_view error_type) {
  std::string target = runtime_api::route_path(runtime_api::route_kind::error, request_id);
  co_await post(std::move(target), std::move(body), runtime_api::error_content_type, error_type);
}

asio::awaitable<void> client::post_init_error_body(std::string body, std::string_view error_type) {
  std::string target = runtime_api::route_path(runtime_api::route_kind::init_error);
  co_await post(std::move(target), std::move(body), runtime_api::error_content_type, error_type);
}

}  // namespace funcie::runtime
