// The SQS tunnel with a shared secret (docs/security.md), against fauxqs: the queues see only
// sealed bodies, and forged, tampered and replayed messages are refused.
#include "../support/async.hpp"
#include "../support/env.hpp"
#include "../support/request.hpp"
#include "aws/credentials.hpp"
#include "aws/sqs_client.hpp"
#include "backend/sqs/message.hpp"
#include "consumer/consumer.hpp"
#include "sqs/serving.hpp"
#include "sqs/sqs_server.hpp"
#include "tunnel/backend.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace funcie {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using kind = tunnel::forward_outcome::kind;
using funcie::test::run_async;
using funcie::test::scoped_env;
using funcie::test::serve;
using funcie::test::serving;
using funcie::test::sleep_for;
using funcie::test::sqs_server;

constexpr std::string_view app = "sealed-app";

const tunnel::keyring& our_keys() {
  static const auto keys = tunnel::keyring::from_secrets("the function's and the laptop's secret");
  return keys;
}
const tunnel::keyring& attacker_keys() {
  static const auto keys = tunnel::keyring::from_secrets("a secret the queue's owner made up");
  return keys;
}

tunnel::request fresh_request(std::string payload) {
  return test::fresh_request(app, std::move(payload));
}

/// The offer a forwarder sends for `req` (one piece), as funcie-sqs text before sealing.
std::string offer_text(const tunnel::request& req, std::int64_t claim_by_ms) {
  sqs_backend::message m;
  m.kind = sqs_backend::message_kind::offer;
  m.app = std::string(app);
  m.id = req.id;
  m.claim_by_ms = claim_by_ms;
  m.expires_ms = req.context.deadline_ms;
  m.data = tunnel::encode(req);
  return sqs_backend::encode(m);
}

std::string tamper(std::string frame) {
  // A character of the base64 after the first line, changed to another base64 character.
  const auto at = frame.find('\n') + 20;
  frame[at] = frame[at] == 'A' ? 'B' : 'A';
  return frame;
}

class SqsSealed : public ::testing::Test {
 protected:
  sqs_server server{sqs_server::kind::faux, {{"req"}, {"resp"}}};
  // The backend reads the AWS settings the AWS way, from the environment.
  scoped_env key{"AWS_ACCESS_KEY_ID", "AKIDFUNCIETEST"};
  scoped_env secret{"AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"};
  scoped_env token{"AWS_SESSION_TOKEN", nullptr};
  scoped_env profile{"AWS_PROFILE", nullptr};
  scoped_env region{"AWS_REGION", "us-east-1"};
  scoped_env endpoint{"AWS_ENDPOINT_URL_SQS", server.endpoint().c_str()};
  scoped_env metadata{"AWS_EC2_METADATA_DISABLED", "true"};

  tunnel::backend_options options(const tunnel::keyring& keys = our_keys()) const {
    tunnel::backend_options o;
    o.sqs_tuning.claim_window = std::chrono::milliseconds(1000);
    o.url = "sqs://";
    o.app = std::string(app);
    o.timing.heartbeat = 1500ms;
    o.sqs.request_queue_url = server.url("req");
    o.sqs.response_queue_url = server.url("resp");
    o.keys = keys;
    return o;
  }

  std::unique_ptr<aws::sqs_client> raw_client(asio::io_context& ctx) const {
    aws::sqs_client_options o;
    o.region = "us-east-1";
    o.endpoint = server.endpoint();
    auto credentials = std::make_shared<aws::credential_provider>(
        ctx.get_executor(), [](const char* name) { return std::getenv(name); });
    return std::make_unique<aws::sqs_client>(ctx.get_executor(), o, credentials);
  }
};

TEST_F(SqsSealed, TheQueueSeesOnlySealedBodies) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        // A session's presence tag (it never claims): the forwarder offers, and the offer
        // waits on the request queue for its claim window.
        auto raw = raw_client(ctx);
        const std::string id = util::random_hex(32);
        const std::string tag = sqs_backend::presence_tag_key(app, id);
        const std::map<std::string, std::string> here{
            {tag, sqs_backend::presence_tag_value(tag, util::unix_ms_now() + 60'000, our_keys(), id,
                                                  0)}};
        co_await raw->tag_queue(server.url("req"), here);
        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        const auto req = fresh_request(R"({"card":"4111 1111 1111 1111"})");
        std::optional<tunnel::forward_outcome> outcome;
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
              outcome = co_await forwarder->forward(req, steady::now() + 10s);
            },
            asio::detached);
        auto got = co_await raw->receive_message(server.url("req"), 1, 2);
        EXPECT_EQ(got.size(), 1u);
        if (!(got.size() == 1u)) co_return;
        const std::string& body = got[0].body;
        EXPECT_TRUE(body.starts_with("funcie/1 sealed64 " + our_keys().current_key_id() + "\n"))
            << body.substr(0, 60);
        EXPECT_EQ(body.find("4111"), std::string::npos) << "the event is readable on the queue";
        EXPECT_EQ(body.find(req.id), std::string::npos) << "the header is readable on the queue";
        const auto offer = sqs_backend::decode(our_keys().open(body));
        EXPECT_EQ(offer.kind, sqs_backend::message_kind::offer);
        EXPECT_EQ(tunnel::decode_request(offer.data), req);
        while (!outcome) co_await sleep_for(20ms);
        EXPECT_EQ(outcome->outcome, kind::not_taken);
      },
      30s);
}

TEST_F(SqsSealed, APresenceTagForgedWithoutTheSecretDivertsNothing) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        // Whoever may tag the queue but holds no secret: a plain tag, one sealed with another
        // secret, and a real session's sealed value copied onto another session's key.
        auto raw = raw_client(ctx);
        const auto until = util::unix_ms_now() + 60'000;
        const std::string ids[] = {util::random_hex(32), util::random_hex(32), util::random_hex(32),
                                   util::random_hex(32)};
        const std::string plain = sqs_backend::presence_tag_key(app, ids[0]);
        const std::string other = sqs_backend::presence_tag_key(app, ids[1]);
        const std::string copied = sqs_backend::presence_tag_key(app, ids[2]);
        const std::string real = sqs_backend::presence_tag_key(app, ids[3]);
        const auto theirs = tunnel::keyring::from_secrets("not the secret these sides share");
        const std::map<std::string, std::string> forged{
            {plain, sqs_backend::presence_tag_value(plain, until, {}, ids[0], 0)},
            {other, sqs_backend::presence_tag_value(other, until, theirs, ids[1], 0)},
            {copied, sqs_backend::presence_tag_value(real, until, our_keys(), ids[3], 0)},
        };
        co_await raw->tag_queue(server.url("req"), forged);
        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        for (int i = 0; i < 5; ++i) {
          const auto t0 = steady::now();
          auto out = co_await forwarder->forward(fresh_request("{}"), steady::now() + 10s);
          EXPECT_EQ(out.outcome, kind::not_taken) << out.reason;
          EXPECT_LT(steady::now() - t0, 1s) << "an invocation waited for a claim";
        }
        // Nothing was offered: the request queue is empty.
        const auto got = co_await raw->receive_message(server.url("req"), 10, 0);
        EXPECT_TRUE(got.empty()) << "a forged tag made the forwarder offer";
      },
      30s);
}

TEST_F(SqsSealed, ForgedAndTamperedOffersNeverReachTheHandler) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto session = tunnel::make_consumer_session(ctx.get_executor(), options());
        co_await session->open();
        auto log = std::make_shared<serving>();
        asio::co_spawn(ctx, serve(session.get(), log), asio::detached);

        auto raw = raw_client(ctx);
        const std::int64_t claim_by = util::unix_ms_now() + 5000;
        const auto clear = fresh_request("forged in the clear");
        const std::string clear_body = offer_text(clear, claim_by);
        co_await raw->send_message(server.url("req"), clear_body);
        const auto foreign = fresh_request("forged with another key");
        const std::string foreign_body = attacker_keys().seal_text(offer_text(foreign, claim_by));
        co_await raw->send_message(server.url("req"), foreign_body);
        const auto tampered = fresh_request("tampered on the queue");
        const std::string tampered_body =
            tamper(our_keys().seal_text(offer_text(tampered, claim_by)));
        co_await raw->send_message(server.url("req"), tampered_body);

        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        const auto real = fresh_request("the real event");
        auto out = co_await forwarder->forward(real, steady::now() + 15s);
        EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
        EXPECT_EQ(out.answer.body, "the real event");
        co_await sleep_for(500ms);
        EXPECT_EQ(log->handled, std::vector<std::string>{real.id});
        co_await session->close();
      },
      40s);
}

TEST_F(SqsSealed, TamperedAndForgedResponsesAreDroppedAndTheRealOneArrives) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto session = tunnel::make_consumer_session(ctx.get_executor(), options());
        co_await session->open();
        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        const auto req = fresh_request("the real event");
        std::optional<tunnel::forward_outcome> outcome;
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
              outcome = co_await forwarder->forward(req, steady::now() + 15s);
            },
            asio::detached);
        auto claimed = co_await session->next();
        EXPECT_EQ(claimed, req);

        tunnel::response forged;
        forged.id = req.id;
        forged.app = std::string(app);
        forged.consumer = session->id();
        forged.body = "forged answer";
        sqs_backend::message m;
        m.kind = sqs_backend::message_kind::response;
        m.app = std::string(app);
        m.id = req.id;
        m.session = session->id();
        m.expires_ms = util::unix_ms_now() + 30'000;
        m.data = tunnel::encode(forged);
        const std::string text = sqs_backend::encode(m);
        auto raw = raw_client(ctx);
        const std::vector<std::string> bodies{text, attacker_keys().seal_text(text),
                                              tamper(our_keys().seal_text(text))};
        for (const auto& body : bodies) co_await raw->send_message(server.url("resp"), body);
        co_await sleep_for(1000ms);
        EXPECT_FALSE(outcome.has_value()) << "a forged response was taken";

        tunnel::response real = forged;
        real.body = "the real answer";
        co_await session->respond(real);
        while (!outcome) co_await sleep_for(10ms);
        EXPECT_EQ(outcome->outcome, kind::answered) << outcome->reason << outcome->message;
        EXPECT_EQ(outcome->answer.body, "the real answer");
        co_await session->close();
      },
      40s);
}

TEST_F(SqsSealed, AReplayedOfferIsNeverRunAgain) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        consumer::consumer_options copts;
        copts.backend = options();
        int runs = 0;
        consumer::consumer local(
            ctx.get_executor(), copts,
            [&](const tunnel::request& r) -> asio::awaitable<runtime_api::result> {
              ++runs;
              runtime_api::result result;
              result.body = r.payload;
              co_return result;
            });
        asio::co_spawn(ctx, local.run(), asio::detached);
        co_await sleep_for(500ms);

        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        const auto req = fresh_request("pay 100 EUR once");
        auto out = co_await forwarder->forward(req, steady::now() + 15s);
        EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
        EXPECT_EQ(runs, 1);

        // The same offer again (same id, same sealed content), twice, inside its claim window.
        auto raw = raw_client(ctx);
        const std::string replay =
            our_keys().seal_text(offer_text(req, util::unix_ms_now() + 5000));
        co_await raw->send_message(server.url("req"), replay);
        co_await raw->send_message(server.url("req"), replay);
        co_await sleep_for(1500ms);
        EXPECT_EQ(runs, 1) << "a replayed offer ran again";
        co_await local.stop();
      },
      40s);
}

TEST_F(SqsSealed, DifferentSecretsMeanNothingIsTakenAndTheFunctionRunsItself) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto session = tunnel::make_consumer_session(ctx.get_executor(), options(attacker_keys()));
        co_await session->open();
        auto log = std::make_shared<serving>();
        asio::co_spawn(ctx, serve(session.get(), log), asio::detached);
        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        const auto req = fresh_request("{}");
        auto out = co_await forwarder->forward(req, steady::now() + 15s);
        EXPECT_EQ(out.outcome, kind::not_taken) << out.reason << out.message;
        EXPECT_TRUE(log->handled.empty());
        co_await session->close();
      },
      40s);
}

}  // namespace
}  // namespace funcie
