// The Redis tunnel backend against a real redis-server: what a user of the forwarder and of
// `funcie connect` would notice of how Redis keeps the contract (docs/tunnel.md): its costs,
// withdrawals, broker trouble, garbage in its keys. What every backend keeps is checked once
// for all of them in tests/conformance.
#include "../support/async.hpp"
#include "../support/redis_session.hpp"
#include "backend/redis/keys.hpp"
#include "backend/redis/scripts.hpp"
#include "consumer/consumer.hpp"
#include "redis/connection.hpp"
#include "redis/redis_server.hpp"
#include "tunnel/backend.hpp"
#include "tunnel/consumer_info.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <memory>

namespace funcie {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using kind = tunnel::forward_outcome::kind;

constexpr std::string_view app = "test-app";

double ms_since(steady::time_point start) {
  return std::chrono::duration<double, std::milli>(steady::now() - start).count();
}

using funcie::test::sleep_for;

std::string binary(std::size_t size, unsigned seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 31 + seed) & 0xFF);
  return out;
}

tunnel::request make_request(std::string payload) {
  tunnel::request req;
  req.id = util::random_hex(32);
  req.app = std::string(app);
  req.sent_ms = 1;
  req.context.request_id = util::new_request_id();
  req.context.deadline_ms = 4102444800000;
  req.context.function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:test-app";
  req.function.name = "test-app";
  req.payload = std::move(payload);
  return req;
}

/// What a local handler did, as the test sees it.
struct handler_log {
  std::vector<std::string> handled;  ///< Request ids, in the order claimed.
  bool ended = false;
  std::string end_reason;
};

enum class answer_mode { echo, hold };

/// A local consumer: claims requests and answers each (or holds it, never answering).
asio::awaitable<void> serve(tunnel::consumer_session* session, std::shared_ptr<handler_log> log,
                            answer_mode mode) {
  while (true) {
    tunnel::request req;
    try {
      req = co_await session->next();
    } catch (const tunnel::backend_error& e) {
      log->ended = true;
      log->end_reason = e.what();
      co_return;
    }
    log->handled.push_back(req.id);
    if (mode == answer_mode::hold) continue;
    tunnel::response answer;
    answer.id = req.id;
    answer.app = req.app;
    answer.consumer = session->id();
    answer.content_type = "application/octet-stream";
    answer.body = req.payload;
    co_await session->respond(answer);
  }
}

class RedisBackend : public ::testing::Test {
 protected:
  asio::io_context io;  // first: outlives everything that uses it
  test::redis_server server;

  tunnel::backend_options options(milliseconds heartbeat = 600ms) const {
    tunnel::backend_options o;
    o.url = server.url();
    o.app = std::string(app);
    o.timing.heartbeat = heartbeat;
    return o;
  }

  /// Runs a test body (a coroutine) on the io_context until it completes.
  template <class Body>
  void run(Body&& body, std::chrono::seconds limit = 60s) {
    test::run_on(io, std::forward<Body>(body), limit);
  }

  asio::awaitable<std::unique_ptr<tunnel::consumer_session>> open_session(
      const tunnel::backend_options& o) {
    auto session = tunnel::make_consumer_session(io.get_executor(), o);
    co_await session->open();
    co_return session;
  }

  std::shared_ptr<handler_log> start_serving(tunnel::consumer_session& session, answer_mode mode) {
    auto log = std::make_shared<handler_log>();
    asio::co_spawn(io, serve(&session, log, mode), asio::detached);
    return log;
  }

  asio::awaitable<std::shared_ptr<redis::connection>> raw_connection() {
    return test::raw_redis_connection(io.get_executor(), server.url());
  }

  /// A session made by hand, without routes, never popping its inbox
  /// (test::never_popping_session).
  asio::awaitable<test::hand_made_session> never_popping(std::string key_ms) {
    return test::never_popping_session(io.get_executor(), server.url(), std::string(app), {},
                                       std::move(key_ms));
  }
};

TEST_F(RedisBackend, NoConsumerMeansNotTakenAtOnce) {
  run([&]() -> asio::awaitable<void> {
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options());
    const auto req = make_request("{}");
    auto first = co_await forwarder->forward(req, steady::now() + 10s);
    EXPECT_EQ(first.outcome, kind::not_taken);
    EXPECT_EQ(first.reason, "no consumer");
    std::vector<double> costs;
    for (int i = 0; i < 200; ++i) {
      const auto again = make_request(binary(100 * 1024, 1));  // presence-only check
      const auto start = steady::now();
      auto out = co_await forwarder->forward(again, steady::now() + 10s);
      costs.push_back(ms_since(start));
      EXPECT_EQ(out.outcome, kind::not_taken);
    }
    std::sort(costs.begin(), costs.end());
    std::printf(
        "[ figures  ] not_taken (no consumer, 100 KiB event): median %.3f ms, p99 %.3f ms\n",
        costs[costs.size() / 2], costs[costs.size() * 99 / 100]);
    EXPECT_LT(costs[costs.size() / 2], 5.0);
    // Nothing was stored for a request nobody took.
    EXPECT_EQ(server.cli({"DBSIZE"}), "0\n");
  });
}

TEST_F(RedisBackend, AKilledConsumerHasWhatItHeldFailedWithinTheDefaultHeartbeatBound) {
  run([&]() -> asio::awaitable<void> {
    const auto o = options(3000ms);  // the default bound
    auto session = co_await open_session(o);
    auto log = start_serving(*session, answer_mode::hold);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    std::optional<tunnel::forward_outcome> outcome;
    steady::time_point finished;
    const auto req = make_request("held");
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          outcome = co_await forwarder->forward(req, steady::now() + 30s);
          finished = steady::now();
        },
        asio::detached);
    while (log->handled.empty()) co_await sleep_for(5ms);
    co_await sleep_for(300ms);  // somewhere between two heartbeats
    const auto killed = steady::now();
    session.reset();  // connections closed, no goodbye: like a kill -9
    while (!outcome) co_await sleep_for(5ms);
    const double bound = std::chrono::duration<double, std::milli>(finished - killed).count();
    EXPECT_EQ(outcome->outcome, kind::failed);
    EXPECT_EQ(outcome->error_type, "Funcie.ConsumerLost") << outcome->message;
    EXPECT_LT(bound, 3300.0);
    std::printf("[ figures  ] killed consumer: its request failed %.0f ms after the kill\n", bound);
    // The next invocation runs in the cloud at once: the subscription died with it.
    const auto start = steady::now();
    auto next = co_await forwarder->forward(make_request("next"), steady::now() + 10s);
    EXPECT_EQ(next.outcome, kind::not_taken);
    EXPECT_LT(ms_since(start), 50.0);
  });
}

TEST_F(RedisBackend, AStoppedButSubscribedConsumerLetsTheOfferRunInTheCloudAfterTheBound) {
  run([&]() -> asio::awaitable<void> {
    const auto o = options(600ms);
    const redis_backend::app_keys keys(app);
    // A consumer frozen right after it joined: subscribed, present, never pops its inbox.
    auto made = co_await never_popping("60000");
    const std::string frozen = made.id;
    auto sub = made.subscription;
    auto cmd = co_await raw_connection();

    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    const auto req = make_request("frozen");
    const auto start = steady::now();
    auto out = co_await forwarder->forward(req, steady::now() + 10s);
    const double took = ms_since(start);
    EXPECT_EQ(out.outcome, kind::not_taken) << out.message;
    EXPECT_GE(took, 550.0);
    EXPECT_LT(took, 1200.0);  // the bound plus one wait slice, plus a loaded machine
    std::printf("[ figures  ] offer to a frozen consumer ran in the cloud after %.0f ms\n", took);

    // Withdrawn: gone from the frozen session's inbox (a thawed session pops nothing), and
    // the claim says the cloud runs it.
    const std::string inbox_key = keys.inbox(frozen);
    std::vector<std::string_view> llen{"LLEN", inbox_key};
    auto left = co_await cmd->execute_checked(llen);
    EXPECT_EQ(left.integer, 0);
    const std::string claim_key = keys.claim(req.id);
    std::vector<std::string_view> get{"GET", claim_key};
    auto owner = co_await cmd->execute_checked(get);
    EXPECT_EQ(owner.str, "cloud");
    sub->close();
    cmd->close();
  });
}

TEST_F(RedisBackend, ARequestItsSessionNeverPoppedIsWithdrawnWhenTheSessionGoesAndRunsInTheCloud) {
  run([&]() -> asio::awaitable<void> {
    const auto o = options(3000ms);
    const redis_backend::app_keys keys(app);
    // A session that was picked and then died before popping its inbox: subscribed (so the
    // assignment reaches it), its key about to expire, nobody popping.
    auto made = co_await never_popping("400");
    const std::string dying = made.id;
    auto sub = made.subscription;
    auto cmd = co_await raw_connection();

    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    const auto req = make_request("never popped");
    const auto start = steady::now();
    auto out = co_await forwarder->forward(req, steady::now() + 10s);
    const double took = ms_since(start);
    // Withdrawn once its key is gone (within a wait slice), long before the 3 s bound.
    EXPECT_EQ(out.outcome, kind::not_taken) << out.reason;
    EXPECT_NE(out.reason.find("withdrawn"), std::string::npos) << out.reason;
    EXPECT_GE(took, 300.0);
    EXPECT_LT(took, 2000.0);
    std::printf("[ figures  ] request never popped by a dying session withdrawn after %.0f ms\n",
                took);
    // Nothing left to pop: the session, had it come back, could not run it.
    const std::string inbox_key = keys.inbox(dying);
    std::vector<std::string_view> lpop{"LPOP", inbox_key};
    auto popped = co_await cmd->execute_checked(lpop);
    EXPECT_NE(popped.type, redis::reply::kind::string);
    const std::string claim_key = keys.claim(req.id);
    std::vector<std::string_view> get{"GET", claim_key};
    auto owner = co_await cmd->execute_checked(get);
    EXPECT_EQ(owner.str, "cloud");
    sub->close();
    cmd->close();
  });
}

TEST_F(RedisBackend, RedisDownMeansTheCloudFastThenNoCostUntilTheBackoffEndsThenResumes) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session(options());
    auto log = start_serving(*session, answer_mode::echo);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options());
    auto warm = co_await forwarder->forward(make_request("warm"), steady::now() + 10s);
    EXPECT_EQ(warm.outcome, kind::answered);

    server.stop();
    auto start = steady::now();
    auto down = co_await forwarder->forward(make_request("down"), steady::now() + 10s);
    const double first_cost = ms_since(start);
    EXPECT_EQ(down.outcome, kind::not_taken);
    EXPECT_LT(first_cost, 200.0);
    start = steady::now();
    auto again = co_await forwarder->forward(make_request("again"), steady::now() + 10s);
    const double backoff_cost = ms_since(start);
    EXPECT_EQ(again.outcome, kind::not_taken);
    EXPECT_NE(again.reason.find("backing off"), std::string::npos) << again.reason;
    EXPECT_LT(backoff_cost, 1.0);
    std::printf("[ figures  ] Redis down: first invocation %.3f ms, then %.4f ms each\n",
                first_cost, backoff_cost);
    while (!log->ended) co_await sleep_for(5ms);  // the consumer noticed too

    server.restart();
    session = co_await open_session(options());
    log = start_serving(*session, answer_mode::echo);
    co_await sleep_for(1100ms);  // the first backoff is 1 s
    auto back = co_await forwarder->forward(make_request("back"), steady::now() + 10s);
    EXPECT_EQ(back.outcome, kind::answered) << back.reason << back.message;
    co_await session->close();
  });
}

TEST_F(RedisBackend, AConnectionThatDiedWhileFrozenIsReopenedOnceAndTheRequestForwarded) {
  // The default 3 s heartbeat bound: the redis-cli calls below block this thread, and under
  // ASan on a busy machine they kept the session's heartbeat from running for more than the
  // fixture's 600 ms (CI: "no consumer"). What this tests is the forwarder's reconnection.
  const auto opts = options(3000ms);
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session(opts);
    auto log = start_serving(*session, answer_mode::echo);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), opts);
    auto warm = co_await forwarder->forward(make_request("warm"), steady::now() + 10s);
    EXPECT_EQ(warm.outcome, kind::answered);
    // What a Lambda freeze does to idle sockets: the server side is gone, ours looks open.
    const std::string clients = server.cli({"CLIENT", "LIST"});
    std::size_t killed = 0;
    for (std::size_t at = clients.find("id="); at != std::string::npos;
         at = clients.find("\nid=", at + 1)) {
      const auto line_end = clients.find('\n', at + 1);
      const std::string line = clients.substr(at, line_end - at);
      if (line.find("name=funcie-forwarder") == std::string::npos) continue;
      const auto id_begin = line.find("id=") + 3;
      server.cli(
          {"CLIENT", "KILL", "ID", line.substr(id_begin, line.find(' ', id_begin) - id_begin)});
      ++killed;
    }
    EXPECT_GE(killed, 2u);  // the command connection and an idle blocking one
    const auto req = make_request("after the freeze");
    auto out = co_await forwarder->forward(req, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
    EXPECT_EQ(out.answer.body, req.payload);
    co_await session->close();
  });
}

TEST_F(RedisBackend, ABlackholedRedisCostsAtMostTheConnectTimeout) {
  run([&]() -> asio::awaitable<void> {
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options());
    server.freeze();
    const auto start = steady::now();
    auto out = co_await forwarder->forward(make_request("frozen"), steady::now() + 10s);
    const double took = ms_since(start);
    server.thaw();
    EXPECT_EQ(out.outcome, kind::not_taken);
    // The TCP handshake succeeds (the kernel accepts), so what bounds it is connect_timeout.
    EXPECT_LT(took, 400.0);
    std::printf("[ figures  ] blackholed Redis: %.0f ms, then backoff\n", took);
  });
}

TEST_F(RedisBackend, RedisLostWhileAConsumerHoldsTheRequestIsBrokerLost) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session(options());
    auto log = start_serving(*session, answer_mode::hold);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options());
    std::optional<tunnel::forward_outcome> outcome;
    const auto req = make_request("held");
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          outcome = co_await forwarder->forward(req, steady::now() + 10s);
        },
        asio::detached);
    while (log->handled.empty()) co_await sleep_for(5ms);
    const auto start = steady::now();
    server.kill();
    while (!outcome) co_await sleep_for(5ms);
    EXPECT_EQ(outcome->outcome, kind::failed);
    EXPECT_EQ(outcome->error_type, "Funcie.BrokerLost") << outcome->message;
    EXPECT_LT(ms_since(start), 1000.0);
  });
}

TEST_F(RedisBackend, GarbageAndForgedMessagesAreDroppedAndTheRightAnswerStillArrives) {
  run([&]() -> asio::awaitable<void> {
    const redis_backend::app_keys keys(app);
    auto session = co_await open_session(options());
    auto raw = co_await raw_connection();
    const std::string inbox_key = keys.inbox(session->id());
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options());
    std::optional<tunnel::forward_outcome> outcome;
    const auto req = make_request("the real event");
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          outcome = co_await forwarder->forward(req, steady::now() + 10s);
        },
        asio::detached);
    // Garbage in the session's inbox: no request id, a request for another app, a reference
    // to a request that is not there, an envelope that does not parse.
    auto other_app = make_request("another app's");
    other_app.app = "other-app";
    const std::vector<std::string> garbages{"not an envelope",
                                            "funcie/1 notice\n{\"id\":1}\n",
                                            binary(1000, 7),
                                            other_app.id + "\n" + tunnel::encode(other_app),
                                            util::random_hex(32) + "\n",
                                            util::random_hex(32) + "\nfuncie/9 request\n{}\n"};
    for (const auto& garbage : garbages) {
      std::vector<std::string_view> push{"RPUSH", inbox_key, garbage};
      co_await raw->execute_checked(push);
    }
    auto claimed = co_await session->next();  // skips all of the above
    EXPECT_EQ(claimed.id, req.id);
    EXPECT_EQ(claimed.payload, req.payload);

    // Forged and broken responses ahead of the real one.
    tunnel::response forged;
    forged.id = util::random_hex(32);
    forged.app = std::string(app);
    forged.consumer = session->id();
    forged.body = "forged: other id";
    tunnel::response foreign = forged;
    foreign.id = req.id;
    foreign.app = "other-app";
    foreign.body = "forged: other app";
    tunnel::response impostor = forged;
    impostor.id = req.id;
    impostor.consumer = util::random_hex(32);
    impostor.body = "forged: not the session that claimed it";
    const std::string resp_key = keys.resp(req.id);
    std::vector<std::string> pushes{"garbage", binary(5000, 3), tunnel::encode(forged),
                                    tunnel::encode(foreign)};
    for (const auto& bytes : pushes) {
      std::vector<std::string_view> rpush{"RPUSH", resp_key, bytes};
      co_await raw->execute_checked(rpush);
    }
    co_await sleep_for(250ms);  // the forwarder has learnt who owns it by now
    const std::string impostor_bytes = tunnel::encode(impostor);
    std::vector<std::string_view> rpush{"RPUSH", resp_key, impostor_bytes};
    co_await raw->execute_checked(rpush);
    co_await sleep_for(50ms);

    tunnel::response real;
    real.id = req.id;
    real.app = std::string(app);
    real.consumer = session->id();
    real.body = "the real answer";
    co_await session->respond(real);
    while (!outcome) co_await sleep_for(5ms);
    EXPECT_EQ(outcome->outcome, kind::answered) << outcome->reason << outcome->message;
    EXPECT_EQ(outcome->answer.body, "the real answer");
    raw->close();
    co_await session->close();
  });
}

TEST_F(RedisBackend, SixtyFourConcurrentForwardsThroughOneSessionAreAllAnswered) {
  run([&]() -> asio::awaitable<void> {
    // The default 3 s heartbeat bound: 640 forwards on one thread under ASan on a busy machine
    // can keep the session's heartbeat from running for more than the fixture's 600 ms.
    const auto o = options(3000ms);
    auto session = co_await open_session(o);
    auto log = start_serving(*session, answer_mode::echo);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    constexpr int in_flight = 64;
    constexpr int rounds = 10;
    int done = 0;
    int answered = 0;
    std::string why;  // the first one not answered
    const auto start = steady::now();
    for (int i = 0; i < in_flight; ++i) {
      asio::co_spawn(
          io,
          [&, i]() -> asio::awaitable<void> {
            for (int r = 0; r < rounds; ++r) {
              const auto req = make_request("concurrent " + std::to_string(i));
              auto out = co_await forwarder->forward(req, steady::now() + 20s);
              if (out.outcome == kind::answered && out.answer.body == req.payload) {
                ++answered;
              } else if (why.empty()) {
                why = out.error_type + ": " + out.message + out.reason;
              }
            }
            ++done;
          },
          asio::detached);
    }
    while (done < in_flight) co_await sleep_for(2ms);
    const double took = ms_since(start);
    EXPECT_EQ(answered, in_flight * rounds) << why;
    std::printf("[ figures  ] 64 in flight: %d forwarded in %.0f ms (%.0f/s)\n", in_flight * rounds,
                took, in_flight * rounds * 1000.0 / took);
    co_await session->close();
  });
}

TEST_F(RedisBackend, RoundTripIsAFewRedisRoundTrips) {
  run([&]() -> asio::awaitable<void> {
    auto raw = co_await raw_connection();
    std::vector<double> pings;
    for (int i = 0; i < 300; ++i) {
      const auto start = steady::now();
      std::vector<std::string_view> ping{"PING"};
      co_await raw->execute_checked(ping);
      pings.push_back(ms_since(start));
    }
    auto session = co_await open_session(options());
    auto log = start_serving(*session, answer_mode::echo);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options());
    std::vector<double> trips;
    for (int i = 0; i < 300; ++i) {
      const auto req = make_request("{\"n\":1}");
      const auto start = steady::now();
      auto out = co_await forwarder->forward(req, steady::now() + 10s);
      trips.push_back(ms_since(start));
      EXPECT_EQ(out.outcome, kind::answered);
    }
    std::sort(pings.begin(), pings.end());
    std::sort(trips.begin(), trips.end());
    std::printf(
        "[ figures  ] PING median %.3f ms; forwarded round trip median %.3f ms, p99 %.3f ms "
        "(%.1fx / %.1fx PING)\n",
        pings[150], trips[150], trips[297], trips[150] / pings[150], trips[297] / pings[150]);
    raw->close();
    co_await session->close();
  });
}

TEST_F(RedisBackend, ASessionWhosePresenceLapsedIsOverAndSaysSo) {
  run([&]() -> asio::awaitable<void> {
    const redis_backend::app_keys keys(app);
    auto session = co_await open_session(options());
    auto log = start_serving(*session, answer_mode::echo);
    auto raw = co_await raw_connection();
    const std::string key = keys.consumer(session->id());
    std::vector<std::string_view> del{"DEL", key};  // what a stop longer than the bound does
    co_await raw->execute_checked(del);
    const auto start = steady::now();
    while (!log->ended && ms_since(start) < 2000) co_await sleep_for(5ms);
    EXPECT_TRUE(log->ended);
    EXPECT_NE(log->end_reason.find("expired"), std::string::npos) << log->end_reason;
    EXPECT_LT(ms_since(start), 500.0);
    raw->close();
  });
}

TEST_F(RedisBackend, ScriptsSurviveAFlushedScriptCache) {
  const auto opts = options(3000ms);  // redis-cli blocks this thread (see above)
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session(opts);
    auto log = start_serving(*session, answer_mode::echo);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), opts);
    server.cli({"SCRIPT", "FLUSH"});
    auto out = co_await forwarder->forward(make_request("x"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
    co_await session->close();
  });
}

TEST_F(RedisBackend, ErrorsNameTheServerWithoutItsPassword) {
  test::redis_server_options secured_options;
  secured_options.requirepass = "hunter2";
  test::redis_server secured(secured_options);
  run([&]() -> asio::awaitable<void> {
    auto o = options();
    o.url = "redis://:wrong-password@127.0.0.1:" + std::to_string(secured.port());
    auto session = tunnel::make_consumer_session(io.get_executor(), o);
    std::string message;
    try {
      co_await session->open();
    } catch (const tunnel::backend_error& e) {
      message = e.what();
    }
    EXPECT_NE(message.find("127.0.0.1"), std::string::npos) << message;
    EXPECT_EQ(message.find("wrong-password"), std::string::npos) << message;

    o.url = secured.url();
    auto good = co_await open_session(o);
    auto log = start_serving(*good, answer_mode::echo);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    auto out = co_await forwarder->forward(make_request("auth"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered);
    co_await good->close();
  });
}

// --- With a shared secret (docs/security.md) ----------------------------------------------

const tunnel::keyring& our_keys() {
  static const auto keys = tunnel::keyring::from_secrets("the function's and the laptop's secret");
  return keys;
}

std::string flip_last_byte(std::string frame) {
  frame.back() = static_cast<char>(frame.back() ^ 0x01);
  return frame;
}

/// A request as a forwarder would send it now.
tunnel::request fresh_request(std::string payload) {
  auto req = make_request(std::move(payload));
  req.sent_ms = util::unix_ms_now();
  return req;
}

class RedisBackendSealed : public RedisBackend {
 protected:
  tunnel::backend_options sealed(const tunnel::keyring& keys = our_keys()) const {
    auto o = options();
    o.keys = keys;
    return o;
  }

  /// The notice for `id`, as a forwarder sends it, sealed with `keys`.
  static std::string sealed_notice(const tunnel::keyring& keys, const std::string& id) {
    const tunnel::notice notice{id, std::string(app)};
    return keys.seal(tunnel::encode(notice));
  }

  /// Puts `envelope` where a forwarder assigns a request to the (one) session present: its
  /// inbox. (`notice` is what older forwarders also sent; only its existence is kept.)
  asio::awaitable<void> inject(redis::connection& raw, const std::string& id,
                               const std::string& envelope, const std::string& /*notice*/) {
    const redis_backend::app_keys keys(app);
    const std::string consumers_key = keys.consumers();
    std::vector<std::string_view> first{"ZRANGE", consumers_key, "0", "0"};
    auto present = co_await raw.execute_checked(first);
    EXPECT_EQ(present.elements.size(), 1u);
    if (present.elements.size() != 1u) co_return;
    const std::string session = present.elements[0].str;
    const std::string inbox_key = keys.inbox(session);
    const std::string item = id + "\n" + envelope;
    std::vector<std::string_view> push{"RPUSH", inbox_key, item};
    co_await raw.execute_checked(push);
  }

  /// The responses pushed for request `id`, opened with our keys.
  asio::awaitable<std::vector<tunnel::response>> responses_to(redis::connection& raw,
                                                              const std::string& id) {
    const std::string key = redis_backend::app_keys(app).resp(id);
    std::vector<std::string_view> range{"LRANGE", key, "0", "-1"};
    auto list = co_await raw.execute_checked(range);
    std::vector<tunnel::response> out;
    for (const auto& element : list.elements) {
      out.push_back(tunnel::decode_response(our_keys().open(element.str)));
    }
    co_return out;
  }
};

// That forged and tampered requests never reach a handler is a conformance test
// (ForgedAndTamperedRequestsNeverReachTheHandler); on Redis a tampered request is popped, which
// is the take, so the session answers it at once rather than leave its forwarder waiting.
TEST_F(RedisBackendSealed, ATamperedRequestASessionTookIsAnsweredBadRequestAtOnce) {
  run([&]() -> asio::awaitable<void> {
    auto raw = co_await raw_connection();
    auto session = co_await open_session(sealed());
    auto log = start_serving(*session, answer_mode::echo);

    // A real request's sealed bytes with one bit changed.
    const auto tampered = fresh_request("tampered on the broker");
    const std::string tampered_envelope = flip_last_byte(our_keys().seal(tunnel::encode(tampered)));
    const std::string tampered_notice = sealed_notice(our_keys(), tampered.id);
    co_await inject(*raw, tampered.id, tampered_envelope, tampered_notice);

    // The real one still goes through (the tampered one was popped before it).
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), sealed());
    const auto real = fresh_request("the real event");
    auto out = co_await forwarder->forward(real, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
    EXPECT_EQ(log->handled, std::vector<std::string>{real.id});

    // The tampered one was refused at once, so that a forwarder waiting for it would hear why
    // instead of timing out.
    auto refusals = co_await responses_to(*raw, tampered.id);
    EXPECT_EQ(refusals.size(), 1u);
    if (!(refusals.size() == 1u)) co_return;
    EXPECT_EQ(refusals[0].error_type, "Funcie.BadRequest");
    EXPECT_NE(refusals[0].body.find("forged or tampered"), std::string::npos) << refusals[0].body;
    raw->close();
    co_await session->close();
  });
}

TEST_F(RedisBackendSealed, AReplayedOrStaleRequestIsNeverRunAgain) {
  run([&]() -> asio::awaitable<void> {
    const redis_backend::app_keys keys(app);
    auto raw = co_await raw_connection();
    consumer::consumer_options copts;
    copts.backend = sealed();
    int runs = 0;
    consumer::consumer local(io.get_executor(), copts,
                             [&](const tunnel::request& r) -> asio::awaitable<runtime_api::result> {
                               ++runs;
                               runtime_api::result result;
                               result.body = r.payload;
                               co_return result;
                             });
    asio::co_spawn(io, local.run(), asio::detached);
    co_await sleep_for(300ms);  // the session is open

    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), sealed());
    const auto req = fresh_request("pay 100 EUR once");
    auto out = co_await forwarder->forward(req, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
    EXPECT_EQ(runs, 1);

    // The broker's owner replays what it saw, clearing the claim that stands in its way.
    const std::string claim_key = keys.claim(req.id);
    const std::string resp_key = keys.resp(req.id);
    std::vector<std::string_view> del{"DEL", claim_key, resp_key};
    co_await raw->execute_checked(del);
    const std::string replayed_envelope = our_keys().seal(tunnel::encode(req));
    const std::string replayed_notice = sealed_notice(our_keys(), req.id);
    co_await inject(*raw, req.id, replayed_envelope, replayed_notice);
    // And an old request it kept (sealed 30 minutes ago).
    auto old = fresh_request("an old event");
    old.sent_ms -= 30 * 60 * 1000;
    const std::string old_envelope = our_keys().seal(tunnel::encode(old));
    const std::string old_notice = sealed_notice(our_keys(), old.id);
    co_await inject(*raw, old.id, old_envelope, old_notice);
    co_await sleep_for(500ms);
    EXPECT_EQ(runs, 1) << "a replayed or stale request ran";
    auto replay_refusals = co_await responses_to(*raw, req.id);
    EXPECT_EQ(replay_refusals.size(), 1u);
    if (!(replay_refusals.size() == 1u)) co_return;
    EXPECT_EQ(replay_refusals[0].error_type, "Funcie.BadRequest");
    EXPECT_NE(replay_refusals[0].body.find("replayed"), std::string::npos);
    auto stale_refusals = co_await responses_to(*raw, old.id);
    EXPECT_EQ(stale_refusals.size(), 1u);
    if (!(stale_refusals.size() == 1u)) co_return;
    EXPECT_NE(stale_refusals[0].body.find("stale"), std::string::npos);
    raw->close();
    co_await local.stop();
  });
}

}  // namespace
}  // namespace funcie
