// The backend core every backend shares (src/tunnel/core.hpp, try_await.hpp) and the
// consumer info codec (src/tunnel/consumer_info.hpp): no broker, no I/O.
#include "tunnel/consumer_info.hpp"
#include "tunnel/core.hpp"
#include "tunnel/try_await.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <stdexcept>

namespace funcie::tunnel {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

template <class T>
T run(asio::awaitable<T> op) {
  asio::io_context io;
  auto result = asio::co_spawn(io, std::move(op), asio::use_future);
  io.run();
  return result.get();
}

asio::awaitable<int> answer(int value) {
  co_return value;
}
asio::awaitable<int> refuse(std::string why) {
  throw std::runtime_error(why);
  co_return 0;
}
asio::awaitable<void> refuse_logic() {
  throw std::logic_error("a logic error");
  co_return;
}

TEST(TryAwait, GivesTheValueOrWhatWasThrown) {
  auto got = run(try_await(answer(42)));
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 42);
  EXPECT_TRUE(got.error.empty());

  auto failed_call = run(try_await(refuse("broker went away")));
  EXPECT_FALSE(failed_call);
  EXPECT_EQ(failed_call.error, "broker went away");
}

TEST(TryAwait, KeepsTheExceptionOfTheTypeAskedForAndLetsOthersThrough) {
  auto kept = run(try_await<std::runtime_error>(refuse("refused")));
  ASSERT_FALSE(kept);
  ASSERT_TRUE(kept.failure.has_value());
  EXPECT_STREQ(kept.failure->what(), "refused");

  EXPECT_THROW(run(try_await<std::runtime_error>(refuse_logic())), std::logic_error);
  // Caught as any exception, it can still be looked at as its own type.
  auto any = run(try_await(refuse("refused again")));
  ASSERT_TRUE(any.as<std::runtime_error>().has_value());
  EXPECT_STREQ(any.as<std::runtime_error>()->what(), "refused again");
  EXPECT_FALSE(any.as<std::logic_error>().has_value());
  auto void_call = run(try_await(refuse_logic()));
  EXPECT_FALSE(void_call);
  EXPECT_EQ(void_call.error, "a logic error");
}

TEST(BrokerBackoff, RunsInTheCloudForOneSecondThenLongerUpToFive) {
  broker_backoff backoff("Redis at localhost:1");
  const auto before = steady::now();
  EXPECT_FALSE(backoff.active(before));
  backoff.enter("connection refused");
  EXPECT_TRUE(backoff.active(steady::now()));
  EXPECT_LE(backoff.remaining(steady::now()), 1000ms);
  EXPECT_GT(backoff.remaining(steady::now()), 900ms);
  // A second trouble in the same burst changes nothing.
  backoff.enter("connection refused");
  EXPECT_LE(backoff.remaining(steady::now()), 1000ms);
  EXPECT_FALSE(backoff.active(steady::now() + 1001ms));
  EXPECT_EQ(backoff.remaining(steady::now() + 1001ms), 0ms);
}

TEST(RefuseEarly, WhileBackingOffOrForABadIdTheRequestRunsInTheCloud) {
  broker_backoff backoff("SQS queue https://sqs.example/1/q");
  request req;
  req.id = "0123456789abcdef0123456789abcdef";
  req.app = "app";
  EXPECT_FALSE(refuse_early(backoff, req, steady::now()).has_value());

  request bad = req;
  bad.id = "not-an-id";
  const auto refused_id = refuse_early(backoff, bad, steady::now());
  ASSERT_TRUE(refused_id.has_value());
  EXPECT_EQ(refused_id->outcome, forward_outcome::kind::not_taken);
  EXPECT_EQ(refused_id->reason, "invalid request id");

  backoff.enter("timed out");
  const auto refused = refuse_early(backoff, req, steady::now());
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->outcome, forward_outcome::kind::not_taken);
  EXPECT_NE(refused->reason.find("backing off from SQS queue https://sqs.example/1/q"),
            std::string::npos)
      << refused->reason;
}

TEST(Labelled, RequestsAndResponsesCarryTheBackendsNamesCopyingOnlyWhenNeeded) {
  request req;
  req.id = "0123456789abcdef0123456789abcdef";
  req.app = "app";
  req.payload = "event";
  const labelled_request same(req, "app");
  EXPECT_EQ(&same.get(), &req);
  const labelled_request other(req, "other-app");
  EXPECT_EQ(other.get().app, "other-app");
  EXPECT_EQ(other.get().payload, "event");
  EXPECT_EQ(req.app, "app");

  response answer;
  answer.id = req.id;
  answer.app = "app";
  answer.consumer = "s1";
  const labelled_response kept(answer, "s1", "app");
  EXPECT_EQ(&kept.get(), &answer);
  const labelled_response relabelled(answer, "s2", "app");
  EXPECT_EQ(relabelled.get().consumer, "s2");
}

TEST(Outcomes, OneTimeoutTextWithOrWithoutAnOwner) {
  const auto held = timed_out(std::string("abc"), 1500ms);
  EXPECT_EQ(held.outcome, forward_outcome::kind::failed);
  EXPECT_EQ(held.error_type, "Funcie.Timeout");
  EXPECT_NE(held.message.find("did not answer in time: session abc held the request for 1500 ms"),
            std::string::npos)
      << held.message;
  const auto nobody = timed_out(std::nullopt, 20ms);
  EXPECT_EQ(nobody.error_type, "Funcie.Timeout");
  EXPECT_NE(nobody.message.find("no consumer took the request in the 20 ms"), std::string::npos)
      << nobody.message;
  const auto lost = broker_lost("Redis at h:1", "EOF");
  EXPECT_EQ(lost.error_type, "Funcie.BrokerLost");
  EXPECT_EQ(lost.message, "lost Redis at h:1 while a consumer may be running the request: EOF");
}

TEST(SessionLifecycle, OpensOnceAndSaysWhyItIsOver) {
  session_lifecycle a;
  session_lifecycle b;
  EXPECT_TRUE(is_valid_id(a.session_id));
  EXPECT_NE(a.session_id, b.session_id);
  EXPECT_GT(a.pid, 0);
  EXPECT_THROW(a.check_open(), backend_error);
  a.begin_open();
  EXPECT_GT(a.since_ms, 0);
  a.opened = true;
  EXPECT_THROW(a.begin_open(), backend_error);
  EXPECT_NO_THROW(a.check_running());
  EXPECT_TRUE(a.mark_lost("its heartbeat lapsed"));
  EXPECT_FALSE(a.mark_lost("something later"));
  try {
    a.check_running();
    FAIL() << "a lost session must throw";
  } catch (const backend_error& e) {
    EXPECT_STREQ(e.what(), "its heartbeat lapsed");
  }
  b.stopped = true;
  EXPECT_FALSE(b.mark_lost("late"));
  EXPECT_THROW(b.check_running(), backend_error);
}

TEST(ConsumerCard, RoundTripsAndReadsWhatEitherBackendWrote) {
  consumer_card card;
  card.host = "laptop";
  card.pid = 4242;
  card.since_ms = 1763900000000;
  card.in_flight = 3;
  card.ttl_ms = 2500;
  EXPECT_EQ(decode_consumer_card(encode_consumer_card(card)), card);
  card.ttl_ms.reset();
  card.at_ms = 1763900001234;
  EXPECT_EQ(decode_consumer_card(encode_consumer_card(card)), card);

  // Unsigned integers are accepted (a JSON writer may pick either), out-of-range ones are not.
  const auto read = decode_consumer_card(
      R"({"host":"h","pid":7,"since_ms":9223372036854775807,"in_flight":18446744073709551615,)"
      R"("ttl_ms":"soon","extra":[1]})");
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->host, "h");
  EXPECT_EQ(read->pid, 7);
  EXPECT_EQ(read->since_ms, 9223372036854775807);
  EXPECT_EQ(read->in_flight, 0);
  EXPECT_FALSE(read->ttl_ms.has_value());

  EXPECT_FALSE(decode_consumer_card("not json").has_value());
  EXPECT_FALSE(decode_consumer_card("[1,2]").has_value());
  const auto empty = decode_consumer_card("{}");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->pid, 0);
}

}  // namespace
}  // namespace funcie::tunnel
