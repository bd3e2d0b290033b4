// redis::connection against a fake server written here (127.0.0.1 port 0, same io_context):
// reply conversion, bytes that are not RESP, a peer that closes or never answers, command
// timeouts, cancelled callers, subscriber-mode routing and the connect timeout.
#include "../support/async.hpp"
#include "redis/connection.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace rd = funcie::redis;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

using clock_type = std::chrono::steady_clock;

void run(const std::function<asio::awaitable<void>(asio::io_context&)>& test) {
  funcie::test::run_async(test, 30s);
}

using funcie::test::sleep_for;

// --- a fake Redis ---------------------------------------------------------------------------

asio::awaitable<bool> fill(tcp::socket& s, std::string& buf, std::size_t need) {
  char tmp[4096];
  while (buf.size() < need) {
    boost::system::error_code ec;
    std::size_t n = co_await s.async_read_some(asio::buffer(tmp),
                                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return false;
    buf.append(tmp, n);
  }
  co_return true;
}

asio::awaitable<std::optional<std::string>> read_line(tcp::socket& s, std::string& buf) {
  for (;;) {
    auto pos = buf.find("\r\n");
    if (pos != std::string::npos) {
      std::string line = buf.substr(0, pos);
      buf.erase(0, pos + 2);
      co_return line;
    }
    bool more = co_await fill(s, buf, buf.size() + 1);
    if (!more) co_return std::nullopt;
  }
}

// One RESP array of bulk strings, as clients send commands; nullopt at EOF.
asio::awaitable<std::optional<std::vector<std::string>>> read_command(tcp::socket& s,
                                                                      std::string& buf) {
  auto header = co_await read_line(s, buf);
  if (!header || header->size() < 2 || (*header)[0] != '*') co_return std::nullopt;
  int n = std::stoi(header->substr(1));
  std::vector<std::string> args;
  for (int i = 0; i < n; ++i) {
    auto len_line = co_await read_line(s, buf);
    if (!len_line || len_line->size() < 2) co_return std::nullopt;
    std::size_t len = std::stoul(len_line->substr(1));
    bool complete = co_await fill(s, buf, len + 2);
    if (!complete) co_return std::nullopt;
    args.push_back(buf.substr(0, len));
    buf.erase(0, len + 2);
  }
  co_return args;
}

asio::awaitable<void> send(tcp::socket& s, std::string bytes) {
  boost::system::error_code ec;
  co_await asio::async_write(s, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
}

std::string bulk(std::string_view s) {
  return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
}

using handler_type = std::function<asio::awaitable<void>(tcp::socket)>;

class fake_server {
 public:
  fake_server(asio::io_context& ctx, handler_type handler)
      : state_(std::make_shared<state>(ctx, std::move(handler))) {
    asio::co_spawn(ctx, accept_loop(state_), asio::detached);
  }
  ~fake_server() {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
  }
  std::uint16_t port() const { return state_->acceptor.local_endpoint().port(); }

  rd::connect_options options(bool tls = false) const {
    rd::connect_options o;
    o.server.host = "127.0.0.1";
    o.server.port = port();
    o.server.tls = tls;
    return o;
  }

 private:
  struct state {
    state(asio::io_context& ctx, handler_type h)
        : acceptor(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
          handler(std::move(h)) {}
    tcp::acceptor acceptor;
    handler_type handler;
  };

  static asio::awaitable<void> accept_loop(std::shared_ptr<state> st) {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s =
          co_await st->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(st->acceptor.get_executor(), guarded(st->handler, std::move(s)),
                     asio::detached);
    }
  }
  static asio::awaitable<void> guarded(handler_type handler, tcp::socket s) {
    try {
      co_await handler(std::move(s));
    } catch (...) {
    }
  }

  std::shared_ptr<state> state_;
};

// ECHO x -> $x; SLOW ms x -> waits ms, then $x; PING -> +PONG; QUIT -> closes. In order.
asio::awaitable<void> echo_handler(tcp::socket s) {
  std::string buf;
  for (;;) {
    auto cmd = co_await read_command(s, buf);
    if (!cmd || cmd->empty()) co_return;
    const std::string& name = (*cmd)[0];
    if (name == "SLOW") {
      co_await sleep_for(std::chrono::milliseconds(std::stoi(cmd->at(1))));
      co_await send(s, bulk(cmd->at(2)));
    } else if (name == "ECHO") {
      co_await send(s, bulk(cmd->at(1)));
    } else if (name == "QUIT") {
      co_return;
    } else {
      co_await send(s, "+PONG\r\n");
    }
  }
}

// Never answers, keeps the socket open.
asio::awaitable<void> silent_handler(tcp::socket s) {
  char tmp[4096];
  for (;;) {
    boost::system::error_code ec;
    co_await s.async_read_some(asio::buffer(tmp), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

template <class T>
asio::awaitable<std::optional<rd::error>> error_of(asio::awaitable<T> op) {
  std::optional<rd::error> caught;
  try {
    co_await std::move(op);
  } catch (const rd::error& e) {
    caught = e;
  }
  co_return caught;
}

// An execute() running on its own, its outcome kept.
struct outcome {
  bool finished = false;
  std::optional<rd::reply> result;
  std::optional<rd::error> failure;
};

std::shared_ptr<outcome> spawn_execute(asio::io_context& ctx, rd::connection& c,
                                       std::vector<std::string_view> args) {
  auto out = std::make_shared<outcome>();
  asio::co_spawn(ctx, c.execute(std::move(args)), [out](std::exception_ptr e, rd::reply r) {
    out->finished = true;
    if (!e) {
      out->result = std::move(r);
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const rd::error& err) {
      out->failure = err;
    } catch (...) {
    }
  });
  return out;
}

// --- tests ----------------------------------------------------------------------------------

TEST(RedisConnection, ConvertsEveryReplyTypeFedOneByteAtATime) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, [](tcp::socket s) -> asio::awaitable<void> {
      std::string buf;
      auto cmd = co_await read_command(s, buf);
      std::string answer =
          "*7\r\n$3\r\na_c\r\n+OK\r\n-ERR bad thing\r\n:-42\r\n$-1\r\n*2\r\n*-1\r\n$0\r\n\r\n"
          "*0\r\n";
      answer[9] = '\0';
      for (char c : answer) {
        co_await send(s, std::string(1, c));
        co_await sleep_for(0ms);
      }
      co_await silent_handler(std::move(s));
    });
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    std::vector<std::string_view> args{"GETALL"};
    rd::reply r = co_await c->execute(std::move(args));
    EXPECT_EQ(r.type, rd::reply::kind::array);
    if (r.elements.size() != 7) throw std::runtime_error("wrong element count");
    EXPECT_EQ(r.elements[0].type, rd::reply::kind::string);
    EXPECT_EQ(r.elements[0].str, std::string("a\0c", 3));
    EXPECT_EQ(r.elements[1].type, rd::reply::kind::status);
    EXPECT_EQ(r.elements[1].str, "OK");
    EXPECT_TRUE(r.elements[2].is_error());
    EXPECT_EQ(r.elements[2].str, "ERR bad thing");
    EXPECT_EQ(r.elements[3].type, rd::reply::kind::integer);
    EXPECT_EQ(r.elements[3].integer, -42);
    EXPECT_TRUE(r.elements[4].is_nil());
    EXPECT_EQ(r.elements[5].type, rd::reply::kind::array);
    EXPECT_TRUE(r.elements[5].elements.at(0).is_nil());
    EXPECT_EQ(r.elements[5].elements.at(1).type, rd::reply::kind::string);
    EXPECT_EQ(r.elements[5].elements.at(1).str, "");
    EXPECT_EQ(r.elements[6].type, rd::reply::kind::array);
    EXPECT_TRUE(r.elements[6].elements.empty());
  });
}

TEST(RedisConnection, SendsArgumentsAsRespArraysBinarySafe) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    std::vector<std::string> seen;
    fake_server server(ctx, [&seen](tcp::socket s) -> asio::awaitable<void> {
      std::string buf;
      auto cmd = co_await read_command(s, buf);
      if (cmd) seen = *cmd;
      co_await send(s, "+OK\r\n");
      co_await silent_handler(std::move(s));
    });
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    std::string big(5000, 'x');
    big[17] = '\0';
    big[18] = '\r';
    big[19] = '\n';
    std::string small("a\r\n\0b", 5);
    std::vector<std::string_view> args{"SET", small, big, ""};
    rd::reply r = co_await c->execute(std::move(args));
    EXPECT_EQ(r.type, rd::reply::kind::status);
    if (seen.size() != 4u) throw std::runtime_error("the server saw a wrong command");
    EXPECT_EQ(seen[1], small);
    EXPECT_EQ(seen[2], big);
    EXPECT_EQ(seen[3], "");
  });
}

TEST(RedisConnection, BytesThatAreNotRespAreAProtocolErrorAndClose) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, [](tcp::socket s) -> asio::awaitable<void> {
      std::string buf;
      co_await read_command(s, buf);
      co_await send(s, "HTTP/1.1 400 Bad Request\r\n\r\n");
      co_await silent_handler(std::move(s));
    });
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    std::vector<std::string_view> args{"PING"};
    auto e = co_await error_of(c->execute(args));
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::protocol);
    EXPECT_NE(std::string(e->what()).find(c->server_name()), std::string::npos) << e->what();
    EXPECT_NE(std::string(e->what()).find("not RESP"), std::string::npos) << e->what();
    EXPECT_FALSE(c->is_open());
    auto later = co_await error_of(c->execute(args));
    if (!later) throw std::runtime_error("no error");
    EXPECT_EQ(later->code(), rd::errc::io);
  });
}

TEST(RedisConnection, PeerClosingFailsOutstandingCommandsWithIo) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, echo_handler);
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    auto quit = spawn_execute(ctx, *c, {"QUIT"});  // answered by closing the connection
    std::vector<std::string_view> echo{"ECHO", "x"};
    auto e = co_await error_of(c->execute(echo));
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::io);
    EXPECT_NE(std::string(e->what()).find("closed the connection"), std::string::npos) << e->what();
    EXPECT_TRUE(quit->finished);
    EXPECT_TRUE(quit->failure && quit->failure->code() == rd::errc::io);
  });
}

TEST(RedisConnection, RepliesComeBackInCallOrder) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, echo_handler);
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    std::vector<std::string> values;
    for (int i = 0; i < 300; ++i) values.push_back(std::to_string(i));
    std::vector<std::shared_ptr<outcome>> outcomes;
    for (const auto& v : values) outcomes.push_back(spawn_execute(ctx, *c, {"ECHO", v}));
    std::vector<std::string_view> last{"SLOW", "1", "last"};
    rd::reply r = co_await c->execute(last);
    EXPECT_EQ(r.str, "last");
    for (std::size_t i = 0; i < values.size(); ++i) {
      EXPECT_TRUE(outcomes[i]->result && outcomes[i]->result->str == values[i]) << i;
    }
  });
}

TEST(RedisConnection, TimeoutClosesTheConnection) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, echo_handler);
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    std::vector<std::string_view> slow{"SLOW", "5000", "x"};
    auto t0 = clock_type::now();
    auto e = co_await error_of(c->execute(slow, 50ms));
    auto elapsed = clock_type::now() - t0;
    auto queued = spawn_execute(ctx, *c, {"ECHO", "y"});  // after the close: fails at once
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::timeout);
    EXPECT_NE(std::string(e->what()).find("SLOW got no reply within 50 ms"), std::string::npos)
        << e->what();
    EXPECT_GE(elapsed, 50ms);
    EXPECT_LT(elapsed, 1000ms);
    EXPECT_FALSE(c->is_open());
    co_await sleep_for(1ms);
    EXPECT_TRUE(queued->failure && queued->failure->code() == rd::errc::io);
  });
}

TEST(RedisConnection, TimeoutFailsTheOtherOutstandingCommands) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, echo_handler);
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    auto other = spawn_execute(ctx, *c, {"SLOW", "5000", "a"});
    std::vector<std::string_view> slow{"SLOW", "5000", "b"};
    auto e = co_await error_of(c->execute(slow, 30ms));
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::timeout);
    co_await sleep_for(1ms);
    EXPECT_TRUE(other->finished);
    EXPECT_TRUE(other->failure && other->failure->code() == rd::errc::io);
  });
}

TEST(RedisConnection, CancelledCallerLeavesThePipelineInStep) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, echo_handler);
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    std::vector<std::string_view> slow{"SLOW", "100", "first"};
    asio::steady_timer timer(ctx, 20ms);
    auto winner = co_await (c->execute(slow) || timer.async_wait(asio::use_awaitable));
    EXPECT_EQ(winner.index(), 1u);  // the timer won: execute was cancelled after sending
    std::vector<std::string_view> next{"ECHO", "second"};
    rd::reply r = co_await c->execute(next);
    EXPECT_EQ(r.str, "second");  // the first reply was dropped, not handed to us
    EXPECT_TRUE(c->is_open());
  });
}

TEST(RedisConnection, CloseFailsOutstandingAndLaterCalls) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, silent_handler);
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    auto pending = spawn_execute(ctx, *c, {"GET", "k"});
    co_await sleep_for(5ms);
    c->close();
    c->close();
    EXPECT_FALSE(c->is_open());
    co_await sleep_for(1ms);
    EXPECT_TRUE(pending->failure && pending->failure->code() == rd::errc::io);
    std::vector<std::string_view> args{"GET", "k"};
    auto e = co_await error_of(c->execute(args));
    EXPECT_TRUE(e && e->code() == rd::errc::io);
    auto r = co_await error_of(c->receive());
    EXPECT_TRUE(r && r->code() == rd::errc::io);
  });
}

TEST(RedisConnection, EmptyCommandIsRejected) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, echo_handler);
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    bool thrown = false;
    try {
      std::vector<std::string_view> none;
      co_await c->execute(none);
    } catch (const std::invalid_argument&) {
      thrown = true;
    }
    EXPECT_TRUE(thrown);
  });
}

TEST(RedisConnection, SubscriberModeRoutesPushesAndPong) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, [](tcp::socket s) -> asio::awaitable<void> {
      std::string buf;
      auto sub = co_await read_command(s, buf);  // SUBSCRIBE ch
      co_await send(s,
                    "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
                    "*3\r\n$7\r\nmessage\r\n" +
                        bulk("ch") + bulk("one"));
      auto ping = co_await read_command(s, buf);  // PING
      // A push arrives between the PING and its answer.
      co_await send(s, "*3\r\n$7\r\nmessage\r\n" + bulk("ch") + bulk("two") +
                           "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
      co_await silent_handler(std::move(s));
    });
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    co_await c->subscribe("ch");
    std::vector<std::string_view> ping{"PING"};
    rd::reply pong = co_await c->execute(ping);
    EXPECT_EQ(pong.type, rd::reply::kind::array);
    EXPECT_EQ(pong.elements.at(0).str, "pong");
    rd::message m1 = co_await c->receive();
    rd::message m2 = co_await c->receive();
    EXPECT_EQ(m1.channel, "ch");
    EXPECT_EQ(m1.payload, "one");
    EXPECT_EQ(m2.payload, "two");
  });
}

TEST(RedisConnection, ReceiveCanBeCancelled) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, silent_handler);
    auto c = co_await rd::connection::connect(ctx.get_executor(), server.options());
    asio::steady_timer timer(ctx, 10ms);
    auto winner = co_await (c->receive() || timer.async_wait(asio::use_awaitable));
    EXPECT_EQ(winner.index(), 1u);
    EXPECT_TRUE(c->is_open());
  });
}

TEST(RedisConnection, ConnectRefusedFailsQuickly) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    std::uint16_t port = 0;
    {
      tcp::acceptor probe(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
      port = probe.local_endpoint().port();
    }
    rd::connect_options o;
    o.server.host = "127.0.0.1";
    o.server.port = port;
    auto t0 = clock_type::now();
    auto e = co_await error_of(rd::connection::connect(ctx.get_executor(), o));
    auto elapsed = clock_type::now() - t0;
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::connect_failed);
    EXPECT_NE(
        std::string(e->what()).find("cannot connect to Redis at 127.0.0.1:" + std::to_string(port)),
        std::string::npos)
        << e->what();
    EXPECT_LT(elapsed, 100ms);
  });
}

TEST(RedisConnection, ConnectTimeoutCoversTheTlsHandshake) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, silent_handler);  // accepts, never answers the ClientHello
    auto o = server.options(true);
    o.connect_timeout = 200ms;
    auto t0 = clock_type::now();
    auto e = co_await error_of(rd::connection::connect(ctx.get_executor(), o));
    auto elapsed = clock_type::now() - t0;
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::connect_failed);
    EXPECT_NE(
        std::string(e->what()).find("cannot connect to Redis at 127.0.0.1:" +
                                    std::to_string(server.port()) + ": timed out after 200 ms"),
        std::string::npos)
        << e->what();
    EXPECT_GE(elapsed, 200ms);
    EXPECT_LT(elapsed, 400ms);
  });
}

TEST(RedisConnection, ConnectTimeoutCoversAuth) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, silent_handler);
    auto o = server.options();
    o.server.password = "hunter2secret";
    o.connect_timeout = 100ms;
    auto e = co_await error_of(rd::connection::connect(ctx.get_executor(), o));
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::connect_failed);
    EXPECT_NE(std::string(e->what()).find("timed out after 100 ms"), std::string::npos)
        << e->what();
    EXPECT_EQ(std::string(e->what()).find("hunter2"), std::string::npos) << e->what();
  });
}

TEST(RedisConnection, PeerClosingDuringConnectIsConnectFailed) {
  run([](asio::io_context& ctx) -> asio::awaitable<void> {
    fake_server server(ctx, [](tcp::socket) -> asio::awaitable<void> { co_return; });
    auto o = server.options();
    o.server.password = "pw";
    auto e = co_await error_of(rd::connection::connect(ctx.get_executor(), o));
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::connect_failed);
    EXPECT_NE(std::string(e->what()).find("closed the connection"), std::string::npos) << e->what();
  });
}

}  // namespace
