// The SQS tunnel with a shared secret (docs/security.md), against fauxqs: a presence tag forged
// without the secret diverts nothing. (Sealed bodies, forged, tampered and replayed messages:
// tests/conformance, on every backend.)
#include "../support/async.hpp"
#include "../support/request.hpp"
#include "../support/sqs_fixture.hpp"
#include "aws/credentials.hpp"
#include "aws/sqs_client.hpp"
#include "backend/sqs/message.hpp"
#include "sqs/sqs_server.hpp"
#include "tunnel/backend.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
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
using funcie::test::sleep_for;
using funcie::test::sqs_server;

constexpr std::string_view app = "sealed-app";

const tunnel::keyring& our_keys() {
  static const auto keys = tunnel::keyring::from_secrets("the function's and the laptop's secret");
  return keys;
}

tunnel::request fresh_request(std::string payload) {
  return test::fresh_request(app, std::move(payload));
}

class SqsSealed : public ::testing::Test, protected test::sqs_fixture {
 protected:
  // The backend reads the AWS settings the AWS way, from the environment (the fixture's).
  SqsSealed() : sqs_fixture(sqs_server::kind::faux, {{"req"}, {"resp"}}) {}

  tunnel::backend_options options(const tunnel::keyring& keys = our_keys()) const {
    auto o = test::sqs_options(server, app, 1500ms);
    o.sqs_tuning.presence_every = tunnel::sqs_options{}.presence_every;  // the default
    o.sqs_tuning.claim_window = std::chrono::milliseconds(1000);
    o.keys = keys;
    return o;
  }
};

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

}  // namespace
}  // namespace funcie
