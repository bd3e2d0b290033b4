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
