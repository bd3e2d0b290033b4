// Presence by subscription and picking again after a withdrawal, on the Redis backend against a
// real redis-server (docs/routing.md, "Presence by subscription", "Assignment"): with nobody
// connected an invocation makes no Redis call; a session that joins is seen at once; a
// forwarder whose event loop did not run (a frozen Lambda environment) reads presence again;
// a session gone before it took its request lets the forwarder pick another session.
#include "../support/async.hpp"
#include "../support/redis_session.hpp"
#include "../support/request.hpp"
#include "backend/redis/keys.hpp"
#include "redis/connection.hpp"
#include "redis/redis_server.hpp"
#include "tunnel/backend.hpp"
#include "tunnel/consumer_info.hpp"
#include "util/ids.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

namespace funcie {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using kind = tunnel::forward_outcome::kind;
using funcie::test::sleep_for;

constexpr std::string_view app = "presence-app";

double ms_since(steady::time_point start) {
  return std::chrono::duration<double, std::milli>(steady::now() - start).count();
}

tunnel::request event_from(std::string_view dev) {
  return test::fresh_request(app, R"({"headers":{"x-dev":")" + std::string(dev) + R"("}})");
}

/// Ada's route (no braced lists of literals in coroutines: GCC 12 rejects them there).
std::vector<std::string> ada_route() {
  std::vector<std::string> out;
  out.emplace_back("/headers/x-dev=ada");
  return out;
}

/// Answers every request with its payload; counts them.
asio::awaitable<void> serve(tunnel::consumer_session* session, std::shared_ptr<int> ran) {
  while (true) {
    tunnel::request req;
    try {
      req = co_await session->next();
    } catch (const tunnel::backend_error&) {
      co_return;
    }
    ++*ran;
    tunnel::response answer;
    answer.id = req.id;
    answer.app = req.app;
    answer.consumer = session->id();
    answer.body = req.payload;
    co_await session->respond(answer);
  }
}

class RedisPresence : public ::testing::Test {
 protected:
  asio::io_context io;
  test::redis_server server;

  tunnel::backend_options options(milliseconds heartbeat, std::vector<std::string> routes = {}) {
    tunnel::backend_options o;
    o.url = server.url();
    o.app = std::string(app);
    o.timing.heartbeat = heartbeat;
    o.routes = std::move(routes);
    return o;
  }

  template <class Body>
  void run(Body&& body) {
    test::run_on(io, std::forward<Body>(body), 60s);
  }

  asio::awaitable<std::unique_ptr<tunnel::consumer_session>> open_serving(
      const tunnel::backend_options& o, std::shared_ptr<int> ran) {
    auto session = tunnel::make_consumer_session(io.get_executor(), o);
    co_await session->open();
    asio::co_spawn(io, serve(session.get(), std::move(ran)), asio::detached);
    co_return session;
  }

  /// How many scripts and commands the server has run so far (INFO's total_commands_processed
  /// counts this query too, and redis-cli's own connection).
  long long scripts_run() const {
    const std::string stats = server.cli({"INFO", "commandstats"});
    long long total = 0;
    for (const std::string name : {"cmdstat_evalsha:calls=", "cmdstat_eval:calls="}) {
      const auto at = stats.find(name);
      if (at != std::string::npos) total += std::stoll(stats.substr(at + name.size()));
    }
    return total;
  }

  /// A session made by hand, never popping its inbox (test::never_popping_session).
  asio::awaitable<test::hand_made_session> never_popping(std::vector<std::string> routes,
                                                         std::string key_ms) {
    return test::never_popping_session(io.get_executor(), server.url(), std::string(app),
                                       std::move(routes), std::move(key_ms));
  }
};

TEST_F(RedisPresence, NobodyConnectedCostsNoRedisCallAndAJoinIsSeenAtOnce) {
  run([&]() -> asio::awaitable<void> {
    // A long heartbeat: were the subscription not working, the empty view would be trusted
    // for the whole bound (3 s) and the session below would not get the invocation.
    const auto o = options(3000ms);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    auto first = co_await forwarder->forward(event_from("x"), steady::now() + 10s);
    EXPECT_EQ(first.outcome, kind::not_taken);
    co_await sleep_for(100ms);  // the presence subscription is up and vouched for
    const long long before = scripts_run();
    std::vector<double> costs;
    for (int i = 0; i < 200; ++i) {
      const auto start = steady::now();
      auto out = co_await forwarder->forward(event_from("x"), steady::now() + 10s);
      costs.push_back(ms_since(start));
      EXPECT_EQ(out.outcome, kind::not_taken);
      EXPECT_EQ(out.reason, "no consumer");
    }
    const long long scripts = scripts_run() - before;
    std::sort(costs.begin(), costs.end());
    std::printf(
        "[ figures  ] nobody connected: %lld scripts run for 200 invocations; median %.4f "
        "ms, p99 %.4f ms\n",
        scripts, costs[costs.size() / 2], costs[costs.size() * 99 / 100]);
    // At most a read per heartbeat bound (the view is never trusted longer), none per call.
    EXPECT_LE(scripts, 2);

    // A session joins: its announcement (in the forwarder's socket before open() returns)
    // makes the next invocation read presence again.
    auto ran = std::make_shared<int>(0);
    auto session = co_await open_serving(o, ran);
    auto out = co_await forwarder->forward(event_from("x"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
    EXPECT_EQ(out.answer.consumer, session->id());

    // It leaves: announced too, so the next one runs in the cloud at once.
    co_await session->close();
    const auto start = steady::now();
    out = co_await forwarder->forward(event_from("x"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::not_taken);
    // Without the announcement it would wait for the departed session (the 3 s bound); the
    // room is for a busy CI machine under ASan.
    EXPECT_LT(ms_since(start), 1500.0);
    EXPECT_EQ(*ran, 1);
  });
}

TEST_F(RedisPresence, AForwarderWhoseLoopDidNotRunReadsPresenceAgain) {
  run([&]() -> asio::awaitable<void> {
    const auto o = options(600ms);  // its view of nobody is vouched for 100 ms
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    auto first = co_await forwarder->forward(event_from("x"), steady::now() + 10s);
    EXPECT_EQ(first.outcome, kind::not_taken);
    co_await sleep_for(100ms);

    // Its event loop stops for 300 ms (nothing is announced meanwhile): the view of nobody was
    // vouched for longer ago than its bound on the boot clock, so it is read again.
    std::this_thread::sleep_for(300ms);
    const long long before = scripts_run();
    auto out = co_await forwarder->forward(event_from("x"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::not_taken);
    EXPECT_GE(scripts_run() - before, 1) << "a stale view of nobody was trusted";
    co_await sleep_for(100ms);

    // A session joins while this thread is blocked (its event loop does not run, like a
    // frozen Lambda environment): the announcement waits unread in the socket.
    std::atomic<bool> joined = false;
    std::atomic<bool> finished = false;
    std::thread other([&] {
      asio::io_context laptop;
      auto session = tunnel::make_consumer_session(laptop.get_executor(), o);
      auto ran = std::make_shared<int>(0);
      asio::co_spawn(
          laptop,
          [&]() -> asio::awaitable<void> {
            co_await session->open();
            joined = true;
            co_await serve(session.get(), ran);
          },
          asio::detached);
      const auto until = steady::now() + 20s;
      while (!finished && steady::now() < until) laptop.run_for(20ms);
      asio::co_spawn(laptop, session->close(), asio::detached);
      laptop.run_for(1s);
    });
    while (!joined) std::this_thread::sleep_for(5ms);
    std::this_thread::sleep_for(300ms);
    // Thawed: the forwarder's last vouched view is older than its bound on the boot clock, so
    // it reads presence before choosing, and the session gets the invocation.
    out = co_await forwarder->forward(event_from("x"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
    finished = true;
    other.join();
  });
}

TEST_F(RedisPresence, ASessionGoneBeforeItTookItsRequestLetsTheForwarderPickAnother) {
  run([&]() -> asio::awaitable<void> {
    const auto o = options(3000ms);
    // Ada's session is picked (its route holds) and dies before popping: its key expires
    // after 400 ms. Another session without a route is connected.
    auto made = co_await never_popping(ada_route(), "400");
    const std::string dying = made.id;
    auto dying_sub = made.subscription;
    auto ran = std::make_shared<int>(0);
    auto rest = co_await open_serving(o, ran);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    const auto req = event_from("ada");
    const auto start = steady::now();
    auto out = co_await forwarder->forward(req, steady::now() + 10s);
    const double took = ms_since(start);
    EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
    EXPECT_EQ(out.answer.consumer, rest->id());
    EXPECT_EQ(out.answer.body, req.payload);
    EXPECT_EQ(*ran, 1);
    EXPECT_GE(took, 300.0);
    EXPECT_LT(took, 2500.0);  // its key's life and a wait slice, far from the 3 s bound
    std::printf("[ figures  ] withdrawn from a dying session, answered by another after %.0f ms\n",
                took);
    // Nothing left in the dying session's inbox, and the claim names who ran it.
    const redis_backend::app_keys keys(app);
    EXPECT_EQ(server.cli({"LLEN", keys.inbox(dying)}), "0\n");
    EXPECT_EQ(server.cli({"GET", keys.claim(req.id)}), rest->id() + "\n");
    dying_sub->close();
    co_await rest->close();
  });
}

TEST_F(RedisPresence, AStoppedSessionsRequestGoesToAnotherAfterTheBoundAndNeverTwice) {
  run([&]() -> asio::awaitable<void> {
    const auto o = options(600ms);
    // Stopped but connected: subscribed, its key alive for a minute, never popping.
    auto made = co_await never_popping(ada_route(), "60000");
    const std::string stopped = made.id;
    auto stopped_sub = made.subscription;
    auto ran = std::make_shared<int>(0);
    auto rest = co_await open_serving(o, ran);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    for (int i = 0; i < 3; ++i) {
      const auto start = steady::now();
      auto out = co_await forwarder->forward(event_from("ada"), steady::now() + 10s);
      const double took = ms_since(start);
      EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
      EXPECT_EQ(out.answer.consumer, rest->id());
      // The first waits for the bound (600 ms) since the assignment; later ones may find
      // the stopped session left out of the view, until the view is read again.
      if (i == 0) {
        EXPECT_GE(took, 550.0);
      }
      EXPECT_LT(took, 2000.0);  // the bound, a wait slice and the second assignment
    }
    EXPECT_EQ(*ran, 3);
    const redis_backend::app_keys keys(app);
    EXPECT_EQ(server.cli({"LLEN", keys.inbox(stopped)}), "0\n");

    // Nobody else: withdrawn, then the function's own code, as before.
    co_await rest->close();
    co_await sleep_for(50ms);
    const auto req = event_from("ada");
    auto out = co_await forwarder->forward(req, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::not_taken);
    EXPECT_NE(out.reason.find("withdrawn"), std::string::npos) << out.reason;
    EXPECT_EQ(server.cli({"GET", keys.claim(req.id)}), "cloud\n");
    stopped_sub->close();
  });
}

TEST_F(RedisPresence, ABurstIsTakenInBatchesAndAUserWithoutBlmpopTakesOneAtATime) {
  // An ACL user as on a server before 7.0 or a minimal ACL from before: no BLMPOP.
  server.cli({"ACL", "SETUSER", "older", "on", ">olderpass", "~*", "&*", "+@all", "-blmpop"});
  run([&]() -> asio::awaitable<void> {
    for (int pass = 0; pass < 2; ++pass) {
      const bool batched = pass == 0;
      auto o = options(3000ms);
      if (!batched) o.url = "redis://older:olderpass@127.0.0.1:" + std::to_string(server.port());
      auto ran = std::make_shared<int>(0);
      auto session = co_await open_serving(o, ran);
      auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options(3000ms));
      // 40 at once: every one answered by the session, once.
      int answered = 0;
      int finished = 0;
      for (int i = 0; i < 40; ++i) {
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
              const auto req = event_from("x");
              auto out = co_await forwarder->forward(req, steady::now() + 10s);
              if (out.outcome == kind::answered && out.answer.body == req.payload) ++answered;
              ++finished;
            },
            asio::detached);
      }
      while (finished < 40) co_await sleep_for(5ms);
      EXPECT_EQ(answered, 40) << (batched ? "BLMPOP" : "BLPOP");
      EXPECT_EQ(*ran, 40);
      co_await session->close();
    }
  });
  // The first session took with BLMPOP; the second was refused it (rejected_calls) and
  // took with BLPOP instead, every request answered all the same.
  const std::string stats = server.cli({"INFO", "commandstats"});
  const auto at = stats.find("cmdstat_blmpop:");
  ASSERT_NE(at, std::string::npos) << stats;
  const std::string line = stats.substr(at, stats.find('\n', at) - at);
  auto count = [&](const std::string& field) -> long long {
    const auto where = line.find("," + field + "=");
    const auto first = line.find(":" + field + "=");
    const auto pos = where != std::string::npos ? where : first;
    if (pos == std::string::npos) return -1;
    return std::stoll(line.substr(pos + field.size() + 2));
  };
  EXPECT_GE(count("calls"), 1) << line;
  EXPECT_GE(count("rejected_calls"), 1) << line;
}

}  // namespace
}  // namespace funcie
