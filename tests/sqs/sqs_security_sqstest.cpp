// The SQS tunnel with a shared secret (docs/security.md), against fauxqs: a presence tag forged
// without the secret diverts nothing. (Sealed bodies, forged, tampered and replayed messages:
// tests/conformance, on every backend.)
#include "../support/async.hpp"
#include "../support/env.hpp"
#include "../support/request.hpp"
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
using funcie::test::scoped_env;
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
