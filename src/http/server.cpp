#include "http/server.hpp"

#include "http/piece_body.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffer_traits.hpp>
#include <boost/beast/core/buffers_cat.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <list>
#include <system_error>

namespace funcie::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;

std::string_view header_value(const request_header& req, std::string_view name) {
  auto it = req.find(name);
  return it == req.end() ? std::string_view{} : std::string_view(it->value());
}

bool wants_keep_alive(const request_header& req) {
  const bhttp::token_list connection{header_value(req, "Connection")};
  bool close = false;
  bool keep = false;
  for (const auto& token : connection) {
    if (beast::iequals(token, "close")) close = true;
    if (beast::iequals(token, "keep-alive")) keep = true;
  }
  return req.version() >= 11 ? !close : keep;
}

response make_response(unsigned status, std::string body, std::string_view content_type,
                       unsigned version) {
  response res{static_cast<bhttp::status>(status), version};
  if (!content_type.empty()) res.set(bhttp::field::content_type, content_type);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

namespace {

constexpr std::size_t read_chunk_bytes = 64 * 1024;

// Writes `res` at once when the socket takes it all (a small answer on loopback always
// does), without a trip through the event loop; what is left goes asynchronously. `held`
// (answers held for this one, already serialized) goes first, in the same write; it is
// cleared.
asio::awaitable<void> write_response(tcp::socket& socket, response& res,
                                     boost::system::error_code& ec, std::string& held) {
  bhttp::response_serializer<bhttp::string_body> serializer(res);
  std::string_view before = held;
  bool blocked = false;
  while (!serializer.is_done() && !blocked && !ec) {
    serializer.next(ec, [&](boost::system::error_code& write_ec, const auto& buffers) {
      std::size_t n = 0;
      if (before.empty()) {
        n = socket.write_some(buffers, write_ec);
      } else {
        n = socket.write_some(
            beast::buffers_cat(asio::const_buffer(before.data(), before.size()), buffers),
            write_ec);
        const std::size_t of_held = std::min(n, before.size());
        before.remove_prefix(of_held);
        n -= of_held;
      }
      if (write_ec == asio::error::would_block || write_ec == asio::error::try_again) {
        write_ec = {};
        blocked = true;
      }
      serializer.consume(n);
    });
  }
  if (!ec && !before.empty()) {
    co_await asio::async_write(socket, asio::const_buffer(before.data(), before.size()),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
  held.clear();
  if (ec || serializer.is_done()) co_return;
  co_await bhttp::async_write(socket, serializer, asio::redirect_error(asio::use_awaitable, ec));
}

// Writes the held answers on their own: before an answer the server does not write through
// write_response, or before the connection ends.
asio::awaitable<void> flush_held(tcp::socket& socket, std::string& held,
                                 boost::system::error_code& ec) {
  if (held.empty()) co_return;
  co_await asio::async_write(socket, asio::buffer(held),
                             asio::redirect_error(asio::use_awaitable, ec));
  held.clear();
}

// `res` as it goes on the wire.
std::string serialized(response& res) {
  bhttp::response_serializer<bhttp::string_body> serializer(res);
  std::string out;
  boost::system::error_code ec;
  while (!ec && !serializer.is_done()) {
    serializer.next(ec, [&](boost::system::error_code&, const auto& buffers) {
      for (const auto piece : beast::buffers_range_ref(buffers)) {
        out.append(static_cast<const char*>(piece.data()), piece.size());
      }
      serializer.consume(beast::buffer_bytes(buffers));
    });
  }
  return out;
}

bool expects_continue(const request_header& header) {
  return beast::iequals(header_value(header, "Expect"), "100-continue");
}

// One streamed request on a connection the server owns: the parser goes on from the
// header the server read, with no body limit.
class streamed_connection final : public streamed_request {
 public:
  streamed_connection(tcp::socket& socket, beast::flat_buffer& buffer,
                      bhttp::request_parser<bhttp::empty_body>&& head, std::string raw_header,
                      std::any& data)
      : socket_(socket),
        buffer_(buffer),
        parser_(std::move(head)),
        raw_header_(std::move(raw_header)),
        data_(data) {
    parser_.eager(true);
  }

  const request_header& header() const override { return parser_.get().base(); }
  std::string_view raw_header() const override { return raw_header_; }
  bool done() const override { return parser_.is_done(); }
  std::any& connection_data() override { return data_; }

  asio::awaitable<piece> read() override {
    for (;;) {
      if (parser_.is_done()) co_return piece{};
      if (buffer_.size() > 0) {
        parser_.get().body().clear();
        boost::system::error_code ec;
        const std::size_t used = parser_.put(buffer_.data(), ec);
        if (ec && ec != bhttp::error::need_more) throw std::system_error(ec, "malformed request");
        if (used > 0) {
          raw_.assign(static_cast<const char*>(buffer_.data().data()), used);
          buffer_.consume(used);
          co_return piece{raw_, parser_.get().body()};
        }
      }
      boost::system::error_code ec;
      const std::size_t n = co_await socket_.async_read_some(
          buffer_.prepare(read_chunk_bytes), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) throw std::system_error(ec, "the request ended before its body did");
      buffer_.commit(n);
    }
  }

  asio::awaitable<void> write_raw(std::string_view bytes) override {
    co_await asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()),
                               asio::use_awaitable);
  }

  asio::awaitable<void> write(response& res) override {
    res.version(header().version());
    co_await bhttp::async_write(socket_, res, asio::use_awaitable);
  }

  asio::awaitable<void> send_continue() override {
    if (continued_ || !expects_continue(header())) co_return;
    continued_ = true;
    co_await write_raw("HTTP/1.1 100 Continue\r\n\r\n");
  }

 private:
  tcp::socket& socket_;
  beast::flat_buffer& buffer_;
  bhttp::request_parser<piece_body> parser_;
  std::string raw_header_;
  std::string raw_;
  std::any& data_;
  bool continued_ = false;
};

}  // namespace

struct server::state : std::enable_shared_from_this<server::state> {
  state(asio::any_io_executor ex, const tcp::endpoint& endpoint, server_options opts, handlers h)
      : acceptor(ex), options(opts), callbacks(std::move(h)) {
    boost::system::error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      throw std::system_error(ec, "cannot listen on " + endpoint.address().to_string() + ":" +
                                      std::to_string(endpoint.port()));
    }
  }

  tcp::acceptor acceptor;
  server_options options;
  handlers callbacks;
  std::list<tcp::socket*> open;  // connections to close on stop()
  bool stopped = false;

  // Coroutines start later than co_spawn is called: each takes its reference to the state
  // as a parameter (copied into the frame at once), so a server destroyed before they first
  // run is not used after it is freed.
  asio::awaitable<void> accept_loop(std::shared_ptr<state> /*keep_alive*/) {
    while (!stopped) {
      boost::system::error_code ec;
      tcp::socket socket =
          co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (stopped || ec == asio::error::operation_aborted) co_return;
        spdlog::warn("accept failed: {}", ec.message());
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      // Writes that would wait fail at once instead (write_response then waits for room).
      socket.non_blocking(true, ec);
      asio::co_spawn(acceptor.get_executor(), serve(shared_from_this(), std::move(socket)),
                     asio::detached);
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<state> /*keep_alive*/, tcp::socket socket) {
    auto it = open.insert(open.end(), &socket);
    beast::flat_buffer buffer;
    // Beast sizes each read from the free capacity: without room, a 6 MB body arrives 512
    // bytes per recv (measured: 8.8 ms against 1.2 ms per 1 MB invocation).
    buffer.reserve(64 * 1024);
    try {
      co_await serve_requests(socket, buffer);
    } catch (const std::exception& e) {
      spdlog::debug("connection ended: {}", e.what());
    }
    open.erase(it);
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  // Reads until the buffer holds a whole header (or more than the limit). False when the
  // connection ends first. The buffer often holds the whole request after one read: it is
  // then parsed here without another trip through the event loop (docs/emulate.md).
  asio::awaitable<bool> read_header(tcp::socket& socket, beast::flat_buffer& buffer) {
    for (;;) {
      const std::string_view seen(static_cast<const char*>(buffer.data().data()), buffer.size());
      if (seen.find("\r\n\r\n") != std::string_view::npos) co_return true;
      if (seen.size() > options.header_limit) co_return true;  // the parser refuses it
      boost::system::error_code ec;
      const std::size_t n = co_await socket.async_read_some(
          buffer.prepare(read_chunk_bytes), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return false;
      buffer.commit(n);
    }
  }

  // Feeds the buffer to `parser` and reads more until the message is done. An error of the
  // framing or the body limit comes from the parser; a broken connection from the read.
  template <class Parser>
  static asio::awaitable<void> read_body(tcp::socket& socket, beast::flat_buffer& buffer,
                                         Parser& parser, boost::system::error_code& ec) {
    while (!parser.is_done()) {
      if (buffer.size() > 0) {
        const std::size_t used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        if (ec == bhttp::error::need_more) ec = {};
        if (ec) co_return;
        if (parser.is_done()) co_return;
        if (used > 0) continue;
      }
      const std::size_t n = co_await socket.async_read_some(
          buffer.prepare(read_chunk_bytes), asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::eof) {
        parser.put_eof(ec);
        if (!ec) ec = bhttp::error::partial_message;
        co_return;
      }
      if (ec) co_return;
      buffer.commit(n);
    }
  }

  asio::awaitable<void> serve_requests(tcp::socket& socket, beast::flat_buffer& buffer) {
    std::any connection_data;
    // Answers held to go out with the next one (handlers::may_hold), serialized.
    std::string held;
    co_await serve_each(socket, buffer, connection_data, held);
    // The connection ends here: what was held goes first, as far as the client still reads.
    boost::system::error_code ignored;
    if (!stopped) co_await flush_held(socket, held, ignored);
  }

  asio::awaitable<void> serve_each(tcp::socket& socket, beast::flat_buffer& buffer,
                                   std::any& connection_data, std::string& held) {
    for (;;) {
      if (!co_await read_header(socket, buffer)) co_return;
      bhttp::request_parser<bhttp::empty_body> head;
      head.header_limit(static_cast<std::uint32_t>(options.header_limit));
      head.body_limit(boost::none);
      boost::system::error_code ec;
      const std::size_t header_bytes = head.put(buffer.data(), ec);
      if (ec || !head.is_header_done()) co_return;  // not HTTP, or a header over the limit
      if (callbacks.wants_stream && callbacks.wants_stream(head.get().base())) {
        co_await flush_held(socket, held, ec);  // the handler writes on its own
        if (ec) co_return;
        // The header exactly as received, for a relay that passes it on.
        std::string raw_header(static_cast<const char*>(buffer.data().data()), header_bytes);
        buffer.consume(header_bytes);
        streamed_connection streamed(socket, buffer, std::move(head), std::move(raw_header),
                                     connection_data);
        const bool keep_alive = co_await callbacks.on_stream(streamed);
        // A body the handler left unread is still on the connection: it cannot be reused.
        if (!keep_alive || stopped || !streamed.done()) co_return;
        continue;
      }
      buffer.consume(header_bytes);
      // A declared Content-Length over the limit is answered before the body is read.
      if (head.content_length() && *head.content_length() > options.body_limit) {
        co_await flush_held(socket, held, ec);
        co_await answer_too_large(socket, head.get().base());
        co_return;
      }
      if (expects_continue(head.get().base())) {
        co_await flush_held(socket, held, ec);
        if (ec) co_return;
        co_await asio::async_write(socket,
                                   asio::buffer(std::string_view("HTTP/1.1 100 Continue\r\n\r\n")),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
      }
      bhttp::request_parser<bhttp::string_body> parser(std::move(head));
      parser.eager(true);
      parser.body_limit(options.body_limit);
      co_await read_body(socket, buffer, parser, ec);
      if (ec == bhttp::error::body_limit) {
        co_await flush_held(socket, held, ec);
        co_await answer_too_large(socket, parser.get().base());
        co_return;
      }
      if (ec) {
        if (ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message &&
            ec != asio::error::eof && ec != asio::error::connection_reset &&
            ec != asio::error::operation_aborted) {
          auto res = make_response(400, "malformed HTTP request: " + ec.message(), "text/plain");
          res.keep_alive(false);
          co_await write_response(socket, res, ec, held);
        }
        co_return;
      }
      request req = parser.release();
      bool keep_alive = req.keep_alive();
      response res;
      try {
        res = co_await callbacks.on_request(req);
      } catch (const std::exception& e) {
        if (stopped) co_return;
        spdlog::error("request {} {} failed: {}", std::string_view(req.method_string()),
                      std::string_view(req.target()), e.what());
        res = make_response(500, "internal error", "text/plain");
      }
      if (stopped) co_return;
      res.version(req.version());
      res.keep_alive(keep_alive && res.keep_alive());
      // The client pipelined its next request and reads this answer with that one's: one
      // write, one wake-up of the client for both (docs/emulate.md).
      if (res.keep_alive() && held.empty() && buffer.size() > 0 && callbacks.may_hold &&
          callbacks.may_hold(req.base())) {
        held = serialized(res);
        continue;
      }
      co_await write_response(socket, res, ec, held);
      if (ec || !res.keep_alive()) co_return;
    }
  }

  asio::awaitable<void> answer_too_large(tcp::socket& socket, const request_header& header) {
    auto res = callbacks.too_large(header);
    res.version(header.version());
    res.keep_alive(false);
    boost::system::error_code ec;
    co_await bhttp::async_write(socket, res, asio::redirect_error(asio::use_awaitable, ec));
    // Let the client see the answer before the close resets a body it is still sending.
    socket.shutdown(tcp::socket::shutdown_send, ec);
    asio::steady_timer give_up(socket.get_executor(), std::chrono::seconds(2));
    give_up.async_wait([&socket](boost::system::error_code wait_ec) {
      if (!wait_ec) socket.cancel();
    });
    std::array<char, 64 * 1024> sink;
    std::size_t drained = 0;
    while (!ec && drained < 16 * 1024 * 1024) {
      drained += co_await socket.async_read_some(asio::buffer(sink),
                                                 asio::redirect_error(asio::use_awaitable, ec));
    }
    give_up.cancel();
  }
};

server::server(asio::any_io_executor executor, const tcp::endpoint& endpoint,
               server_options options, handlers h)
    : state_(std::make_shared<state>(std::move(executor), endpoint, options, std::move(h))) {}

server::~server() {
  stop();
}

std::uint16_t server::port() const {
  return state_->acceptor.local_endpoint().port();
}

void server::start() {
  asio::co_spawn(state_->acceptor.get_executor(), state_->accept_loop(state_), asio::detached);
}

void server::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  boost::system::error_code ignored;
  state_->acceptor.close(ignored);
  for (auto* socket : state_->open) socket->close(ignored);
}

}  // namespace funcie::http
