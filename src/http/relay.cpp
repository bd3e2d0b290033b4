#include "http/relay.hpp"

#include "http/piece_body.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/parser.hpp>

#include <memory>
#include <system_error>

namespace funcie::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using namespace asio::experimental::awaitable_operators;
using asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr std::size_t read_chunk_bytes = 64 * 1024;

struct upstream_connection {
  explicit upstream_connection(const asio::any_io_executor& ex) : socket(ex) {
    buffer.reserve(read_chunk_bytes);
  }
  tcp::socket socket;
  beast::flat_buffer buffer;
  bool broken = false;

  void close() {
    broken = true;
    error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
};

asio::awaitable<void> connect(upstream_connection& up, const std::string& upstream) {
  std::string_view address = upstream;
  std::string host;
  std::string port;
  if (address.starts_with('[')) {
    const std::size_t close = address.find(']');
    if (close != std::string_view::npos) {
      host = address.substr(1, close - 1);
      if (close + 1 < address.size() && address[close + 1] == ':') port = address.substr(close + 2);
    }
  } else if (const std::size_t colon = address.rfind(':'); colon != std::string_view::npos) {
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  if (host.empty() || port.empty()) {
    throw std::runtime_error("the upstream address " + upstream + " is not host:port");
  }
  tcp::resolver resolver(up.socket.get_executor());
  const auto endpoints = co_await resolver.async_resolve(host, port, asio::use_awaitable);
  co_await asio::async_connect(up.socket, endpoints, asio::use_awaitable);
  up.socket.set_option(tcp::no_delay(true));
}

// The request, as it arrives; then, when the answer is not through yet, waits to be
// cancelled once it is. A client that breaks off breaks the upstream connection, and this
// returns.
asio::awaitable<void> copy_request(streamed_request& in, upstream_connection& up,
                                   const std::string& header, const bool& answered) {
  try {
    co_await asio::async_write(up.socket, asio::buffer(header), asio::use_awaitable);
    while (!in.done()) {
      const auto piece = co_await in.read();
      if (!piece.raw.empty()) {
        co_await asio::async_write(up.socket, asio::buffer(piece.raw.data(), piece.raw.size()),
                                   asio::use_awaitable);
      }
    }
  } catch (const std::exception& e) {
    spdlog::debug("relay: the request broke off: {}", e.what());
    up.close();
    co_return;
  }
  if (answered) co_return;  // an early answer went first; both are through now
  // A channel nobody sends on: a wait that only cancellation ends, without arming a timer.
  asio::experimental::channel<void(error_code)> until_answered(co_await asio::this_coro::executor,
                                                               0);
  error_code ignored;
  co_await until_answered.async_receive(asio::redirect_error(asio::use_awaitable, ignored));
}

// After an early final answer (a 413 to a body still coming), the rest of the request goes
// on as the upstream reads it, as a client talking to it directly would send it: this waits
// meanwhile for the upstream to close its side, which ends the relay of the request too (the
// client's connection is then closed, as the upstream's was). Cancelled when the request is
// through first.
asio::awaitable<void> watch_upstream(upstream_connection& up) {
  error_code ec;
  co_await up.socket.async_read_some(up.buffer.prepare(read_chunk_bytes),
                                     asio::redirect_error(asio::use_awaitable, ec));
  if (ec == asio::error::operation_aborted) co_return;
  // Closed, reset, or bytes that answer nothing: the connection is done for.
  spdlog::debug("relay: the upstream ended its side after an early answer: {}", ec.message());
  up.close();
}

// The answers (1xx ones, then the final one), each byte passed to the client as it comes.
asio::awaitable<void> copy_response(streamed_request& in, upstream_connection& up,
                                    relay_result& result,
                                    const std::function<void(unsigned)>& on_answer,
                                    bool& answered) {
  try {
    const bool head = in.header().method() == bhttp::verb::head;
    bool told = false;
    for (;;) {
      bhttp::response_parser<piece_body> parser;
      parser.eager(true);
      parser.body_limit(boost::none);
      parser.header_limit(64 * 1024);
      parser.skip(head);
      while (!parser.is_done()) {
        if (up.buffer.size() > 0) {
          error_code ec;
          const std::size_t used = parser.put(up.buffer.data(), ec);
          if (ec && ec != bhttp::error::need_more) throw std::system_error(ec, "malformed answer");
          parser.get().body().clear();
          if (used > 0 && !told && parser.is_header_done() && on_answer) {
            const unsigned status = parser.get().result_int();
            if (status < 100 || status >= 200 || status == 101) {
              told = true;
              on_answer(status);
            }
          }
          if (used > 0) {
            std::string bytes(static_cast<const char*>(up.buffer.data().data()), used);
            up.buffer.consume(used);
            co_await in.write_raw(bytes);
            continue;
          }
        }
        error_code ec;
        const std::size_t n = co_await up.socket.async_read_some(
            up.buffer.prepare(read_chunk_bytes), asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::eof) {
          parser.put_eof(ec);  // an answer that ends with the connection
          if (ec) throw std::system_error(ec, "the answer ended early");
          up.broken = true;
          continue;
        }
        if (ec) throw std::system_error(ec, "reading the answer");
        up.buffer.commit(n);
      }
      const unsigned status = parser.get().result_int();
      if (status >= 100 && status < 200 && status != 101) continue;  // the final one follows
      result.status = status;
      result.keep_alive = parser.get().keep_alive() && wants_keep_alive(in.header()) && !up.broken;
      answered = true;
      if (!in.done() && !up.broken) co_await watch_upstream(up);
      co_return;
    }
  } catch (const std::exception& e) {
    spdlog::debug("relay: the answer broke off: {}", e.what());
    result = relay_result{};
    up.close();
  }
}

}  // namespace

std::string with_host(std::string_view raw_header, std::string_view host) {
  std::size_t line_end = raw_header.find("\r\n");
  while (line_end != std::string_view::npos) {
    const std::size_t start = line_end + 2;
    line_end = raw_header.find("\r\n", start);
    if (line_end == std::string_view::npos || line_end == start) break;
    const std::string_view field = raw_header.substr(start, line_end - start);
    if (field.size() < 5 || !beast::iequals(field.substr(0, 5), "host:")) continue;
    std::size_t value = start + 5;
    while (value < line_end && (raw_header[value] == ' ' || raw_header[value] == '\t')) ++value;
    std::string out(raw_header.substr(0, value));
    out += host;
    out += raw_header.substr(line_end);
    return out;
  }
  return std::string(raw_header);
}

asio::awaitable<relay_result> relay(streamed_request& in, const std::string& upstream,
                                    std::function<void(unsigned status)> on_answer) {
  auto& slot = in.connection_data();
  std::shared_ptr<upstream_connection> up;
  if (auto* held = std::any_cast<std::shared_ptr<upstream_connection>>(&slot)) up = *held;
  if (!up || up->broken || !up->socket.is_open()) {
    up = std::make_shared<upstream_connection>(co_await asio::this_coro::executor);
    slot = up;
    try {
      co_await connect(*up, upstream);
    } catch (const std::exception& e) {
      spdlog::warn("relay: cannot reach {}: {}", upstream, e.what());
      slot.reset();
      co_return relay_result{};
    }
  }
  const std::string header = with_host(in.raw_header(), upstream);
  relay_result result;
  bool answered = false;
  co_await (copy_request(in, *up, header, answered) ||
            copy_response(in, *up, result, on_answer, answered));
  // A request that did not get through whole (the upstream closed after an early answer):
  // neither connection is at a message boundary any more.
  if (!in.done() || up->broken) result.keep_alive = false;
  if (!result.keep_alive) {
    up->close();
    slot.reset();
  }
  co_return result;
}

}  // namespace funcie::http
