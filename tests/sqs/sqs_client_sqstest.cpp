// sqs_client against real SQS servers from npm (local-aws-sqs and fauxqs), and, for what
// neither checks (permissions, throttling), against iam_gate.mjs in front of them.
#include "../support/async.hpp"
#include "aws/sqs_client.hpp"
#include "sqs/sqs_server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace funcie::aws {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
using funcie::test::iam_gate;
using funcie::test::run_async;
using funcie::test::sleep_for;
using funcie::test::sqs_server;

constexpr const char* key_id = "AKIDFUNCIETEST";
constexpr const char* denied_key_id = "AKIDDENIEDTEST";
constexpr const char* secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY";
constexpr int one_mib = 1024 * 1024;

std::shared_ptr<credential_provider> static_credentials(asio::io_context& ctx, const char* id) {
  return std::make_shared<credential_provider>(
      ctx.get_executor(), [id](const char* name) -> const char* {
        if (std::strcmp(name, "AWS_ACCESS_KEY_ID") == 0) return id;
        if (std::strcmp(name, "AWS_SECRET_ACCESS_KEY") == 0) return secret;
        if (std::strcmp(name, "AWS_EC2_METADATA_DISABLED") == 0) return "true";
        if (std::strcmp(name, "HOME") == 0) return "/nonexistent";
        return nullptr;
      });
}

std::unique_ptr<sqs_client> make_client(asio::io_context& ctx, const std::string& endpoint,
                                        const char* id = key_id,
                                        std::chrono::milliseconds attempt_timeout = 3000ms) {
  sqs_client_options options;
  options.region = "us-east-1";
  options.endpoint = endpoint;
  options.attempt_timeout = attempt_timeout;
  return std::make_unique<sqs_client>(ctx.get_executor(), options, static_credentials(ctx, id));
}

/// The error a call throws; fails the test when it throws none.
template <class Call>
asio::awaitable<sqs_error> failure_of(Call call) {
  try {
    co_await call();
  } catch (const sqs_error& e) {
    co_return e;
  }
  ADD_FAILURE() << "the call did not fail";
  co_return sqs_error(sqs_error::kind::server, "", "no failure");
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "\"" << text << "\" lacks \"" << part << "\"";
}

/// No secret, signature or Authorization header in a message.
void expect_no_secret(const std::string& text) {
  if (std::getenv("FUNCIE_PRINT_ERRORS")) std::fprintf(stderr, "MSG: %s\n", text.c_str());
  EXPECT_EQ(text.find(secret), std::string::npos) << text;
  EXPECT_EQ(text.find("Signature="), std::string::npos) << text;
  EXPECT_EQ(text.find("AWS4-HMAC-SHA256"), std::string::npos) << text;
  EXPECT_EQ(text.find("Credential="), std::string::npos) << text;
}

class SqsClientTest : public ::testing::TestWithParam<sqs_server::kind> {
 protected:
  void SetUp() override {
    server_ = std::make_unique<sqs_server>(
        GetParam(),
        std::vector<funcie::test::sqs_queue_spec>{{"req", 0}, {"big", one_mib}, {"small", 262144}});
  }
  bool faux() const { return GetParam() == sqs_server::kind::faux; }
  /// The largest batch that does not make local-aws-sqs wait the whole long poll.
  int batch() const { return faux() ? 10 : 1; }

  std::unique_ptr<sqs_server> server_;
};

TEST_P(SqsClientTest, SendsReceivesAndDeletes) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto client = make_client(ctx, server_->endpoint());
        const std::string& url = server_->url("req");
        std::string body = R"({"event":"héllo","n":1})";
        std::string id = co_await client->send_message(url, body);
        EXPECT_FALSE(id.empty());
        auto got = co_await client->receive_message(url, batch(), 2);
        if (got.size() != 1u) {
          ADD_FAILURE() << "received " << got.size() << " messages";
          co_return;
        }
        EXPECT_EQ(got[0].body, body);
        EXPECT_EQ(got[0].message_id, id);
        EXPECT_FALSE(got[0].receipt_handle.empty());
        EXPECT_GT(got[0].sent_timestamp_ms, 0);
        EXPECT_EQ(got[0].receive_count, 1);
        co_await client->delete_message(url, got[0].receipt_handle);
        auto after = co_await client->receive_message(url, 1, 0, 0);
        EXPECT_TRUE(after.empty());
        EXPECT_LT(std::chrono::abs(client->clock_offset()), 1500ms);
      },
      30s);
}

TEST_P(SqsClientTest, LongPollWakesWhenAMessageArrives) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto receiver = make_client(ctx, server_->endpoint());
        auto sender = make_client(ctx, server_->endpoint());
        const std::string& url = server_->url("req");
        auto start = std::chrono::steady_clock::now();
        auto send_later = [&]() -> asio::awaitable<void> {
          co_await sleep_for(300ms);
          co_await sender->send_message(url, "wake up");
        };
        auto got = co_await (receiver->receive_message(url, batch(), 10) && send_later());
        auto took = std::chrono::steady_clock::now() - start;
        if (got.size() != 1u) {
          ADD_FAILURE() << "received " << got.size() << " messages";
          co_return;
        }
        EXPECT_EQ(got[0].body, "wake up");
        EXPECT_GE(took, 300ms);
        EXPECT_LT(took, 3s) << "the long poll waited for its end instead of the message";
      },
      30s);
}

TEST_P(SqsClientTest, VisibilityZeroMakesAMessageReceivableAgain) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto client = make_client(ctx, server_->endpoint());
        const std::string& url = server_->url("req");
        co_await client->send_message(url, "again");
        auto first = co_await client->receive_message(url, 1, 2, 60);
        if (first.size() != 1u) {
          ADD_FAILURE() << "received " << first.size() << " messages";
          co_return;
        }
        EXPECT_TRUE((co_await client->receive_message(url, 1, 0)).empty());  // in flight
        co_await client->change_message_visibility(url, first[0].receipt_handle, 0);
        auto second = co_await client->receive_message(url, 1, 2);
        if (second.size() != 1u) {
          ADD_FAILURE() << "received " << second.size() << " messages";
          co_return;
        }
        EXPECT_EQ(second[0].body, "again");
        // local-aws-sqs also counts the empty receive made while the message was in flight
        if (faux()) {
          EXPECT_EQ(second[0].receive_count, 2);
        } else {
          EXPECT_GE(second[0].receive_count, 2);
        }
      },
      30s);
}

// The batch calls the tunnel coalesces its sends, deletes and releases into.
TEST_P(SqsClientTest, BatchCallsStoreReleaseAndDeleteEachEntry) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto client = make_client(ctx, server_->endpoint());
        const std::string& url = server_->url("req");
        const std::vector<std::string> bodies{"one", "two", "three"};
        const auto refused = co_await client->send_message_batch(url, bodies);
        EXPECT_EQ(refused, std::vector<std::string>(3));
        std::map<std::string, std::string> receipt_of;  // body -> receipt
        for (int i = 0; i < 20 && receipt_of.size() < 3; ++i) {
          for (auto& m : co_await client->receive_message(url, batch(), 1, 60)) {
            receipt_of[m.body] = m.receipt_handle;
          }
        }
        if (receipt_of.size() != 3u) {
          ADD_FAILURE() << "received " << receipt_of.size() << " of 3";
          co_return;
        }
        // "one" and "three" visible again at once, "two" stays hidden for a minute.
        // (Named vectors: GCC 12 cannot take a braced list into a co_await'ed call.)
        const std::vector<std::string> all{receipt_of["one"], receipt_of["two"],
                                           receipt_of["three"]};
        const std::vector<int> hide{0, 60, 0};
        const auto released = co_await client->change_message_visibility_batch(url, all, hide);
        EXPECT_EQ(released, std::vector<std::string>(3));
        std::map<std::string, std::string> again;
        for (int i = 0; i < 20 && again.size() < 2; ++i) {
          for (auto& m : co_await client->receive_message(url, batch(), 1, 60)) {
            again[m.body] = m.receipt_handle;
          }
        }
        EXPECT_EQ(again.size(), 2u);
        EXPECT_FALSE(again.contains("two"));
        const std::vector<std::string> visible{again["one"], again["three"]};
        const auto deleted = co_await client->delete_message_batch(url, visible);
        EXPECT_EQ(deleted, std::vector<std::string>(2));
        EXPECT_TRUE((co_await client->receive_message(url, batch(), 0)).empty());
      },
      30s);
}

TEST_P(SqsClientTest, GetsTheQueueUrlAndAttributes) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto client = make_client(ctx, server_->endpoint());
        EXPECT_EQ(co_await client->get_queue_url("small"), server_->url("small"));
        std::vector<std::string> names{"MaximumMessageSize"};
        auto attributes = co_await client->get_queue_attributes(server_->url("small"), names);
        EXPECT_EQ(attributes["MaximumMessageSize"], "262144");
        attributes = co_await client->get_queue_attributes(server_->url("big"), names);
        EXPECT_EQ(attributes["MaximumMessageSize"], std::to_string(one_mib));
      },
      30s);
}

TEST_P(SqsClientTest, CarriesMessagesUpToTheQueueLimitAndRefusesOneByteMore) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto client = make_client(ctx, server_->endpoint());
        for (auto [queue, limit] : {std::pair<std::string, int>{"big", one_mib},
                                    std::pair<std::string, int>{"small", 262144}}) {
          const std::string& url = server_->url(queue);
          std::string body(static_cast<std::size_t>(limit), 'x');
          body.front() = '{';
          body.back() = '}';
          co_await client->send_message(url, body);
          auto got = co_await client->receive_message(url, 1, 2);
          if (got.size() != 1u) {
            ADD_FAILURE() << queue << ": received " << got.size() << " messages";
            continue;
          }
          EXPECT_EQ(got[0].body, body) << queue;
          co_await client->delete_message(url, got[0].receipt_handle);

          body.push_back('x');
          sqs_error e = co_await failure_of(
              [&]() -> asio::awaitable<void> { co_await client->send_message(url, body); });
          EXPECT_EQ(e.cause(), sqs_error::kind::invalid) << e.what();
          expect_contains(e.what(), "sqs:SendMessage");
          expect_contains(e.what(), url);
          std::string text = e.what();
          bool says_size = text.find(std::to_string(limit)) != std::string::npos ||
                           text.find("long") != std::string::npos ||
                           text.find("size") != std::string::npos;
          EXPECT_TRUE(says_size) << text;
          expect_no_secret(text);
        }
      },
      60s);
}

TEST_P(SqsClientTest, AMissingQueueSaysWhatToDo) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto client = make_client(ctx, server_->endpoint());
        std::string url = server_->url("req");
        url = url.substr(0, url.rfind('/')) + "/nope";
        sqs_error e = co_await failure_of(
            [&]() -> asio::awaitable<void> { co_await client->send_message(url, "x"); });
        EXPECT_EQ(e.cause(), sqs_error::kind::queue_missing) << e.what();
        expect_contains(e.what(), "SQS queue " + url + " does not exist (in region us-east-1)");
        expect_contains(e.what(), "create it or check the queue URL and the region");
        expect_no_secret(e.what());

        e = co_await failure_of(
            [&]() -> asio::awaitable<void> { co_await client->get_queue_url("nope"); });
        EXPECT_EQ(e.cause(), sqs_error::kind::queue_missing) << e.what();
        expect_contains(e.what(), "SQS queue named nope does not exist");
      },
      30s);
}

TEST_P(SqsClientTest, AccessDeniedIsNotRetriedAndNamesTheOperationAndQueue) {
  iam_gate gate(server_->endpoint(), {denied_key_id});
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto denied = make_client(ctx, gate.endpoint(), denied_key_id);
        const std::string& url = server_->url("req");
        sqs_error e = co_await failure_of(
            [&]() -> asio::awaitable<void> { co_await denied->send_message(url, "x"); });
        EXPECT_EQ(e.cause(), sqs_error::kind::access_denied) << e.what();
        expect_contains(e.what(), "access denied to sqs:SendMessage on " + url);
        expect_contains(e.what(), "needs sqs:SendMessage on the queue's ARN");
        expect_contains(e.what(), "docs/sqs.md");
        expect_no_secret(e.what());
        EXPECT_EQ(gate.requests("SendMessage"), 1);

        e = co_await failure_of(
            [&]() -> asio::awaitable<void> { co_await denied->receive_message(url, 1, 0); });
        expect_contains(e.what(), "access denied to sqs:ReceiveMessage on " + url);
        expect_no_secret(e.what());

        auto allowed = make_client(ctx, gate.endpoint());  // through the same gate
        co_await allowed->send_message(url, "fine");
      },
      30s);
}

TEST_P(SqsClientTest, ThrottlingIsRetriedWithBackoff) {
  iam_gate gate(server_->endpoint(), {});
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto client = make_client(ctx, gate.endpoint());
        const std::string& url = server_->url("req");
        gate.fail(2);
        co_await client->send_message(url, "after two throttles");
        EXPECT_EQ(gate.requests("SendMessage"), 3);

        gate.reset();
        gate.fail(3);
        sqs_error e = co_await failure_of(
            [&]() -> asio::awaitable<void> { co_await client->send_message(url, "x"); });
        EXPECT_EQ(e.cause(), sqs_error::kind::throttled) << e.what();
        expect_contains(e.what(), "SQS throttled sqs:SendMessage on " + url + " 3 times");
        expect_no_secret(e.what());
        EXPECT_EQ(gate.requests("SendMessage"), 3);

        gate.reset();
        gate.fail(1, "unavailable");  // a 503 is retried too
        co_await client->send_message(url, "after a 503");
        EXPECT_EQ(gate.requests("SendMessage"), 2);
      },
      60s);
}

TEST_P(SqsClientTest, AnUnreachableEndpointIsATransportError) {
  std::string endpoint = server_->endpoint();
  server_->stop();
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto client = make_client(ctx, endpoint);
        sqs_error e = co_await failure_of([&]() -> asio::awaitable<void> {
          co_await client->send_message(server_->url("req"), "x");
        });
        EXPECT_EQ(e.cause(), sqs_error::kind::transport) << e.what();
        expect_contains(e.what(), "cannot reach SQS at " + endpoint + ": ");
        expect_contains(e.what(), "3 attempts");
        expect_no_secret(e.what());
      },
      30s);
}

TEST_P(SqsClientTest, ALongPollIsNotCutByTheAttemptTimeout) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto client = make_client(ctx, server_->endpoint(), key_id, 500ms);
        auto start = std::chrono::steady_clock::now();
        auto got = co_await client->receive_message(server_->url("req"), batch(), 2);
        EXPECT_TRUE(got.empty());  // an empty queue: the whole wait, then no message
        EXPECT_GE(std::chrono::steady_clock::now() - start, 1900ms);
      },
      30s);
}

TEST_P(SqsClientTest, CancellingALongPollEndsItAtOnce) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto client = make_client(ctx, server_->endpoint());
        auto start = std::chrono::steady_clock::now();
        auto winner =
            co_await (client->receive_message(server_->url("req"), 1, 10) || sleep_for(200ms));
        EXPECT_EQ(winner.index(), 1u);
        EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
        co_await client->send_message(server_->url("req"), "still works");
      },
      30s);
}

INSTANTIATE_TEST_SUITE_P(Servers, SqsClientTest,
                         ::testing::Values(sqs_server::kind::local, sqs_server::kind::faux),
                         [](const ::testing::TestParamInfo<sqs_server::kind>& p) {
                           return std::string(p.param == sqs_server::kind::local ? "LocalAwsSqs"
                                                                                 : "Fauxqs");
                         });

}  // namespace
}  // namespace funcie::aws
