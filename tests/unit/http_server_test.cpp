#include "http/relay.hpp"
#include "http/server.hpp"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

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
