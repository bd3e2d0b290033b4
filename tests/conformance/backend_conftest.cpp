// The backend contract (docs/tunnel.md, "The contract"), one set of tests run against every
// backend on a real broker: one redis-server, a Redis Cluster of three masters, and the two SQS
// servers from npm (fauxqs, local-aws-sqs), each started on free loopback ports and stopped by
// pid (brokers.hpp). Each test is what a user of the forwarder and of `funcie connect` would
// notice if a backend broke the rule it names; docs/tunnel.md names the tests of each rule.
//
// Rules: 1 (nobody connected, presence), 2 (forwarded byte for byte up to 6 MiB, errors keep
// their type), 3 and 4 (leave, crash, reconnect), 5 (at most once: two sessions, a retry, a
// replay), 6 (broker trouble), 7 (deadline), 8 (a request held past the heartbeat bound), 9
// (sealing, forged and tampered messages), 11 (routes), and `funcie status`. Only the tunnel
// interface (tunnel/backend.hpp) and the consumer (consumer/consumer.hpp) are used, except
// where a forger writes to the broker or the broker's traffic is recorded (brokers.hpp), so a
// new backend joins by adding a broker there.
//
// Each process starts a broker of a kind once, at its first test, and gives each test an app
// (on SQS also queues) of its own; ctest runs one process per broker (tests/CMakeLists.txt,
// label "conformance", which the release step of scripts/test.sh runs). Waits are for events
// (an answer, a session's end), bounded with room for two busy cores.
#include "../support/async.hpp"
#include "../support/request.hpp"
#include "conformance/brokers.hpp"
#include "consumer/consumer.hpp"
#include "tunnel/backend.hpp"
#include "util/base64.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
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
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using kind = tunnel::forward_outcome::kind;
using test::forgery;
using test::sleep_for;

// The heartbeat bound the tests set (the SQS backend's shortest is 600 ms).
constexpr milliseconds heartbeat = 1000ms;

double ms_since(steady::time_point start) {
  return std::chrono::duration<double, std::milli>(steady::now() - start).count();
}

enum class backend_kind { redis, redis_cluster, fauxqs, local_sqs };

std::unique_ptr<test::broker> make_broker(backend_kind k) {
  switch (k) {
    case backend_kind::redis:
      return std::make_unique<test::redis_broker>();
    case backend_kind::redis_cluster:
      return std::make_unique<test::redis_cluster_broker>();
    case backend_kind::fauxqs:
      return std::make_unique<test::sqs_broker>(test::sqs_server::kind::faux);
    case backend_kind::local_sqs:
      return std::make_unique<test::sqs_broker>(test::sqs_server::kind::local);
  }
  return nullptr;
}

/// One broker of each kind per process, made by the first test that needs it: starting one
/// (a Redis Cluster, a Node server) takes longer than most tests.
std::map<backend_kind, std::unique_ptr<test::broker>>& shared_brokers() {
  static std::map<backend_kind, std::unique_ptr<test::broker>> brokers;
  return brokers;
}

test::broker& shared_broker(backend_kind k) {
  auto& slot = shared_brokers()[k];
  if (!slot) slot = make_broker(k);
  return *slot;
}

std::string kind_name(const ::testing::TestParamInfo<backend_kind>& info) {
  switch (info.param) {
    case backend_kind::redis:
      return "Redis";
    case backend_kind::redis_cluster:
      return "RedisCluster";
    case backend_kind::fauxqs:
      return "Fauxqs";
    case backend_kind::local_sqs:
      return "LocalAwsSqs";
  }
  return "?";
}

std::string binary(std::size_t size, unsigned seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 31 + seed) & 0xFF);
  return out;
}

const tunnel::keyring& our_keys() {
  static const auto keys = tunnel::keyring::from_secrets("the conformance suite's shared secret");
  return keys;
}
const tunnel::keyring& their_keys() {
  static const auto keys = tunnel::keyring::from_secrets("a secret the broker's owner made up");
  return keys;
}

/// Whether `text` can be read in `recorded`: as it is, or in base64 at any alignment.
bool readable(const std::string& recorded, const std::string& text) {
  if (recorded.find(text) != std::string::npos) return true;
  for (std::size_t skip = 0; skip < 3; ++skip) {
    const std::string part = text.substr(skip, (text.size() - skip) / 3 * 3);
    if (part.empty()) continue;
    if (recorded.find(util::to_base64(part)) != std::string::npos) return true;
  }
  return false;
}

/// Every way a forger makes its bytes (no braced lists in coroutines: GCC 12 trips on them).
constexpr std::array<forgery, 3> forgeries{forgery::clear, forgery::foreign_key, forgery::tampered};

/// What a local handler did, as the test sees it.
struct handler_log {
  std::vector<std::string> handled;  ///< Request ids, in the order claimed.
  int sessions = 0;                  ///< Sessions opened (keep_serving).
  bool ended = false;
};

enum class answer_mode {
  echo,  ///< answers at once with the event, content type application/json
  fail,  ///< answers with a function error
  hold,  ///< never answers
  late,  ///< answers with the event after 1.5 heartbeat bounds
};

constexpr milliseconds late_by = heartbeat * 3 / 2;

/// A local consumer: claims requests and answers each as `mode` says. Ends when the session
/// does.
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
    if (mode == answer_mode::late) co_await sleep_for(late_by);
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

/// `funcie connect` in small: a session that echoes, and a new one whenever it ends, until
/// `stop`.
struct reconnecting_consumer {
  std::shared_ptr<handler_log> log = std::make_shared<handler_log>();
  std::unique_ptr<tunnel::consumer_session> current;
  bool stop = false;
  bool stopped = false;
};

asio::awaitable<void> keep_serving(asio::any_io_executor ex, tunnel::backend_options o,
                                   std::shared_ptr<reconnecting_consumer> c) {
  while (!c->stop) {
    c->current = tunnel::make_consumer_session(ex, o);
    bool opened = false;
    try {
      co_await c->current->open();
      opened = true;
    } catch (const std::exception&) {
    }
    if (opened && !c->stop) {
      ++c->log->sessions;
      co_await serve(c->current.get(), c->log, answer_mode::echo);
    }
    if (!c->stop) co_await sleep_for(100ms);
  }
  c->stopped = true;
}

class BackendContract : public ::testing::TestWithParam<backend_kind> {
 public:
  static void TearDownTestSuite() { shared_brokers().clear(); }

 protected:
  asio::io_context io;  // first: outlives everything that uses it
  test::broker* broker = &shared_broker(GetParam());
  std::unique_ptr<test::test_scope> scope = broker->new_scope(heartbeat);
  /// The scope the helpers below use: the test's own, or another one it made.
  test::test_scope* active = scope.get();

  tunnel::request make_request(std::string payload) const {
    return test::fresh_request(active->options.app, std::move(payload));
  }

  template <class Body>
  void run(Body&& body, std::chrono::seconds limit = 40s) {
    test::run_on(io, std::forward<Body>(body), limit);
  }

  std::string name() const { return kind_name({GetParam(), 0}); }

  /// The heartbeat bound of this test's sessions and forwarders.
  milliseconds test_heartbeat = heartbeat;
  /// Zero: the backend's default (1 s per broker call).
  milliseconds test_command_timeout{0};

  tunnel::backend_options options(const tunnel::keyring& keys = {}) const {
    auto o = active->options;
    o.timing.heartbeat = test_heartbeat;
    if (test_command_timeout.count() > 0) o.timing.command_timeout = test_command_timeout;
    o.keys = keys;
    return o;
  }

  asio::awaitable<std::unique_ptr<tunnel::consumer_session>> open_session(
      const tunnel::keyring& keys = {}) {
    co_return co_await open_session_with(options(keys));
  }

  asio::awaitable<std::unique_ptr<tunnel::consumer_session>> open_session_with(
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

  std::unique_ptr<tunnel::forwarder_backend> forwarder(const tunnel::keyring& keys = {}) {
    return tunnel::make_forwarder_backend(io.get_executor(), options(keys));
  }

  using outcome_slot = std::shared_ptr<std::optional<tunnel::forward_outcome>>;

  /// Forwards `req` in the background; the outcome lands in the slot returned.
  outcome_slot forward_in_background(tunnel::forwarder_backend& f, tunnel::request req,
                                     steady::time_point give_up_at) {
    auto out = std::make_shared<std::optional<tunnel::forward_outcome>>();
    asio::co_spawn(
        io,
        [&f, req = std::move(req), give_up_at, out]() -> asio::awaitable<void> {
          *out = co_await f.forward(req, give_up_at);
        },
        asio::detached);
    return out;
  }

  /// Forwards fresh requests until one is answered (a consumer that just joined, or a broker
  /// that is back, takes a moment to be seen); false after `limit`.
  asio::awaitable<bool> forwarded_within(tunnel::forwarder_backend& f, milliseconds limit) {
    const auto start = steady::now();
    while (steady::now() - start < limit) {
      auto out = co_await f.forward(make_request("{}"), steady::now() + 10s);
      if (out.outcome == kind::answered) co_return true;
      co_await sleep_for(100ms);
    }
    co_return false;
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

// Rules 1 and 2: a forwarder that saw nobody forwards to a session once it joined, and runs
// invocations in the cloud again, without waiting, once it left.
TEST_P(BackendContract, PresenceFollowsSessionsThatComeAndGo) {
  run([&]() -> asio::awaitable<void> {
    auto f = forwarder();
    auto out = co_await f->forward(make_request("{}"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::not_taken) << out.message;

    auto session = co_await open_session();
    auto log = start_serving(*session, answer_mode::echo);
    const auto joined = steady::now();
    EXPECT_TRUE(co_await forwarded_within(*f, 15s)) << "a warm forwarder never saw the session";
    std::printf("[ figures  ] %s: a warm forwarder forwarded %.0f ms after a session joined\n",
                name().c_str(), ms_since(joined));

    co_await session->close();
    // At most one invocation meets what the forwarder knew before the leave.
    int waited = 0;
    for (int i = 0; i < 15; ++i) {
      const auto start = steady::now();
      auto o = co_await f->forward(make_request("{}"), steady::now() + 10s);
      EXPECT_EQ(o.outcome, kind::not_taken) << o.error_type << ": " << o.message;
      if (ms_since(start) > 500.0) ++waited;
      co_await sleep_for(100ms);
    }
    EXPECT_LE(waited, 1) << "invocations kept waiting for a session that left";
  });
}

// Rule 2: connected means forwarded; a success byte for byte with its content type, an error
// with its type.
TEST_P(BackendContract, ConnectedMeansAnsweredLocallyByteForByteAndErrorsKeepTheirType) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session();
    auto log = start_serving(*session, answer_mode::echo);
    auto f = forwarder();
    const std::string payload = "{\"text\":\"z\xc3\xbcrich \\\"q\\\"\",\"n\":[1,2.50,-0e3]}  ";
    const auto req = make_request(payload);
    auto out = co_await f->forward(req, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message << out.reason;
    EXPECT_EQ(out.answer.result, tunnel::response::outcome::success);
    EXPECT_EQ(out.answer.body, payload);
    EXPECT_EQ(out.answer.content_type, "application/json");
    EXPECT_EQ(out.answer.consumer, session->id());
    EXPECT_EQ(log->handled, std::vector<std::string>{req.id}) << "run once, by the session";
    co_await session->close();

    auto failing = co_await open_session();
    auto failing_log = start_serving(*failing, answer_mode::fail);
    auto f2 = forwarder();
    out = co_await f2->forward(make_request("{}"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message << out.reason;
    EXPECT_EQ(out.answer.result, tunnel::response::outcome::error);
    EXPECT_EQ(out.answer.error_type, "OrderError");
    EXPECT_NE(out.answer.body.find("no such order"), std::string::npos) << out.answer.body;
    co_await failing->close();
  });
}

// Rule 2 at every size up to Lambda's limit: events and answers of 0 bytes to 6 MiB (past each
// backend's own thresholds: a Redis item stored apart, several SQS messages) cross whole, byte
// for byte, through one session.
TEST_P(BackendContract, EventsAndAnswersUpToSixMegabytesCrossByteForByte) {
  // The default bound: on two busy cores, sending 6 MiB as SQS messages can take the
  // consumer longer than the suite's short bound. And 3 s per broker call: one 256 KiB
  // SendMessage to fauxqs took the forwarder more than the default 1 s beside an ASan build.
  // What this tests is the bytes, not the bounds.
  test_heartbeat = 3000ms;
  test_command_timeout = 3000ms;
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session();
    auto log = start_serving(*session, answer_mode::echo);
    auto f = forwarder();
    const std::vector<std::size_t> sizes{0, 1, 64 * 1024 + 1, 256 * 1024 + 1, 6 * 1024 * 1024};
    for (const std::size_t size : sizes) {
      const auto req = make_request(binary(size, static_cast<unsigned>(size)));
      const auto start = steady::now();
      auto out = co_await f->forward(req, steady::now() + 20s);
      const double took = ms_since(start);
      EXPECT_EQ(out.outcome, kind::answered)
          << size << " bytes: " << out.error_type << ": " << out.message << out.reason;
      EXPECT_TRUE(out.answer.body == req.payload)
          << size << " bytes: the answer differs (" << out.answer.body.size() << " bytes)";
      if (size == sizes.back()) {
        std::printf("[ figures  ] %s: 6 MiB both ways in %.0f ms\n", name().c_str(), took);
      }
    }
    EXPECT_EQ(log->handled.size(), sizes.size());
    co_await session->close();
  });
}

// Rule 5: two sessions share the invocations; each one answered ran exactly once, on one of
// them, and none the cloud ran (not taken) ran locally.
TEST_P(BackendContract, TwoSessionsRunEachInvocationExactlyOnce) {
  run([&]() -> asio::awaitable<void> {
    auto a = co_await open_session();
    auto b = co_await open_session();
    auto log_a = start_serving(*a, answer_mode::echo);
    auto log_b = start_serving(*b, answer_mode::echo);
    auto f = forwarder();
    constexpr int total = 40;
    int done = 0;
    std::map<std::string, kind> outcome_of;
    std::vector<std::string> not_answered;  // why each one that was not answered was not
    for (int i = 0; i < total; ++i) {
      asio::co_spawn(
          io,
          [&, i]() -> asio::awaitable<void> {
            const auto req = make_request("event " + std::to_string(i));
            auto out = co_await f->forward(req, steady::now() + 20s);
            if (out.outcome == kind::answered) {
              EXPECT_EQ(out.answer.body, req.payload);
            } else {
              not_answered.push_back(out.error_type + ": " + out.message + out.reason);
            }
            outcome_of[req.id] = out.outcome;
            ++done;
          },
          asio::detached);
    }
    while (done < total) co_await sleep_for(10ms);
    co_await sleep_for(200ms);  // what ran late would show by now
    std::map<std::string, int> runs;
    for (const auto& id : log_a->handled) ++runs[id];
    for (const auto& id : log_b->handled) ++runs[id];
    int answered = 0;
    for (const auto& [id, outcome] : outcome_of) {
      const int n = runs.contains(id) ? runs[id] : 0;
      if (outcome == kind::answered) {
        ++answered;
        EXPECT_EQ(n, 1) << id << " answered, ran " << n << " times";
      } else {
        EXPECT_EQ(n, 0) << id << " was not answered but ran locally";
      }
    }
    for (const auto& [id, n] : runs) EXPECT_TRUE(outcome_of.contains(id)) << id;
    EXPECT_EQ(answered, total) << "with two sessions serving, every invocation is forwarded; "
                               << "the first not answered: "
                               << (not_answered.empty() ? "" : not_answered.front());
    std::printf("[ figures  ] %s: %d invocations split %zu / %zu between two sessions\n",
                name().c_str(), total, log_a->handled.size(), log_b->handled.size());
    co_await a->close();
    co_await b->close();
  });
}

// Rules 5 and 9: with a shared secret, a request forwarded again with the same id (a retry
// from another instance, or the broker's owner replaying what it saw) never runs a second time,
// and one sealed long ago (kept and replayed) never runs at all. The consumer is funcie
// connect's own (it keeps the replay guard).
TEST_P(BackendContract, ARetriedOrReplayedRequestNeverRunsTwiceAndAStaleOneNever) {
  run([&]() -> asio::awaitable<void> {
    consumer::consumer_options copts;
    copts.backend = options(our_keys());
    bool serving = false;
    copts.on_session = [&](const std::string&, bool) { serving = true; };
    std::map<std::string, int> runs;
    consumer::consumer local(io.get_executor(), copts,
                             [&](const tunnel::request& r) -> asio::awaitable<runtime_api::result> {
                               ++runs[r.id];
                               runtime_api::result result;
                               result.body = r.payload;
                               co_return result;
                             });
    asio::co_spawn(io, local.run(), asio::detached);
    while (!serving) co_await sleep_for(10ms);

    auto f = forwarder(our_keys());
    const auto req = make_request("pay 100 EUR once");
    auto out = co_await f->forward(req, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message << out.reason;
    EXPECT_EQ(runs[req.id], 1);

    auto again = forwarder(our_keys());
    auto retried = co_await again->forward(req, steady::now() + 1500ms);
    EXPECT_FALSE(retried.outcome == kind::answered &&
                 retried.answer.result == tunnel::response::outcome::success)
        << "the retry was answered as if run";
    EXPECT_EQ(runs[req.id], 1) << "a request forwarded again ran again";

    auto old = make_request("an old event");
    old.sent_ms -= 30 * 60 * 1000;
    auto stale = co_await f->forward(old, steady::now() + 1500ms);
    EXPECT_FALSE(stale.outcome == kind::answered &&
                 stale.answer.result == tunnel::response::outcome::success)
        << "a request sealed 30 minutes ago was answered as if run";
    EXPECT_EQ(runs[old.id], 0) << "a stale request ran";
    co_await local.stop();
  });
}

// Rule 9: with the shared secret on both sides invocations are forwarded; a side with another
// secret takes nothing (the function runs its own handler) and its handler sees nothing.
TEST_P(BackendContract, ASharedSecretForwardsAndADifferentOneMeansTheCloud) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session(our_keys());
    auto log = start_serving(*session, answer_mode::echo);
    auto f = forwarder(our_keys());
    const auto req = make_request(R"({"card":"4111 1111 1111 1111"})");
    auto out = co_await f->forward(req, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message << out.reason;
    EXPECT_EQ(out.answer.body, req.payload);
    co_await session->close();

    auto stranger = co_await open_session(their_keys());
    auto stranger_log = start_serving(*stranger, answer_mode::echo);
    auto f2 = forwarder(our_keys());
    out = co_await f2->forward(make_request("{}"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::not_taken) << out.error_type << ": " << out.message;
    EXPECT_TRUE(stranger_log->handled.empty()) << "a session with another secret ran a request";
    co_await stranger->close();
  });
}

// Rule 9: with a shared secret, what the broker is sent never shows the event, the answer or
// the Lambda request id (nor, on SQS, funcie's own request id); without one it does (which
// shows that the recording sees the traffic).
TEST_P(BackendContract, TheBrokerSeesOnlySealedBytes) {
  run([&]() -> asio::awaitable<void> {
    {
      const auto recorded = broker->record();
      auto plain = co_await open_session();
      auto plain_log = start_serving(*plain, answer_mode::echo);
      auto f = forwarder();
      const auto open_req = make_request(R"({"note":"plaintextmarker0123456789"})");
      auto out = co_await f->forward(open_req, steady::now() + 10s);
      EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message << out.reason;
      co_await plain->close();
      recorded->settle();
      EXPECT_TRUE(readable(recorded->text(), "plaintextmarker0123456789"))
          << "the recording did not see an unsealed event";
    }

    // Sealed, on an app (and queues) of its own: nothing of the unsealed part is left around.
    auto sealed_scope = broker->new_scope(heartbeat);
    active = sealed_scope.get();
    const auto recorded = broker->record();
    auto sealed = co_await open_session(our_keys());
    auto sealed_log = start_serving(*sealed, answer_mode::echo);
    auto f = forwarder(our_keys());
    const auto req = make_request(R"({"card":"4111222233334444","cvc":"secretcvc987"})");
    auto out = co_await f->forward(req, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message << out.reason;
    EXPECT_EQ(out.answer.body, req.payload);
    co_await sealed->close();
    recorded->settle();
    const std::string seen = recorded->text();
    EXPECT_FALSE(readable(seen, "4111222233334444")) << "the event is readable on the broker";
    EXPECT_FALSE(readable(seen, "secretcvc987")) << "the event is readable on the broker";
    EXPECT_FALSE(readable(seen, req.context.request_id)) << "the Lambda request id is readable";
    if (GetParam() == backend_kind::fauxqs || GetParam() == backend_kind::local_sqs) {
      // On Redis the id names keys (docs/security.md: metadata is not hidden).
      EXPECT_FALSE(readable(seen, req.id)) << "funcie's request id is readable on the queue";
    }
    active = scope.get();
  });
}

// Rule 9: requests put on the broker without the secret (in the clear, or sealed with another
// key) or tampered with never reach the handler, and the real one still does.
TEST_P(BackendContract, ForgedAndTamperedRequestsNeverReachTheHandler) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session(our_keys());
    auto log = start_serving(*session, answer_mode::echo);
    for (const auto how : forgeries) {
      co_await broker->forge_request(*active, session->id(), make_request("a forged event"), how,
                                     our_keys(), their_keys());
    }
    auto f = forwarder(our_keys());
    const auto real = make_request("the real event");
    auto out = co_await f->forward(real, steady::now() + 15s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message << out.reason;
    EXPECT_EQ(out.answer.body, "the real event");
    co_await sleep_for(500ms);  // a forged one taken after the real one would show by now
    EXPECT_EQ(log->handled, std::vector<std::string>{real.id});
    co_await session->close();
  });
}

// Rule 9: responses to a waiting forwarder put on the broker without the secret, tampered with,
// or sent by a session other than the one that took the request are dropped, and the real
// answer still arrives.
TEST_P(BackendContract, ForgedAndTamperedResponsesAreDroppedAndTheRealOneArrives) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session(our_keys());
    auto f = forwarder(our_keys());
    const auto req = make_request("the real event");
    auto outcome = forward_in_background(*f, req, steady::now() + 15s);
    auto claimed = co_await session->next();
    EXPECT_EQ(claimed, req) << "the request arrived changed";

    tunnel::response forged;
    forged.id = req.id;
    forged.app = active->options.app;
    forged.consumer = session->id();
    forged.body = "forged answer";
    for (const auto how : forgeries) {
      co_await broker->forge_response(*active, session->id(), forged, how, our_keys(),
                                      their_keys());
    }
    // Another session with the secret, which did not take the request, answers it.
    auto impostor = co_await open_session(our_keys());
    auto impostors = forged;
    impostors.consumer = impostor->id();
    co_await impostor->respond(impostors);
    co_await sleep_for(500ms);  // the forwarder has read them by now
    EXPECT_FALSE(outcome->has_value())
        << "a forged response was taken: " << (*outcome)->answer.body;

    tunnel::response real = forged;
    real.body = "the real answer";
    co_await session->respond(real);
    while (!*outcome) co_await sleep_for(10ms);
    EXPECT_EQ((*outcome)->outcome, kind::answered) << (*outcome)->message;
    EXPECT_EQ((*outcome)->answer.body, "the real answer");
    co_await impostor->close();
    co_await session->close();
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
    auto held = forward_in_background(*f, old, steady::now() + 20s);
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
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message << out.reason;
    co_await sleep_for(300ms);
    EXPECT_EQ(second_log->handled, std::vector<std::string>{fresh.id})
        << "the new session ran only the request made after it opened";
    EXPECT_EQ(first_log->handled, std::vector<std::string>{old.id});
    co_await second->close();
  });
}

// Rule 3: funcie connect's clean leave (Ctrl-C) answers what it holds with Funcie.ConsumerLeft
// at once, not after the heartbeat bound.
TEST_P(BackendContract, ACleanLeaveAnswersWhatItHoldsAtOnceWithConsumerLeft) {
  run([&]() -> asio::awaitable<void> {
    consumer::consumer_options copts;
    copts.backend = options();
    bool serving = false;
    copts.on_session = [&](const std::string&, bool) { serving = true; };
    bool running = false;
    auto release = std::make_shared<asio::steady_timer>(io, steady::time_point::max());
    consumer::consumer local(
        io.get_executor(), copts,
        [&, release](const tunnel::request& r) -> asio::awaitable<runtime_api::result> {
          running = true;
          boost::system::error_code ignored;
          co_await release->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
          runtime_api::result result;
          result.body = r.payload;
          co_return result;
        });
    asio::co_spawn(io, local.run(), asio::detached);
    while (!serving) co_await sleep_for(10ms);
    auto f = forwarder();
    auto held = forward_in_background(*f, make_request("held"), steady::now() + 20s);
    while (!running) co_await sleep_for(5ms);
    const auto leaving = steady::now();
    co_await local.stop();
    while (!*held) co_await sleep_for(5ms);
    const double took = ms_since(leaving);
    const auto& out = **held;
    const std::string type = out.outcome == kind::answered ? out.answer.error_type : out.error_type;
    EXPECT_EQ(type, "Funcie.ConsumerLeft") << out.message << out.answer.body;
    EXPECT_LT(took, static_cast<double>(heartbeat.count()));  // at once, not at the bound
    std::printf("[ figures  ] %s: a clean leave answered what it held in %.0f ms\n", name().c_str(),
                took);
    release->cancel();
  });
}

// Rule 3: a consumer that vanishes without a word (killed) has what it held failed within the
// heartbeat bound (Funcie.ConsumerLost), not at the function's deadline.
TEST_P(BackendContract, ACrashedConsumersRequestFailsWithinTheHeartbeatBound) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session();
    auto log = start_serving(*session, answer_mode::hold);
    auto f = forwarder();
    auto held = forward_in_background(*f, make_request("held"), steady::now() + 25s);
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
        name().c_str(), took, static_cast<long long>(heartbeat.count()));
  });
}

// Rule 8 (what --hold needs from a backend): a request a live session holds for longer than
// the heartbeat bound (a handler stopped at a breakpoint, or run again after a fix) is neither
// failed nor run elsewhere; its late answer arrives.
TEST_P(BackendContract, ARequestHeldPastTheHeartbeatBoundIsStillAnswered) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session();
    auto log = start_serving(*session, answer_mode::late);
    auto f = forwarder();
    const auto req = make_request("held for a while");
    const auto start = steady::now();
    auto out = co_await f->forward(req, steady::now() + 20s);
    EXPECT_EQ(out.outcome, kind::answered) << out.error_type << ": " << out.message << out.reason;
    EXPECT_EQ(out.answer.body, req.payload);
    EXPECT_GE(ms_since(start), static_cast<double>(late_by.count()));
    EXPECT_EQ(log->handled, std::vector<std::string>{req.id});
    co_await session->close();
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
    EXPECT_NE(out.message.find("did not answer in time"), std::string::npos) << out.message;
    EXPECT_GE(took, 1500.0);
    EXPECT_LT(took, 2500.0);
    EXPECT_EQ(log->handled.size(), 1u);
    co_await session->close();
  });
}

// Rule 6: a broker that stops answering (blackholed, or too slow) means the function's own
// handler runs: the first invocation pays a bounded cost, the next ones nothing while the
// forwarder backs off; once the broker answers again, invocations are forwarded again.
TEST_P(BackendContract, BrokerTroubleMeansTheCloudAtABoundedCostAndForwardingResumes) {
  if (!broker->can_freeze()) {
    GTEST_SKIP() << "a frozen Redis Cluster fails over: tests/redis/redis_cluster_redistest.cpp";
  }
  run(
      [&]() -> asio::awaitable<void> {
        auto c = std::make_shared<reconnecting_consumer>();
        asio::co_spawn(io, keep_serving(io.get_executor(), options(), c), asio::detached);
        while (c->log->sessions == 0) co_await sleep_for(10ms);
        auto f = forwarder();
        EXPECT_TRUE(co_await forwarded_within(*f, 15s));

        broker->freeze();
        auto start = steady::now();
        auto first = co_await f->forward(make_request("frozen"), steady::now() + 20s);
        const double first_cost = ms_since(start);
        EXPECT_EQ(first.outcome, kind::not_taken) << first.error_type << ": " << first.message;
        // Redis: the command timeout (1 s); SQS: that and the claim window (2 s).
        EXPECT_LT(first_cost, 6000.0);
        double worst = 0;
        for (int i = 0; i < 3; ++i) {
          start = steady::now();
          auto out = co_await f->forward(make_request("frozen"), steady::now() + 20s);
          worst = std::max(worst, ms_since(start));
          EXPECT_EQ(out.outcome, kind::not_taken) << out.error_type << ": " << out.message;
        }
        // Paying for the broker again would cost its command timeout (1 s) or more; the room
        // below that is for a busy CI machine under ASan.
        EXPECT_LT(worst, 600.0) << "invocations paid for the broker again while backing off";
        std::printf(
            "[ figures  ] %s: frozen broker: first invocation %.0f ms, then at most %.1f ms\n",
            name().c_str(), first_cost, worst);
        broker->thaw();

        const auto thawed = steady::now();
        EXPECT_TRUE(co_await forwarded_within(*f, 30s)) << "forwarding never resumed";
        std::printf("[ figures  ] %s: forwarded again %.0f ms after the broker came back\n",
                    name().c_str(), ms_since(thawed));
        c->stop = true;
        if (c->current) co_await c->current->close();
        while (!c->stopped) co_await sleep_for(10ms);
      },
      90s);
}

// Rule 11: a session with a route gets only the invocations its route holds for, a session
// without one takes the rest; once that one left, what no routed session wants runs in the
// cloud.
TEST_P(BackendContract, EachSessionGetsOnlyWhatItsRouteHoldsFor) {
  run([&]() -> asio::awaitable<void> {
    auto routed = options();
    routed.routes.emplace_back("/headers/x-dev=ada");
    auto ada = co_await open_session_with(routed);
    auto ada_log = start_serving(*ada, answer_mode::echo);
    auto rest = co_await open_session();
    auto rest_log = start_serving(*rest, answer_mode::echo);
    auto f = forwarder();
    const auto event_from = [&](const std::string& dev) {
      return make_request(dev.empty() ? std::string(R"({"headers":{"accept":"*/*"}})")
                                      : R"({"headers":{"x-dev":")" + dev + R"("}})");
    };
    std::set<std::string> for_ada;
    std::set<std::string> for_others;
    for (int i = 0; i < 24; ++i) {
      const std::string dev = i % 3 == 0 ? "ada" : i % 3 == 1 ? "bob" : "";
      const auto req = event_from(dev);
      (dev == "ada" ? for_ada : for_others).insert(req.id);
      auto out = co_await f->forward(req, steady::now() + 10s);
      EXPECT_EQ(out.outcome, kind::answered) << dev << ": " << out.message << out.reason;
      EXPECT_EQ(out.answer.consumer, dev == "ada" ? ada->id() : rest->id()) << dev;
    }
    EXPECT_EQ(std::set<std::string>(ada_log->handled.begin(), ada_log->handled.end()), for_ada);
    EXPECT_EQ(std::set<std::string>(rest_log->handled.begin(), rest_log->handled.end()),
              for_others);

    co_await rest->close();
    bool cloud = false;
    const auto left = steady::now();
    while (!cloud && steady::now() - left < 15s) {
      auto out = co_await f->forward(event_from("bob"), steady::now() + 10s);
      EXPECT_NE(out.outcome, kind::answered) << "ada's session ran bob's invocation";
      cloud = out.outcome == kind::not_taken;
      if (!cloud) co_await sleep_for(100ms);
    }
    EXPECT_TRUE(cloud) << "what nobody wants never ran in the cloud";
    auto mine = co_await f->forward(event_from("ada"), steady::now() + 10s);
    EXPECT_EQ(mine.outcome, kind::answered) << mine.message << mine.reason;
    co_await ada->close();
  });
}

// `funcie status`: a session is listed with its id, process and requests in flight until it
// leaves.
TEST_P(BackendContract, StatusListsASessionUntilItLeaves) {
  run([&]() -> asio::awaitable<void> {
    auto session = co_await open_session();
    session->set_in_flight(3);
    // A heartbeat after set_in_flight, on every backend.
    co_await sleep_for(heartbeat / 2);
    const auto asked = steady::now();
    auto listed = co_await tunnel::list_consumers(io.get_executor(), options());
    const double asking = ms_since(asked);
    EXPECT_EQ(listed.size(), 1u);
    if (listed.size() == 1) {
      EXPECT_EQ(listed[0].session, session->id());
      EXPECT_EQ(listed[0].pid, static_cast<std::int64_t>(::getpid()));
      EXPECT_FALSE(listed[0].host.empty());
      EXPECT_EQ(listed[0].in_flight, 3);
      EXPECT_GT(listed[0].since_ms, 0);
      EXPECT_GE(listed[0].heartbeat_age_ms, 0);
      // Its last sign of life came within a heartbeat of the question (SQS: the answer to
      // it, aged while the question waited for other sessions).
      EXPECT_LT(static_cast<double>(listed[0].heartbeat_age_ms),
                asking + static_cast<double>(heartbeat.count()));
    }
    co_await session->close();
    listed = co_await tunnel::list_consumers(io.get_executor(), options());
    EXPECT_TRUE(listed.empty()) << listed.size() << " listed after the leave";
  });
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendContract,
                         ::testing::Values(backend_kind::redis, backend_kind::redis_cluster,
                                           backend_kind::fauxqs, backend_kind::local_sqs),
                         kind_name);

}  // namespace
}  // namespace funcie
