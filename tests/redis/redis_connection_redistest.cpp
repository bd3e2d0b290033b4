// redis::connection against a real redis-server: binary values of 6 MB, pipelining, error
// replies, AUTH/ACL, SELECT, TLS verification, connect timeouts, a server that goes away,
// command timeouts and subscriber mode.
#include "../support/async.hpp"
#include "redis/connection.hpp"
#include "redis/redis_server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace rd = funcie::redis;
using funcie::test::redis_server;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

void run(const std::function<asio::awaitable<void>(asio::io_context&)>& test) {
  funcie::test::run_async(test, 60s);
}

using funcie::test::sleep_for;

rd::connect_options options_for(const redis_server& server, int db = 0) {
  rd::connect_options o;
  o.server = rd::parse_url(server.url(db));
  o.connect_timeout = 2000ms;
  if (o.server.tls) o.ca_file = server.ca_file();
  return o;
}

asio::awaitable<std::unique_ptr<rd::connection>> connect(const rd::connect_options& o) {
  auto ex = co_await asio::this_coro::executor;
  co_return co_await rd::connection::connect(ex, o);
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

// execute_checked with the arguments listed: cmd(c, "SET", "k", value). Not a coroutine, and
// no braced list inside a co_await expression (GCC 12).
template <class... A>
asio::awaitable<rd::reply> cmd(rd::connection& c, const A&... a) {
  std::vector<std::string_view> args{std::string_view(a)...};
  return c.execute_checked(std::move(args));
}

struct outcome {
  bool finished = false;
  std::optional<rd::reply> result;
  std::optional<rd::error> failure;
  clock_type::time_point at;
};

std::shared_ptr<outcome> spawn_execute(asio::io_context& ctx, rd::connection& c,
                                       std::vector<std::string_view> args) {
  auto out = std::make_shared<outcome>();
  asio::co_spawn(ctx, c.execute(std::move(args)), [out](std::exception_ptr e, rd::reply r) {
    out->finished = true;
    out->at = clock_type::now();
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

std::string binary_value(std::size_t size) {
  std::string v(size, '\0');
  std::uint32_t x = 12345;
  for (auto& c : v) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  v.replace(100, 6, std::string("\0\r\n\r\n\0", 6));
  return v;
}

// --- plain commands ----------------------------------------------------------------------

TEST(RedisConnectionReal, SetGetSmallAndNil) {
  redis_server server;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto c = co_await connect(options_for(server));
    EXPECT_TRUE(c->is_open());
    EXPECT_EQ(c->server_name(), "127.0.0.1:" + std::to_string(server.port()));
    rd::reply ok = co_await cmd(*c, "SET", "k", "v");
    EXPECT_EQ(ok.type, rd::reply::kind::status);
    EXPECT_EQ(ok.str, "OK");
    rd::reply v = co_await cmd(*c, "GET", "k");
    EXPECT_EQ(v.type, rd::reply::kind::string);
    EXPECT_EQ(v.str, "v");
    rd::reply nil = co_await cmd(*c, "GET", "missing");
    EXPECT_TRUE(nil.is_nil());
    rd::reply n = co_await cmd(*c, "INCRBY", "n", "-7");
    EXPECT_EQ(n.type, rd::reply::kind::integer);
    EXPECT_EQ(n.integer, -7);
    rd::reply list = co_await cmd(*c, "MGET", "k", "missing");
    EXPECT_EQ(list.elements.size(), 2u);
  });
}

TEST(RedisConnectionReal, SixMegabyteBinaryValueRoundTripsIntact) {
  redis_server server;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto c = co_await connect(options_for(server));
    const std::string value = binary_value(6 * 1024 * 1024);
    co_await cmd(*c, "SET", "big", value);  // warm up
    rd::reply first = co_await cmd(*c, "GET", "big");
    EXPECT_TRUE(first.str == value);
    constexpr int rounds = 10;
    auto t0 = clock_type::now();
    for (int i = 0; i < rounds; ++i) {
      co_await cmd(*c, "SET", "big", value);
      rd::reply got = co_await cmd(*c, "GET", "big");
      if (got.str.size() != value.size()) throw std::runtime_error("wrong size");
    }
    auto per_round = std::chrono::duration<double, std::milli>(clock_type::now() - t0) / rounds;
    std::printf("6 MB SET+GET round trip: %.2f ms\n", per_round.count());
    rd::reply got = co_await cmd(*c, "GET", "big");
    EXPECT_EQ(got.str.size(), value.size());
    EXPECT_TRUE(got.str == value) << "bytes differ";
    rd::reply len = co_await cmd(*c, "STRLEN", "big");
    EXPECT_EQ(len.integer, static_cast<long long>(value.size()));
    EXPECT_LT(per_round, 200ms);
  });
}

// An argument given in pieces (a small header and a 6 MB body, not joined in memory) is stored
// as their concatenation, next to small pieces, small arguments and an empty piece.
TEST(RedisConnectionReal, ArgumentsInPiecesAreStoredJoined) {
  redis_server server;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto c = co_await connect(options_for(server));
    const std::string head = "funcie/1 request\n{\"id\":\"x\"}\n";
    const std::string body = binary_value(6 * 1024 * 1024);
    std::vector<std::vector<std::string_view>> set{
        {"SET"}, {"big"}, {head, "", body}, {"PX"}, {"60000"}};
    rd::reply ok = co_await c->execute_pieces_checked(std::move(set));
    EXPECT_EQ(ok.str, "OK");
    rd::reply got = co_await cmd(*c, "GET", "big");
    EXPECT_EQ(got.str.size(), head.size() + body.size());
    EXPECT_TRUE(got.str == head + body) << "bytes differ";
    rd::reply ttl = co_await cmd(*c, "PTTL", "big");
    EXPECT_GT(ttl.integer, 0);

    std::vector<std::vector<std::string_view>> push{{"RPUSH"}, {"list"}, {"a", "b", "c"}};
    co_await c->execute_pieces_checked(std::move(push));
    rd::reply popped = co_await cmd(*c, "LPOP", "list");
    EXPECT_EQ(popped.str, "abc");

    // An error reply is thrown, naming the command; the connection stays usable.
    std::vector<std::vector<std::string_view>> wrong{{"RPUSH"}, {"big"}, {body}};
    auto failure = co_await error_of(c->execute_pieces_checked(std::move(wrong)));
    EXPECT_TRUE(failure.has_value());
    if (failure) {
      EXPECT_EQ(failure->code(), rd::errc::server);
      EXPECT_NE(std::string(failure->what()).find("RPUSH failed: WRONGTYPE"), std::string::npos)
          << failure->what();
    }
    rd::reply after = co_await cmd(*c, "STRLEN", "big");
    EXPECT_EQ(after.integer, static_cast<long long>(head.size() + body.size()));
  });
}

TEST(RedisConnectionReal, ThousandConcurrentExecutesAnswerInOrder) {
  redis_server server;
  run([&](asio::io_context& ctx) -> asio::awaitable<void> {
    auto c = co_await connect(options_for(server));
    std::vector<std::shared_ptr<outcome>> incr;
    std::vector<std::shared_ptr<outcome>> echo;
    std::vector<std::string> texts;
    for (int i = 0; i < 1000; ++i) texts.push_back("value-" + std::to_string(i));
    for (int i = 0; i < 1000; ++i) {
      incr.push_back(spawn_execute(ctx, *c, {"INCR", "counter"}));
      echo.push_back(spawn_execute(ctx, *c, {"ECHO", texts[i]}));
    }
    rd::reply last = co_await cmd(*c, "GET", "counter");
    EXPECT_EQ(last.str, "1000");
    for (int i = 0; i < 1000; ++i) {
      EXPECT_TRUE(incr[i]->result && incr[i]->result->integer == i + 1) << i;
      EXPECT_TRUE(echo[i]->result && echo[i]->result->str == texts[i]) << i;
    }
  });
}

TEST(RedisConnectionReal, ErrorReplyIsReturnedByExecuteAndThrownByExecuteChecked) {
  redis_server server;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto c = co_await connect(options_for(server));
    co_await cmd(*c, "SET", "s", "text");
    std::vector<std::string_view> incr{"INCR", "s"};
    rd::reply r = co_await c->execute(incr);
    EXPECT_TRUE(r.is_error());
    EXPECT_NE(r.str.find("not an integer"), std::string::npos) << r.str;
    auto e = co_await error_of(c->execute_checked(incr));
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::server);
    EXPECT_NE(std::string(e->what()).find("not an integer"), std::string::npos) << e->what();
    EXPECT_NE(std::string(e->what()).find(c->server_name()), std::string::npos) << e->what();
    EXPECT_TRUE(c->is_open());  // an error reply leaves the connection usable
    std::vector<std::string_view> unknown{"NOSUCHCOMMAND"};
    rd::reply u = co_await c->execute(unknown);
    EXPECT_TRUE(u.is_error());
    rd::reply ok = co_await cmd(*c, "GET", "s");
    EXPECT_EQ(ok.str, "text");
  });
}

// --- AUTH, ACL, SELECT, CLIENT SETNAME ------------------------------------------------------

TEST(RedisConnectionReal, AuthWithRequirepass) {
  redis_server server({.requirepass = "correct-horse"});
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto c = co_await connect(options_for(server));
    rd::reply pong = co_await cmd(*c, "PING");
    EXPECT_EQ(pong.str, "PONG");

    auto wrong = options_for(server);
    wrong.server.password = "battery-staple";
    auto e = co_await error_of(connect(wrong));
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::auth_failed);
    std::string message = e->what();
    EXPECT_NE(message.find("refused the credentials for user default"), std::string::npos)
        << message;
    EXPECT_NE(message.find("WRONGPASS"), std::string::npos) << message;
    EXPECT_NE(message.find("127.0.0.1:" + std::to_string(server.port())), std::string::npos);
    EXPECT_EQ(message.find("battery"), std::string::npos) << message;

    auto none = options_for(server);
    none.server.password.clear();
    auto unauthenticated = co_await connect(none);
    std::vector<std::string_view> get{"GET", "x"};
    rd::reply refused = co_await unauthenticated->execute(get);
    EXPECT_TRUE(refused.is_error());
    EXPECT_NE(refused.str.find("NOAUTH"), std::string::npos) << refused.str;
  });
}

TEST(RedisConnectionReal, AclUserAndPassword) {
  redis_server server({.acl_user = "alice", .acl_password = "wonder-land"});
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto c = co_await connect(options_for(server));
    rd::reply who = co_await cmd(*c, "ACL", "WHOAMI");
    EXPECT_EQ(who.str, "alice");

    auto wrong = options_for(server);
    wrong.server.password = "looking-glass";
    auto e = co_await error_of(connect(wrong));
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::auth_failed);
    EXPECT_NE(std::string(e->what()).find("for user alice"), std::string::npos) << e->what();
    EXPECT_EQ(std::string(e->what()).find("looking"), std::string::npos) << e->what();
  });
}

TEST(RedisConnectionReal, SelectsTheDbOfTheUrlAndSetsTheClientName) {
  redis_server server;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto o = options_for(server, 3);
    EXPECT_EQ(o.server.db, 3);
    o.client_name = "funcie-test";
    auto c3 = co_await connect(o);
    co_await cmd(*c3, "SET", "where", "three");
    auto c0 = co_await connect(options_for(server));
    rd::reply in0 = co_await cmd(*c0, "GET", "where");
    EXPECT_TRUE(in0.is_nil());
    rd::reply info = co_await cmd(*c3, "CLIENT", "INFO");
    EXPECT_NE(info.str.find(" db=3 "), std::string::npos) << info.str;
    EXPECT_NE(info.str.find(" name=funcie-test "), std::string::npos) << info.str;

    auto e = co_await error_of(connect(options_for(server, 99)));
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::auth_failed);
    EXPECT_NE(std::string(e->what()).find("SELECT 99"), std::string::npos) << e->what();
  });
}

// --- TLS ------------------------------------------------------------------------------------

TEST(RedisConnectionReal, TlsWithTheServersCa) {
  redis_server server({.tls = true});
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto o = options_for(server);
    EXPECT_TRUE(o.server.tls);
    auto c = co_await connect(o);
    const std::string value = binary_value(1024 * 1024);
    co_await cmd(*c, "SET", "k", value);
    rd::reply got = co_await cmd(*c, "GET", "k");
    EXPECT_TRUE(got.str == value);

    o.server.host = "localhost";  // name in the certificate; SNI sent
    auto by_name = co_await connect(o);
    rd::reply pong = co_await cmd(*by_name, "PING");
    EXPECT_EQ(pong.str, "PONG");
  });
}

TEST(RedisConnectionReal, TlsWithAnotherCaFailsVerification) {
  redis_server server({.tls = true});
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto o = options_for(server);
    o.ca_file = server.other_ca_file();
    auto e = co_await error_of(connect(o));
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::connect_failed);
    EXPECT_NE(std::string(e->what()).find("certificate verification failed"), std::string::npos)
        << e->what();

    o.ca_file.clear();  // the system store does not know our test CA either
    auto system = co_await error_of(connect(o));
    EXPECT_TRUE(system && system->code() == rd::errc::connect_failed);

    o.ca_file = server.dir().string() + "/no-such-file.pem";
    auto missing = co_await error_of(connect(o));
    if (!missing) throw std::runtime_error("no error");
    EXPECT_NE(std::string(missing->what()).find("CA file"), std::string::npos) << missing->what();
  });
}

TEST(RedisConnectionReal, TlsWithoutVerification) {
  redis_server server({.tls = true});
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto o = options_for(server);
    o.ca_file = server.other_ca_file();
    o.verify = false;
    auto c = co_await connect(o);
    rd::reply pong = co_await cmd(*c, "PING");
    EXPECT_EQ(pong.str, "PONG");
  });
}

TEST(RedisConnectionReal, TlsClientAgainstPlainServerFails) {
  redis_server server;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto o = options_for(server);
    o.server.tls = true;
    o.connect_timeout = 500ms;
    auto e = co_await error_of(connect(o));
    EXPECT_TRUE(e && e->code() == rd::errc::connect_failed);
  });
}

// --- connect failures -----------------------------------------------------------------------

TEST(RedisConnectionReal, ConnectToAStoppedServerFailsQuickly) {
  redis_server server;
  server.stop();
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto t0 = clock_type::now();
    auto e = co_await error_of(connect(options_for(server)));
    auto elapsed = clock_type::now() - t0;
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::connect_failed);
    EXPECT_NE(std::string(e->what()).find("cannot connect to Redis at 127.0.0.1:"),
              std::string::npos)
        << e->what();
    EXPECT_LT(elapsed, 100ms);
  });
}

TEST(RedisConnectionReal, ConnectTimeoutAgainstAFrozenTlsServer) {
  redis_server server({.tls = true});
  server.freeze();  // the kernel still accepts; nobody answers the handshake
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto o = options_for(server);
    o.connect_timeout = 200ms;
    auto t0 = clock_type::now();
    auto e = co_await error_of(connect(o));
    auto elapsed = clock_type::now() - t0;
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::connect_failed);
    EXPECT_NE(std::string(e->what()).find("timed out after 200 ms"), std::string::npos)
        << e->what();
    EXPECT_GE(elapsed, 195ms);
    EXPECT_LT(elapsed, 400ms);
  });
  server.thaw();
}

TEST(RedisConnectionReal, ConnectTimeoutAgainstAFrozenServerDuringAuth) {
  redis_server server({.requirepass = "pw-pw-pw"});
  server.freeze();
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto o = options_for(server);
    o.connect_timeout = 200ms;
    auto t0 = clock_type::now();
    auto e = co_await error_of(connect(o));
    auto elapsed = clock_type::now() - t0;
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::connect_failed);
    EXPECT_NE(std::string(e->what()).find("timed out after 200 ms"), std::string::npos)
        << e->what();
    EXPECT_LT(elapsed, 400ms);
  });
  server.thaw();
}

// --- a server that goes away; command timeouts ---------------------------------------------

TEST(RedisConnectionReal, ServerStoppedDuringBlpopIsIoPromptly) {
  redis_server server;
  run([&](asio::io_context& ctx) -> asio::awaitable<void> {
    auto c = co_await connect(options_for(server));
    auto blocked = spawn_execute(ctx, *c, {"BLPOP", "nothing", "0"});
    co_await sleep_for(50ms);
    EXPECT_FALSE(blocked->finished);
    auto stopped = clock_type::now();
    server.stop();  // SIGTERM, waits for the exit
    for (int i = 0; i < 200 && !blocked->finished; ++i) co_await sleep_for(5ms);
    EXPECT_TRUE(blocked->finished);
    EXPECT_TRUE(blocked->failure && blocked->failure->code() == rd::errc::io);
    if (blocked->finished) {
      EXPECT_LT(blocked->at - stopped, 500ms);
    }
    EXPECT_FALSE(c->is_open());

    server.restart();  // same port: a new connection works
    auto again = co_await connect(options_for(server));
    rd::reply pong = co_await cmd(*again, "PING");
    EXPECT_EQ(pong.str, "PONG");
  });
}

TEST(RedisConnectionReal, ExecuteTimeoutClosesTheConnection) {
  redis_server server;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto c = co_await connect(options_for(server));
    std::vector<std::string_view> blpop{"BLPOP", "nothing", "0"};
    auto t0 = clock_type::now();
    auto e = co_await error_of(c->execute(blpop, 100ms));
    auto elapsed = clock_type::now() - t0;
    if (!e) throw std::runtime_error("no error");
    EXPECT_EQ(e->code(), rd::errc::timeout);
    EXPECT_GE(elapsed, 100ms);
    EXPECT_LT(elapsed, 500ms);
    EXPECT_FALSE(c->is_open());
    std::vector<std::string_view> ping{"PING"};
    auto later = co_await error_of(c->execute(ping));
    EXPECT_TRUE(later && later->code() == rd::errc::io);
  });
}

TEST(RedisConnectionReal, BlpopReceivesASixMegabyteValue) {
  redis_server server;
  run([&](asio::io_context& ctx) -> asio::awaitable<void> {
    auto waiter = co_await connect(options_for(server));
    auto pusher = co_await connect(options_for(server));
    auto popped = spawn_execute(ctx, *waiter, {"BLPOP", "list", "5"});
    co_await sleep_for(20ms);
    const std::string value = binary_value(6 * 1024 * 1024);
    co_await cmd(*pusher, "RPUSH", "list", value);
    for (int i = 0; i < 400 && !popped->finished; ++i) co_await sleep_for(5ms);
    if (!popped->result) throw std::runtime_error("BLPOP did not return");
    EXPECT_EQ(popped->result->elements.at(0).str, "list");
    EXPECT_TRUE(popped->result->elements.at(1).str == value);
  });
}

// --- subscriber mode ------------------------------------------------------------------------

TEST(RedisConnectionReal, SubscribeReceivesPublishedMessages) {
  redis_server server;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto sub = co_await connect(options_for(server));
    auto pub = co_await connect(options_for(server));
    co_await sub->subscribe("news");
    rd::reply n = co_await cmd(*pub, "PUBLISH", "news", "hello");
    EXPECT_EQ(n.integer, 1);
    co_await cmd(*pub, "PUBLISH", "other", "not for us");
    co_await cmd(*pub, "PUBLISH", "news", std::string_view("a\0b", 3));
    rd::message m = co_await sub->receive();
    EXPECT_EQ(m.channel, "news");
    EXPECT_EQ(m.payload, "hello");
    rd::message m2 = co_await sub->receive();
    EXPECT_EQ(m2.payload, std::string("a\0b", 3));

    // PING in subscriber mode answers ["pong", ""], routed to the caller.
    std::vector<std::string_view> ping{"PING"};
    rd::reply pong = co_await sub->execute(ping);
    EXPECT_EQ(pong.type, rd::reply::kind::array);
    EXPECT_EQ(pong.elements.at(0).str, "pong");

    // A second channel, and a command not allowed in subscriber mode.
    co_await sub->subscribe("sport");
    co_await cmd(*pub, "PUBLISH", "sport", "goal");
    rd::message m3 = co_await sub->receive();
    EXPECT_EQ(m3.channel, "sport");
    std::vector<std::string_view> get{"GET", "x"};
    rd::reply refused = co_await sub->execute(get);
    EXPECT_TRUE(refused.is_error());

    // UNSUBSCRIBE from all (two confirmations) leaves subscriber mode.
    std::vector<std::string_view> unsubscribe{"UNSUBSCRIBE"};
    co_await sub->execute(unsubscribe);
    rd::reply normal = co_await cmd(*sub, "SET", "x", "1");
    EXPECT_EQ(normal.str, "OK");
  });
}

TEST(RedisConnectionReal, SixMegabytePublishedMessageArrivesIntact) {
  redis_server server;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto sub = co_await connect(options_for(server));
    auto pub = co_await connect(options_for(server));
    co_await sub->subscribe("big");
    const std::string value = binary_value(6 * 1024 * 1024);
    co_await cmd(*pub, "PUBLISH", "big", value);
    co_await cmd(*pub, "PUBLISH", "big", "small");
    rd::message m = co_await sub->receive();
    EXPECT_EQ(m.payload.size(), value.size());
    EXPECT_TRUE(m.payload == value);
    rd::message m2 = co_await sub->receive();
    EXPECT_EQ(m2.payload, "small");
  });
}

TEST(RedisConnectionReal, SubscriberSeesTheServerGoAway) {
  redis_server server;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    auto sub = co_await connect(options_for(server));
    co_await sub->subscribe("news");
    server.kill();
    auto e = co_await error_of(sub->receive());
    EXPECT_TRUE(e && e->code() == rd::errc::io);
  });
}

TEST(RedisConnectionReal, FixtureCli) {
  redis_server server({.requirepass = "pw"});
  EXPECT_EQ(server.cli({"SET", "a", "b"}), "OK\n");
  EXPECT_EQ(server.cli({"GET", "a"}), "b\n");
  redis_server tls({.tls = true});
  EXPECT_EQ(tls.cli({"PING"}), "PONG\n");
}

}  // namespace
