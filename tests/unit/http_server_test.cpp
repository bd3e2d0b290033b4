#include "http/relay.hpp"
#include "http/server.hpp"

#include <gtest/gtest.h>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <poll.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

namespace asio = boost::asio;

// A server made and dropped before its event loop first runs (wrap does this when the
// runtime command cannot start) must leave no coroutine behind that touches freed memory.
// The ASan run turns a use after free here into a failure.
TEST(HttpServer, DroppedBeforeTheLoopRunsIsSafe) {
  asio::io_context io;
  for (int i = 0; i < 3; ++i) {
    funcie::http::handlers h;
    h.on_request = [](funcie::http::request&) -> asio::awaitable<funcie::http::response> {
      co_return funcie::http::make_response(200, "ok", "text/plain");
    };
    funcie::http::server s(io.get_executor(),
                           asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), {},
                           std::move(h));
    s.start();
    EXPECT_GT(s.port(), 0);
  }
  EXPECT_NO_THROW(io.run());
}

// The one field a relay changes: Host names the upstream, spelling and spacing kept.
TEST(HttpRelay, RewritesOnlyTheHostValue) {
  using funcie::http::with_host;
  EXPECT_EQ(with_host("POST /x HTTP/1.1\r\nhost:  127.0.0.1:5\r\nX-A: b\r\n\r\n", "10.0.0.1:9001"),
            "POST /x HTTP/1.1\r\nhost:  10.0.0.1:9001\r\nX-A: b\r\n\r\n");
  EXPECT_EQ(with_host("GET / HTTP/1.1\r\nX-Host: a\r\nHost: a\r\n\r\n", "b:1"),
            "GET / HTTP/1.1\r\nX-Host: a\r\nHost: b:1\r\n\r\n");
  EXPECT_EQ(with_host("GET / HTTP/1.0\r\n\r\n", "b:1"), "GET / HTTP/1.0\r\n\r\n");
}

namespace {

// A server on its own thread whose GET /first answers at once and may be held
// (handlers::may_hold), and whose GET /second answers only when release() is called.
class holding_server {
 public:
  holding_server() : release_(io_, 1) {
    funcie::http::handlers h;
    h.on_request = [this](funcie::http::request& req) -> asio::awaitable<funcie::http::response> {
      if (req.target() == "/second") {
        second_entered_ = true;
        co_await release_.async_receive(asio::use_awaitable);
        co_return funcie::http::make_response(200, "two", "text/plain");
      }
      co_return funcie::http::make_response(200, "one", "text/plain");
    };
    h.may_hold = [](const funcie::http::request_header& req) { return req.target() == "/first"; };
    server_.emplace(io_.get_executor(),
                    asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0),
                    funcie::http::server_options{}, std::move(h));
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~holding_server() {
    asio::post(io_, [this] { server_->stop(); });
    io_.stop();
    thread_.join();
  }
  holding_server(const holding_server&) = delete;
  holding_server& operator=(const holding_server&) = delete;

  std::uint16_t port() const { return server_->port(); }
  bool second_entered() const { return second_entered_; }
  void release() {
    asio::post(io_, [this] { release_.try_send(boost::system::error_code{}); });
  }

 private:
  asio::io_context io_;
  asio::experimental::channel<void(boost::system::error_code)> release_;
  std::optional<funcie::http::server> server_;
  std::atomic<bool> second_entered_{false};
  std::thread thread_;
};

// Reads from `socket` until `text` has arrived (or the connection ends, or 30 s pass with
// nothing); what came so far.
std::string read_until_seen(asio::ip::tcp::socket& socket, std::string_view text) {
  std::string seen;
  char bytes[4096];
  while (seen.find(text) == std::string::npos) {
    pollfd readable{socket.native_handle(), POLLIN, 0};
    if (::poll(&readable, 1, 30'000) != 1) break;
    boost::system::error_code ec;
    const std::size_t n = socket.read_some(asio::buffer(bytes), ec);
    if (ec) break;
    seen.append(bytes, n);
  }
  return seen;
}

}  // namespace

// A client that pipelined its next request gets the held answer with that one's, in order,
// and not before: the answer to /first is written only when /second's is.
TEST(HttpServer, HoldsAnAnswerUntilThePipelinedNextOneAndWritesThemInOrder) {
  holding_server server;
  asio::io_context client_io;
  asio::ip::tcp::socket socket(client_io);
  socket.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  asio::write(socket, asio::buffer(std::string_view("GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
                                                    "GET /second HTTP/1.1\r\nHost: x\r\n\r\n")));
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!server.second_entered() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(server.second_entered());
  // Had /first's answer not been held, it would have been written before /second was read.
  socket.non_blocking(true);
  char probe[64];
  boost::system::error_code ec;
  const std::size_t early = socket.read_some(asio::buffer(probe), ec);
  EXPECT_EQ(ec, asio::error::would_block) << "answered early: " << std::string(probe, early);
  socket.non_blocking(false);

  server.release();
  const std::string seen = read_until_seen(socket, "two");
  const auto one = seen.find("\r\n\r\none");
  const auto two = seen.find("\r\n\r\ntwo");
  ASSERT_NE(one, std::string::npos) << seen;
  ASSERT_NE(two, std::string::npos) << seen;
  EXPECT_LT(one, two) << seen;
}

// A client that sends one request and waits for its answer gets it at once, even when the
// request is one whose answer may be held: nothing is held without a next request.
TEST(HttpServer, HoldsNothingForAClientThatDidNotPipeline) {
  holding_server server;
  asio::io_context client_io;
  asio::ip::tcp::socket socket(client_io);
  socket.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  asio::write(socket, asio::buffer(std::string_view("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")));
  const std::string seen = read_until_seen(socket, "one");
  EXPECT_NE(seen.find("\r\n\r\none"), std::string::npos) << seen;
}
