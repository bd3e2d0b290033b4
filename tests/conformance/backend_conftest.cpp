// The backend contract (docs/tunnel.md, "The contract"), one set of tests run against every
// backend on a real broker: redis-server, and the fauxqs SQS server from npm, each started by
// the fixture on a free loopback port and stopped by pid. Each test is what a user of the
// forwarder and of `funcie connect` would notice if a backend broke the rule it names.
//
// Rules: 1 (nobody connected), 2 (forwarded byte for byte, errors keep their type, 6 MB),
// 3 and 4 (leave, crash, reconnect), 7 (deadline), 9 (sealing). Only the tunnel interface
// (tunnel/backend.hpp) is used, so a new backend joins by adding a broker below. Kept quick
// (about 20 s; label "conformance", which the release step of scripts/test.sh runs).
#include "../support/async.hpp"
#include "../support/env.hpp"
#include "../support/request.hpp"
#include "redis/redis_server.hpp"
#include "sqs/sqs_server.hpp"
#include "tunnel/backend.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace funcie {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using kind = tunnel::forward_outcome::kind;
using test::sleep_for;

constexpr std::string_view app = "conformance-app";
// The heartbeat bound the tests set (the SQS backend's shortest is 600 ms).
constexpr milliseconds heartbeat = 1000ms;

double ms_since(steady::time_point start) {
  return std::chrono::duration<double, std::milli>(steady::now() - start).count();
}

/// A running broker and the backend options that reach it.
class broker {
 public:
  virtual ~broker() = default;
  virtual tunnel::backend_options options() const = 0;
};

class redis_broker final : public broker {
 public:
  tunnel::backend_options options() const override {
    tunnel::backend_options o;
    o.url = server_.url();
    o.app = std::string(app);
    o.timing.heartbeat = heartbeat;
    return o;
  }

 private:
  test::redis_server server_;
};

class sqs_broker final : public broker {
 public:
  tunnel::backend_options options() const override {
    tunnel::backend_options o;
    o.url = "sqs://";
    o.app = std::string(app);
    o.timing.heartbeat = heartbeat;
    o.sqs.request_queue_url = server_.url("req");
    o.sqs.response_queue_url = server_.url("resp");
    return o;
  }

 private:
  test::sqs_server server_{test::sqs_server::kind::faux, {{"req"}, {"resp"}}};
  // The AWS client's own settings, as a function's environment gives them.
  test::scoped_env key_{"AWS_ACCESS_KEY_ID", "AKIDFUNCIETEST"};
  test::scoped_env secret_{"AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"};
  test::scoped_env token_{"AWS_SESSION_TOKEN", nullptr};
  test::scoped_env profile_{"AWS_PROFILE", nullptr};
  test::scoped_env region_{"AWS_REGION", "us-east-1"};
  test::scoped_env endpoint_{"AWS_ENDPOINT_URL_SQS", server_.endpoint().c_str()};
  test::scoped_env metadata_{"AWS_EC2_METADATA_DISABLED", "true"};
};

enum class backend_kind { redis, sqs };

std::string kind_name(const ::testing::TestParamInfo<backend_kind>& info) {
  return info.param == backend_kind::redis ? "Redis" : "Sqs";
}

tunnel::request make_request(std::string payload) {
  return test::fresh_request(app, std::move(payload));
}

/// What a local handler did, as the test sees it.
struct handler_log {
  std::vector<std::string> handled;  ///< Request ids, in the order claimed.
  bool ended = false;
};

enum class answer_mode { echo, fail, hold };

/// A local consumer: claims requests and echoes each, fails each as a function error, or holds
/// it without an answer. Ends when the session does.
asio::awaitable<void> serve(tunnel::consumer_session* session, std::shared_ptr<handler_log> log,
                            answer_mode mode) {
  for (;;) {
    tunnel::request req;
    try {
      req = co_await session->next();
    } catch (const std::exception&) {
      log->ended = true;
      co_return;
    }
    log->handled.push_back(req.id);
    if (mode == answer_mode::hold) continue;
    tunnel::response answer;
    answer.id = req.id;
    answer.app = req.app;
    answer.consumer = session->id();
    if (mode == answer_mode::fail) {
      answer.result = tunnel::response::outcome::error;
      answer.error_type = "OrderError";
      answer.body = R"({"errorType":"OrderError","errorMessage":"no such order"})";
    } else {
      answer.content_type = "application/json";
      answer.body = req.payload;
    }
    try {
      co_await session->respond(answer);
    } catch (const std::exception&) {
      log->ended = true;
      co_return;
    }
  }
}

class BackendContract : public ::testing::TestWithParam<backend_kind> {
 protected:
  asio::io_context io;  // first: outlives everything that uses it
  std::unique_ptr<broker> brokers = GetParam() == backend_kind::redis
                                        ? std::unique_ptr<broker>(std::make_unique<redis_broker>())
                                        : std::make_unique<sqs_broker>();

  template <class Body>
  void run(Body&& body, std::chrono::seconds limit = 30s) {
    test::run_on(io, std::forward<Body>(body), limit);
  }

  tunnel::backend_options options(const tunnel::keyring& keys) const {
    auto o = brokers->options();
    o.keys = keys;
    return o;
  }

  asio::awaitable<std::unique_ptr<tunnel::consumer_session>> open_session(
      const tunnel::keyring& keys = {}) {
    auto session = tunnel::make_consumer_session(io.get_executor(), options(keys));
    co_await session->open();
    co_return session;
  }

  std::shared_ptr<handler_log> start_serving(tunnel::consumer_session& session, answer_mode mode) {
    auto log = std::make_shared<handler_log>();
    asio::co_spawn(io, serve(&session, log, mode), asio::detached);
    return log;
  }

  std::unique_ptr<tunnel::forwarder_backend> forwarder(const tunnel::keyring& keys = {}) {
    return tunnel::make_forwarder_backend(io.get_executor(), options(keys));
  }

  /// Forwards `req` in the background; the outcome lands in `*out`.
  void forward_in_background(tunnel::forwarder_backend& f, tunnel::request req,
                             steady::time_point give_up_at,
                             std::shared_ptr<std::optional<tunnel::forward_outcome>> out) {
    asio::co_spawn(
        io,
        [&f, req = std::move(req), give_up_at, out]() -> asio::awaitable<void> {
          *out = co_await f.forward(req, give_up_at);
        },
        asio::detached);
  }
};

// Rule 1: with nobody connected the function runs its own handler, without waiting.
TEST_P(BackendContract, NobodyConnectedMeansTheCloud) {
  run([&]() -> asio::awaitable<void> {
    auto f = forwarder();
    for (int i = 0; i < 3; ++i) {
      const auto start = steady::now();
      auto out = co_await f->forward(make_request("{}"), steady::now() + 10s);
      EXPECT_EQ(out.outcome, kind::not_taken) << out.message;
      EXPECT_LT(ms_since(start), 2000.0) << "invocation " << i << " waited";  // room for CI
    }
  });
}

// Rule 2: connected means forwarded; a success byte for byte, an error with its type.
TEST_P(BackendContract, ConnectedMeansAnsweredLocallyByteForByteAndErrorsKeepTheirType) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session();
    auto log = start_serving(*session, answer_mode::echo);
    auto f = forwarder();
    const std::string payload = "{\"text\":\"z\xc3\xbcrich \\\"q\\\"\",\"n\":[1,2.50,-0e3]}  ";
    const auto req = make_request(payload);
    auto out = co_await f->forward(req, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message;
    EXPECT_EQ(out.answer.result, tunnel::response::outcome::success);
    EXPECT_EQ(out.answer.body, payload);
    EXPECT_EQ(log->handled, std::vector<std::string>{req.id}) << "run once, by the session";
    co_await session->close();

    auto failing = co_await open_session();
    auto failing_log = start_serving(*failing, answer_mode::fail);
    auto f2 = forwarder();
    out = co_await f2->forward(make_request("{}"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message;
    EXPECT_EQ(out.answer.result, tunnel::response::outcome::error);
    EXPECT_EQ(out.answer.error_type, "OrderError");
    EXPECT_NE(out.answer.body.find("no such order"), std::string::npos) << out.answer.body;
    co_await failing->close();
  });
}

// Rule 2 at Lambda's limit: a 6 MB event and a 6 MB answer cross whole, byte for byte.
TEST_P(BackendContract, SixMegabytesCrossBothWaysByteForByte) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session();
    auto log = start_serving(*session, answer_mode::echo);
    auto f = forwarder();
    std::string payload(6'000'000, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) {
      payload[i] = static_cast<char>((i * 31 + 7) & 0xFF);
    }
    const auto start = steady::now();
    auto out = co_await f->forward(make_request(payload), steady::now() + 20s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message;
    EXPECT_TRUE(out.answer.body == payload)
        << "the answer differs (" << out.answer.body.size() << " bytes)";
    std::printf("[ figures  ] %s: 6 MB both ways in %.0f ms\n", kind_name({GetParam(), 0}).c_str(),
                ms_since(start));
    co_await session->close();
  });
}

// Rule 9: with the shared secret on both sides invocations are forwarded; a side with another
// secret takes nothing (the function runs its own handler) and its handler sees nothing.
TEST_P(BackendContract, ASharedSecretForwardsAndADifferentOneMeansTheCloud) {
  run([&]() -> asio::awaitable<void> {
    const auto ours = tunnel::keyring::from_secrets("the conformance suite's shared secret");
    const auto theirs = tunnel::keyring::from_secrets("a secret the broker's owner made up");
    auto session = co_await open_session(ours);
    auto log = start_serving(*session, answer_mode::echo);
    auto f = forwarder(ours);
    const auto req = make_request(R"({"card":"4111 1111 1111 1111"})");
    auto out = co_await f->forward(req, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message;
    EXPECT_EQ(out.answer.body, req.payload);
    co_await session->close();

    auto stranger = co_await open_session(theirs);
    auto stranger_log = start_serving(*stranger, answer_mode::echo);
    auto f2 = forwarder(ours);
    out = co_await f2->forward(make_request("{}"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::not_taken) << out.error_type << ": " << out.message;
    EXPECT_TRUE(stranger_log->handled.empty()) << "a session with another secret ran a request";
    co_await stranger->close();
  });
}

// Rules 3 and 4: a session that leaves cleanly (its consumer answers Funcie.ConsumerLeft for
// what it holds first; here it does not) has its held request failed, never run again in the
// cloud; invocations after the leave run in the cloud; a session opened later never sees the
// older request, only the new one.
TEST_P(BackendContract, ALeaveFailsWhatItHeldAndTheNextSessionStartsFresh) {
  run([&]() -> asio::awaitable<void> {
    auto first = co_await open_session();
    auto first_log = start_serving(*first, answer_mode::hold);
    auto f = forwarder();
    const auto old = make_request("old");
    auto held = std::make_shared<std::optional<tunnel::forward_outcome>>();
    forward_in_background(*f, old, steady::now() + 20s, held);
    while (first_log->handled.empty()) co_await sleep_for(5ms);
    const auto left = steady::now();
    co_await first->close();
    while (!*held) co_await sleep_for(5ms);
    const double took = ms_since(left);
    EXPECT_EQ((*held)->outcome, kind::failed) << "taken, so never run in the cloud too";
    EXPECT_EQ((*held)->error_type, "Funcie.ConsumerLost") << (*held)->message;
    EXPECT_LT(took, 3.0 * static_cast<double>(heartbeat.count()) + 1500.0);

    auto after = co_await f->forward(make_request("after"), steady::now() + 10s);
    EXPECT_EQ(after.outcome, kind::not_taken) << after.error_type << ": " << after.message;

    auto second = co_await open_session();
    auto second_log = start_serving(*second, answer_mode::echo);
    auto f2 = forwarder();
    const auto fresh = make_request("fresh");
    auto out = co_await f2->forward(fresh, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message;
    co_await sleep_for(300ms);
    EXPECT_EQ(second_log->handled, std::vector<std::string>{fresh.id})
        << "the new session ran only the request made after it opened";
    EXPECT_EQ(first_log->handled, std::vector<std::string>{old.id});
    co_await second->close();
  });
}

// Rule 3: a consumer that vanishes without a word (killed) has what it held failed within the
// heartbeat bound (Funcie.ConsumerLost), not at the function's deadline.
TEST_P(BackendContract, ACrashedConsumersRequestFailsWithinTheHeartbeatBound) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session();
    auto log = start_serving(*session, answer_mode::hold);
    auto f = forwarder();
    auto held = std::make_shared<std::optional<tunnel::forward_outcome>>();
    forward_in_background(*f, make_request("held"), steady::now() + 25s, held);
    while (log->handled.empty()) co_await sleep_for(5ms);
    const auto killed = steady::now();
    session.reset();  // connections dropped, no goodbye: as a kill -9
    while (!*held) co_await sleep_for(10ms);
    const double took = ms_since(killed);
    EXPECT_EQ((*held)->outcome, kind::failed);
    EXPECT_EQ((*held)->error_type, "Funcie.ConsumerLost") << (*held)->message;
    // The bound plus room for a busy CI machine; far below the 25 s deadline.
    const double bound_ms = static_cast<double>(heartbeat.count());
    EXPECT_LT(took, 3 * bound_ms + 1500.0);
    std::printf(
        "[ figures  ] %s: a killed consumer's request failed %.0f ms after the kill "
        "(heartbeat %lld ms)\n",
        kind_name({GetParam(), 0}).c_str(), took, static_cast<long long>(heartbeat.count()));
  });
}

// Rule 7: a handler slower than the deadline gets Funcie.Timeout at give_up_at, not later.
TEST_P(BackendContract, ASlowHandlerIsATimeoutAtTheDeadline) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session();
    auto log = start_serving(*session, answer_mode::hold);
    auto f = forwarder();
    const auto start = steady::now();
    auto out = co_await f->forward(make_request("slow"), start + 1500ms);
    const double took = ms_since(start);
    EXPECT_EQ(out.outcome, kind::failed);
    EXPECT_EQ(out.error_type, "Funcie.Timeout") << out.message;
    EXPECT_GE(took, 1500.0);
    EXPECT_LT(took, 2500.0);
    EXPECT_EQ(log->handled.size(), 1u);
    co_await session->close();
  });
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendContract,
                         ::testing::Values(backend_kind::redis, backend_kind::sqs), kind_name);

}  // namespace
}  // namespace funcie
