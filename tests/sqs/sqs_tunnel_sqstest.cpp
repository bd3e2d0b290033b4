// The SQS tunnel's promises on shared queues (docs/sqs.md), against both SQS servers:
// at most once by construction (offer, claim, commit) under look-alike offers, foreign
// traffic and other instances' claims; every message expires and the queues empty; presence
// from the request queue's tags, so that a function nobody debugs makes one SQS request.
#include "../support/async.hpp"
#include "../support/request.hpp"
#include "../support/sqs_fixture.hpp"
#include "aws/credentials.hpp"
#include "aws/sqs_client.hpp"
#include "backend/sqs/message.hpp"
#include "sqs/serving.hpp"
#include "sqs/sqs_server.hpp"
#include "tunnel/backend.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace funcie {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using kind = tunnel::forward_outcome::kind;
using funcie::test::iam_gate;
using funcie::test::run_async;
using funcie::test::scoped_env;
using funcie::test::serve;
using funcie::test::serving;
using funcie::test::sleep_for;
using funcie::test::sqs_server;

constexpr std::string_view app = "shared-app";

// Under a storm a few invocations miss their claim window and run in the cloud (answered
// there, once); at least this many in 4 are forwarded (an ASan build runs everything a few
// times slower). None fails: a consumer that answers is never reported lost.
// Under ASan on two busy cores the consumer's `alive` can also come after the 3 s heartbeat
// bound (5 in 200 seen in a CI-style run on fauxqs): the run-once rule still holds, so only the
// count of callers that got ConsumerLost is bounded more loosely there.
#if defined(__SANITIZE_ADDRESS__)
constexpr int answered_floor_quarters = 2;
constexpr bool sanitized = true;
#else
constexpr int answered_floor_quarters = 3;
constexpr bool sanitized = false;
#endif

tunnel::request fresh_request(std::string payload) {
  return test::fresh_request(app, std::move(payload));
}

class SqsTunnel : public ::testing::TestWithParam<sqs_server::kind>, protected test::sqs_fixture {
 protected:
  SqsTunnel() : sqs_fixture(GetParam(), {{"req"}, {"resp"}}) {}
  // local-aws-sqs holds a batched receive for its whole wait; funcie finds out by itself
  // (HeldBatchedReceivesAreDetected), these tests skip that first slow receive (receive_batch
  // 1 there, below).

  tunnel::backend_options options() const { return test::sqs_options(server, app, 3000ms); }

  /// Messages on `queue`, visible or not.
  static asio::awaitable<int> depth(aws::sqs_client& raw, const std::string& queue) {
    const std::vector<std::string> names{"ApproximateNumberOfMessages",
                                         "ApproximateNumberOfMessagesNotVisible"};
    const auto a = co_await raw.get_queue_attributes(queue, names);
    int n = 0;
    for (const auto& name : names) {
      if (auto it = a.find(name); it != a.end()) n += std::stoi(it->second);
    }
    co_return n;
  }

  /// Waits until both queues are empty; returns how long it took, or nullopt past `bound`.
  asio::awaitable<std::optional<std::chrono::milliseconds>> until_empty(
      aws::sqs_client& raw, std::chrono::milliseconds bound) const {
    const auto start = steady::now();
    while (steady::now() - start < bound) {
      const int n =
          co_await depth(raw, server.url("req")) + co_await depth(raw, server.url("resp"));
      if (n == 0) {
        co_return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
      }
      co_await sleep_for(250ms);
    }
    co_return std::nullopt;
  }
};

sqs_backend::message offer_for(const tunnel::request& req, std::int64_t claim_by_ms) {
  sqs_backend::message m;
  m.kind = sqs_backend::message_kind::offer;
  m.app = std::string(app);
  m.id = req.id;
  m.claim_by_ms = claim_by_ms;
  m.expires_ms = req.context.deadline_ms;
  m.data = tunnel::encode(req);
  return m;
}

TEST_P(SqsTunnel, ALookAlikeOfferIsNeverClaimedAndRealInvocationsRunOnce) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto session = tunnel::make_consumer_session(ctx.get_executor(), options());
        co_await session->open();
        auto log = std::make_shared<serving>();
        asio::co_spawn(ctx, serve(session.get(), log), asio::detached);
        auto raw = raw_client(ctx);

        // The issue's look-alike: a valid "funcie-sqs/1 offer" header, a cut envelope.
        const auto fake = fresh_request(R"({"charge":"100 EUR"})");
        auto cut = offer_for(fake, util::unix_ms_now() + 20'000);
        cut.data.resize(cut.data.size() / 2);
        co_await raw->send_message(server.url("req"), sqs_backend::encode(cut));
        // The first piece of a "bigger" one that is not a request envelope at all.
        auto bogus = offer_for(fresh_request("x"), util::unix_ms_now() + 20'000);
        bogus.count = 2;
        bogus.data = "not an envelope";
        co_await raw->send_message(server.url("req"), sqs_backend::encode(bogus));

        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        std::vector<std::string> sent;
        for (int i = 0; i < 20; ++i) {
          const auto req = fresh_request(R"({"n":)" + std::to_string(i) + "}");
          sent.push_back(req.id);
          auto out = co_await forwarder->forward(req, steady::now() + 20s);
          EXPECT_EQ(out.outcome, kind::answered) << i << ": " << out.reason << out.message;
          EXPECT_EQ(out.answer.body, req.payload);
        }
        co_await sleep_for(500ms);
        EXPECT_EQ(log->handled, sent) << "each real invocation runs once, the look-alikes never";
        // No claim for the look-alikes was sent, so nothing of theirs waits anywhere.
        const auto emptied = co_await until_empty(*raw, 20s);
        EXPECT_TRUE(emptied.has_value()) << "messages stayed on the queues";
        co_await session->close();
      },
      90s);
}

TEST_P(SqsTunnel, AClaimItsForwarderNeverSawRunsNothing) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto session = tunnel::make_consumer_session(ctx.get_executor(), options());
        co_await session->open();
        auto log = std::make_shared<serving>();
        asio::co_spawn(ctx, serve(session.get(), log), asio::detached);
        auto raw = raw_client(ctx);

        // A real offer whose forwarder never reads the response queue (it died, or another
        // instance holds its claim): the consumer claims it, and must not run it.
        const auto orphan = fresh_request("nobody commits this");
        co_await raw->send_message(
            server.url("req"), sqs_backend::encode(offer_for(orphan, util::unix_ms_now() + 1500)));
        std::optional<sqs_backend::message> claim;
        const auto until = steady::now() + 10s;
        while (!claim && steady::now() < until) {
          for (const auto& got : co_await raw->receive_message(server.url("resp"), 1, 1)) {
            const auto m = sqs_backend::decode(got.body);
            co_await raw->delete_message(server.url("resp"), got.receipt_handle);
            if (m.kind == sqs_backend::message_kind::claim && m.id == orphan.id) claim = m;
          }
        }
        EXPECT_TRUE(claim.has_value()) << "the consumer did not claim a valid offer";
        if (claim) {
          EXPECT_GT(claim->expires_ms, util::unix_ms_now() - 1000) << "a claim must expire";
          EXPECT_LT(claim->expires_ms, util::unix_ms_now() + 10'000) << "and soon";
        }
        co_await sleep_for(3s);
        EXPECT_TRUE(log->handled.empty()) << "a claim without a commit ran the request";

        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        const auto real = fresh_request("committed");
        auto out = co_await forwarder->forward(real, steady::now() + 20s);
        EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
        EXPECT_EQ(log->handled, std::vector<std::string>{real.id});
        co_await session->close();
      },
      60s);
}

TEST_P(SqsTunnel, TwoInstancesUnderAForeignStormAndOthersClaimsRunEveryInvocationOnce) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto session = tunnel::make_consumer_session(ctx.get_executor(), options());
        co_await session->open();
        auto log = std::make_shared<serving>();
        asio::co_spawn(ctx, serve(session.get(), log), asio::detached);
        auto raw = raw_client(ctx);

        // The issue's look-alike offers (a valid header with a cut envelope; the first piece
        // of a "bigger" one that is no envelope, which once made a consumer say `alive` for
        // ten minutes), 1,000 foreign messages on the request queue and 300 claims of other
        // instances (valid, for ids nobody here waits for) on the response queue, while it
        // runs.
        bool flooding = true;
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
              auto cut =
                  offer_for(fresh_request(R"({"charge":"100 EUR"})"), util::unix_ms_now() + 20'000);
              cut.data.resize(cut.data.size() / 2);
              auto bogus = offer_for(fresh_request("x"), util::unix_ms_now() + 20'000);
              bogus.count = 2;
              bogus.data = "not an envelope";
              const std::vector<std::string> look_alikes{sqs_backend::encode(cut),
                                                         sqs_backend::encode(bogus)};
              co_await raw->send_message_batch(server.url("req"), look_alikes);
              for (int round = 0; round < 130; ++round) {
                std::vector<std::string> bodies;
                for (int i = 0; i < 10; ++i) {
                  const int n = round * 10 + i;
                  if (round < 100) {
                    bodies.push_back(n % 3 == 0   ? "plain text " + std::to_string(n)
                                     : n % 3 == 1 ? R"({"Records":[{"eventSource":"aws:s3"}]})"
                                                  : "funcie-sqs/1 offer\n{\"app\":\"" +
                                                        std::string(app) + "\"}\n");
                  } else {
                    sqs_backend::message claim;
                    claim.kind = sqs_backend::message_kind::claim;
                    claim.app = std::string(app);
                    claim.id = util::random_hex(32);
                    claim.session = util::random_hex(32);
                    claim.expires_ms = util::unix_ms_now() + 3000;
                    bodies.push_back(sqs_backend::encode(claim));
                  }
                }
                co_await raw->send_message_batch(server.url(round < 100 ? "req" : "resp"), bodies);
                co_await sleep_for(5ms);
              }
              flooding = false;
            },
            asio::detached);

        auto a = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        auto b = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        std::map<std::string, kind> outcome_of;  // request id -> what its caller got
        std::map<std::string, int> outcomes;
        int done = 0;
        constexpr int total = 200;
        constexpr int lanes = 8;  // 4 invocations in flight on each instance
        for (int lane = 0; lane < lanes; ++lane) {
          asio::co_spawn(
              ctx,
              [&, lane]() -> asio::awaitable<void> {
                auto& instance = lane % 2 == 0 ? a : b;
                for (int i = lane; i < total; i += lanes) {
                  const auto req = fresh_request(R"({"i":)" + std::to_string(i) + "}");
                  auto out = co_await instance->forward(req, steady::now() + 30s);
                  outcome_of[req.id] = out.outcome;
                  if (out.outcome == kind::answered) {
                    EXPECT_EQ(out.answer.body, req.payload);
                    ++outcomes["answered"];
                  } else {
                    ++outcomes[std::string(out.outcome == kind::not_taken ? "not_taken: "
                                                                          : "failed: ") +
                               out.reason + out.message];
                    co_await sleep_for(100ms);  // the function's own code runs meanwhile
                  }
                  ++done;
                }
              },
              asio::detached);
        }
        while (done < total) co_await sleep_for(50ms);
        co_await sleep_for(500ms);
        const auto summary = [&] {
          std::string all;
          for (const auto& [what, n] : outcomes) all += what + " x" + std::to_string(n) + "\n";
          return all;
        }();
        std::map<std::string, int> runs;
        for (const auto& id : log->handled) ++runs[id];
        int failed = 0;
        // Exactly once: an answered invocation ran here once; one the cloud ran (not_taken)
        // never ran here; nothing ran here twice.
        for (const auto& [id, outcome] : outcome_of) {
          const int n = runs.contains(id) ? runs[id] : 0;
          if (outcome == kind::answered) {
            EXPECT_EQ(n, 1) << id << " answered, ran here " << n;
          } else if (outcome == kind::not_taken) {
            EXPECT_EQ(n, 0) << id << " ran in the cloud and here";
          } else {
            EXPECT_LE(n, 1) << id << " failed and ran here " << n << " times";
            ++failed;
          }
        }
        // A consumer that answers is not reported lost (docs/sqs.md, "Nothing starves"): on a
        // server that hands out the oldest first (local-aws-sqs) the 300 claims nobody waits
        // for hold the response queue's head for their 3 s, and the session's answers and
        // alives wait behind them; a forwarder whose receives all come back full gives the
        // session 3 heartbeats rather than one (0 to 7 in 200 were lost before that).
        EXPECT_LE(failed, sanitized ? total / 20 : 0) << summary;
        for (const auto& [id, n] : runs) EXPECT_TRUE(outcome_of.contains(id)) << id;
        // The storm slows the tunnel down (offers and commits queue behind 1,000 foreign
        // messages, answers behind 300 claims nobody waits for; the few invocations that miss
        // their claim window run in the cloud) but does not stop it, and once it is over every
        // invocation is forwarded again.
        EXPECT_GE(outcomes["answered"], total * answered_floor_quarters / 4) << summary;
        std::cerr << "outcomes:\n" << summary;
        while (flooding) co_await sleep_for(50ms);
        for (auto* instance : {&a, &b}) {
          const auto calm = steady::now();
          bool back = false;
          while (!back && steady::now() - calm < 15s) {
            auto o = co_await (*instance)->forward(fresh_request("{}"), steady::now() + 10s);
            back = o.outcome == kind::answered;
            if (!back) co_await sleep_for(100ms);
          }
          EXPECT_TRUE(back) << "the tunnel did not recover after the storm";
        }
        for (int i = 0; i < 20; ++i) {
          auto o = co_await (i % 2 == 0 ? a : b)->forward(fresh_request("{}"), steady::now() + 10s);
          EXPECT_EQ(o.outcome, kind::answered) << i << ": " << o.reason << o.message;
        }
        while (flooding) co_await sleep_for(50ms);
        // Claims expire 3 s after they were sent; the session sweeps every 5 s.
        const auto emptied = co_await until_empty(*raw, 40s);
        EXPECT_TRUE(emptied.has_value()) << "messages stayed on the queues";
        co_await session->close();
      },
      180s);
}

// The issue's "nobody connected for 2 minutes of steady invocations", with every presence
// period ten times shorter (FUNCIE_SQS_PRESENCE_MS 10 s -> 1 s, FUNCIE_SQS_PRESENCE_IDLE_MS
// 300 s -> 30 s): 12 s here is 2 minutes there.
TEST_P(SqsTunnel, NobodyConnectedForTwoScaledMinutesNoInvocationWaitsAndReadsSpaceOut) {
  iam_gate gate(server.endpoint(), {});
  scoped_env via_gate{"AWS_ENDPOINT_URL_SQS", gate.endpoint().c_str()};
  auto scaled = options();
  scaled.sqs_tuning.presence_every = 1000ms;
  scaled.sqs_tuning.presence_idle_max = 30000ms;
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), scaled);
        std::vector<std::chrono::milliseconds> took;
        int first_requests = -1;
        const auto start = steady::now();
        while (steady::now() - start < 12s) {
          const auto t0 = steady::now();
          auto out = co_await forwarder->forward(fresh_request("{}"), steady::now() + 10s);
          took.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0));
          if (first_requests < 0) first_requests = gate.requests();
          EXPECT_EQ(out.outcome, kind::not_taken);
          co_await sleep_for(20ms);
        }
        EXPECT_GT(took.size(), 100u);
        EXPECT_EQ(first_requests, 1) << "the cold start makes one SQS request";
        EXPECT_LT(*std::max_element(took.begin() + 1, took.end()), 500ms)
            << "an invocation after the first waited (a claim window is 2 s)";
        // Reads in the background only, spaced 1, 2, 4, 8 s (+-20 %) while nobody is there:
        // the cold start's and at most 4 more in 12 s (at the real periods: 4 in the first 2
        // minutes, then one per 5 minutes while invoked), never one per invocation.
        EXPECT_EQ(gate.requests(), gate.requests("ListQueueTags")) << "only presence reads";
        EXPECT_GE(gate.requests("ListQueueTags"), 2) << "warm instances must still look";
        EXPECT_LE(gate.requests("ListQueueTags"), 5);
      },
      60s);
}

TEST_P(SqsTunnel, ARestartedConsumerGetsItsFirstInvocation) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto raw = raw_client(ctx);
        // The killed consumer's long poll, still pending on the server: it takes the next
        // message and nobody reads it (with the consumer's own visibility timeout).
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
              try {
                co_await raw->receive_message(server.url("req"), 1, 20, 1);
              } catch (const std::exception&) {
              }
            },
            asio::detached);
        co_await sleep_for(300ms);
        auto session = tunnel::make_consumer_session(ctx.get_executor(), options());
        co_await session->open();
        auto log = std::make_shared<serving>();
        asio::co_spawn(ctx, serve(session.get(), log), asio::detached);
        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        auto out = co_await forwarder->forward(fresh_request("first"), steady::now() + 20s);
        EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
        co_await session->close();
      },
      60s);
}

INSTANTIATE_TEST_SUITE_P(Servers, SqsTunnel,
                         ::testing::Values(sqs_server::kind::faux, sqs_server::kind::local),
                         test::sqs_server_name);

/// local-aws-sqs holds a receive of more than one message for its whole wait: funcie notices
/// at the first such receive and then asks for one at a time.
TEST(SqsHeldReceive, HeldBatchedReceivesAreDetectedAndInvocationsForwardedAfterwards) {
  sqs_server server(sqs_server::kind::local, {{"req"}, {"resp"}});
  test::aws_test_env env(server.endpoint());
  tunnel::backend_options o;
  o.url = "sqs://";
  o.app = std::string(app);
  o.sqs.request_queue_url = server.url("req");
  o.sqs.response_queue_url = server.url("resp");
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto session = tunnel::make_consumer_session(ctx.get_executor(), o);
        co_await session->open();
        auto log = std::make_shared<serving>();
        asio::co_spawn(ctx, serve(session.get(), log), asio::detached);
        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), o);
        // The first offers meet the consumer's held 20 s receive and run in the cloud.
        const auto start = steady::now();
        bool forwarded = false;
        while (!forwarded && steady::now() - start < 45s) {
          auto out = co_await forwarder->forward(fresh_request("{}"), steady::now() + 10s);
          forwarded = out.outcome == kind::answered;
          if (!forwarded) co_await sleep_for(200ms);  // the cloud runs it meanwhile
        }
        EXPECT_TRUE(forwarded) << "never adapted to the held receive";
        // From then on every invocation is forwarded.
        for (int i = 0; i < 5; ++i) {
          auto out = co_await forwarder->forward(fresh_request("{}"), steady::now() + 10s);
          EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
        }
        co_await session->close();
      },
      90s);
}

}  // namespace
}  // namespace funcie
