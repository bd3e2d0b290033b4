// Routes on the Redis backend against a real redis-server (docs/routing.md): each developer's
// session gets only the invocations its route holds for, a session without a route takes
// the rest, nobody wanted means the cloud, and a route rewritten on the broker is refused.
#include "../support/async.hpp"
#include "../support/redis_session.hpp"
#include "../support/request.hpp"
#include "backend/redis/keys.hpp"
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
#include <chrono>
#include <map>
#include <memory>
#include <optional>

namespace funcie {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using kind = tunnel::forward_outcome::kind;
using funcie::test::sleep_for;

constexpr std::string_view app = "routes-app";

double ms_since(steady::time_point start) {
  return std::chrono::duration<double, std::milli>(steady::now() - start).count();
}

/// An API Gateway (HTTP API) event from developer `dev` ("" for no x-dev header).
tunnel::request event_from(std::string_view dev) {
  return test::fresh_request(app, dev.empty()
                                      ? std::string(R"({"headers":{"accept":"*/*"}})")
                                      : R"({"headers":{"x-dev":")" + std::string(dev) + R"("}})");
}

const std::vector<std::string>& developers() {
  static const std::vector<std::string> all{"ada", "bob", "carol", ""};
  return all;
}

const std::vector<std::string>& unrouted() {
  static const std::vector<std::string> all{"carol", ""};
  return all;
}

/// Every payload names developer `wanted` (when given) and not `unwanted` (when given).
void check_only(const std::vector<std::string>& payloads, const std::string& wanted,
                const std::string& unwanted) {
  for (const auto& p : payloads) {
    if (!wanted.empty()) {
      EXPECT_NE(p.find('"' + wanted + '"'), std::string::npos) << p;
    }
    if (!unwanted.empty()) {
      EXPECT_EQ(p.find('"' + unwanted + '"'), std::string::npos) << p;
    }
  }
}

/// Routes as the options take them (no braced lists of literals in coroutines: GCC 12
/// rejects them there).
std::vector<std::string> routes(const char* first = nullptr, const char* second = nullptr) {
  std::vector<std::string> out;
  if (first != nullptr) out.emplace_back(first);
  if (second != nullptr) out.emplace_back(second);
  return out;
}

/// What one session ran: the payloads, in order.
struct ran {
  std::vector<std::string> payloads;
  bool waiting = false;  ///< suspended in next(): the session may be destroyed (killed) now
};

/// Answers every request with its own payload; remembers what it ran.
asio::awaitable<void> serve(tunnel::consumer_session* session, std::shared_ptr<ran> log) {
  while (true) {
    tunnel::request req;
    try {
      log->waiting = true;
      req = co_await session->next();
      log->waiting = false;
    } catch (const tunnel::backend_error&) {
      co_return;
    }
    log->payloads.push_back(req.payload);
    tunnel::response answer;
    answer.id = req.id;
    answer.app = req.app;
    answer.consumer = session->id();
    answer.body = req.payload;
    co_await session->respond(answer);
  }
}

tunnel::keyring our_keys() {
  return tunnel::keyring::from_secrets("routes-test-secret-0123456789abcdef");
}

class RedisRoutes : public ::testing::Test {
 protected:
  asio::io_context io;
  test::redis_server server;

  tunnel::backend_options options(std::vector<std::string> wanted = {},
                                  milliseconds heartbeat = 600ms) const {
    tunnel::backend_options o;
    o.url = server.url();
    o.app = std::string(app);
    o.timing.heartbeat = heartbeat;
    o.routes = std::move(wanted);
    return o;
  }

  template <class Body>
  void run(Body&& body) {
    test::run_on(io, std::forward<Body>(body), 60s);
  }

  struct serving {
    std::unique_ptr<tunnel::consumer_session> session;
    std::shared_ptr<ran> log = std::make_shared<ran>();
  };

  asio::awaitable<serving> open_serving(const tunnel::backend_options& o) {
    serving s;
    s.session = tunnel::make_consumer_session(io.get_executor(), o);
    co_await s.session->open();
    asio::co_spawn(io, serve(s.session.get(), s.log), asio::detached);
    co_return s;
  }

  asio::awaitable<std::shared_ptr<redis::connection>> raw_connection() {
    return test::raw_redis_connection(io.get_executor(), server.url());
  }
};

TEST_F(RedisRoutes, EachDeveloperGetsOnlyTheirOwnAndTheSessionWithoutARouteTakesTheRest) {
  run([&]() -> asio::awaitable<void> {
    auto ada = co_await open_serving(options(routes("/headers/x-dev=ada")));
    auto bob = co_await open_serving(options(routes("/headers/x-dev=bob")));
    auto rest = co_await open_serving(options());
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options());
    const std::vector<std::string>& devs = developers();
    std::map<std::string, int> sent;
    for (int i = 0; i < 200; ++i) {
      const std::string& dev = devs[static_cast<std::size_t>(i * 7 + i / 3) % devs.size()];
      const auto req = event_from(dev);
      auto out = co_await forwarder->forward(req, steady::now() + 10s);
      EXPECT_EQ(out.outcome, kind::answered) << dev << ": " << out.reason << out.message;
      EXPECT_EQ(out.answer.body, req.payload);
      ++sent[dev];
    }
    check_only(ada.log->payloads, "ada", "");
    check_only(bob.log->payloads, "bob", "");
    check_only(rest.log->payloads, "", "ada");
    check_only(rest.log->payloads, "", "bob");
    EXPECT_EQ(static_cast<int>(ada.log->payloads.size()), sent["ada"]);
    EXPECT_EQ(static_cast<int>(bob.log->payloads.size()), sent["bob"]);
    EXPECT_EQ(static_cast<int>(rest.log->payloads.size()), sent["carol"] + sent[""]);
    co_await ada.session->close();
    co_await bob.session->close();
    co_await rest.session->close();
  });
}

TEST_F(RedisRoutes, WhatNoRoutedSessionWantsRunsInTheCloudAtOnce) {
  run([&]() -> asio::awaitable<void> {
    auto ada = co_await open_serving(options(routes("/headers/x-dev=ada")));
    auto bob =
        co_await open_serving(options(routes("/headers/x-dev=bob", "context:/custom/dev=bob")));
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options());
    for (const std::string& dev : unrouted()) {
      const auto start = steady::now();
      auto out = co_await forwarder->forward(event_from(dev), steady::now() + 10s);
      EXPECT_EQ(out.outcome, kind::not_taken) << dev;
      EXPECT_EQ(out.reason, "no connected session's route holds for it");
      // No wait for a claim that never comes: at most a couple of Redis round trips.
      EXPECT_LT(ms_since(start), 500.0);
    }
    // Bob's second route: the client context (what callers set with ClientContext).
    auto by_context = event_from("");
    by_context.context.client_context = R"({"custom":{"dev":"bob"}})";
    auto out = co_await forwarder->forward(by_context, steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
    EXPECT_EQ(out.answer.consumer, bob.session->id());
    EXPECT_TRUE(ada.log->payloads.empty());
    EXPECT_EQ(bob.log->payloads.size(), 1u);
    co_await ada.session->close();
    co_await bob.session->close();
  });
}

TEST_F(RedisRoutes, ASessionThatLeftAfterThePresenceViewWasReadIsSkippedAndAnotherPicked) {
  run([&]() -> asio::awaitable<void> {
    // A long heartbeat: the forwarder trusts its view for 1 s.
    auto first = co_await open_serving(options(routes(), 6000ms));
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options(routes(), 6000ms));
    auto out = co_await forwarder->forward(event_from(""), steady::now() + 10s);
    EXPECT_EQ(out.answer.consumer, first.session->id());
    co_await first.session->close();
    auto second = co_await open_serving(options(routes(), 6000ms));
    const auto start = steady::now();
    out = co_await forwarder->forward(event_from(""), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
    EXPECT_EQ(out.answer.consumer, second.session->id());
    EXPECT_LT(ms_since(start), 500.0);
    co_await second.session->close();
  });
}

TEST_F(RedisRoutes, ASessionKilledBeforeItTookTheRequestIsSkippedAtOnce) {
  run([&]() -> asio::awaitable<void> {
    // A long heartbeat: the killed session stays present (its key lives 5 s) and the
    // forwarder's view, read just before the kill, is trusted for 1 s.
    auto killed = co_await open_serving(options(routes(), 6000ms));
    auto alive = co_await open_serving(options(routes(), 6000ms));
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options(routes(), 6000ms));
    auto out = co_await forwarder->forward(event_from(""), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered);
    // Killed once its serve loop is back in next(): between respond() and the next call of
    // next() it would call a destroyed session.
    while (!killed.log->waiting) co_await sleep_for(1ms);
    killed.session.reset();  // connections closed, no goodbye: like a kill -9
    co_await sleep_for(20ms);
    for (int i = 0; i < 20; ++i) {
      const auto start = steady::now();
      out = co_await forwarder->forward(event_from(""), steady::now() + 10s);
      EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
      EXPECT_EQ(out.answer.consumer, alive.session->id());
      EXPECT_LT(ms_since(start), 500.0) << "it waited for the killed session";
    }
    co_await alive.session->close();
  });
}

TEST_F(RedisRoutes, TheForwarderDoesNotTrustItsViewPastItsBoundOnTheBootClock) {
  run([&]() -> asio::awaitable<void> {
    auto rest = co_await open_serving(options(routes(), 6000ms));
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), options(routes(), 6000ms));
    auto out = co_await forwarder->forward(event_from("ada"), steady::now() + 10s);
    EXPECT_EQ(out.answer.consumer, rest.session->id());
    // Ada connects; within the view's bound (heartbeat/6 = 1 s) her invocation may still go
    // to the session without a route, after it never does.
    auto ada = co_await open_serving(options(routes("/headers/x-dev=ada"), 6000ms));
    const auto joined = util::boot_ms_now();
    co_await sleep_for(1100ms);
    out = co_await forwarder->forward(event_from("ada"), steady::now() + 10s);
    EXPECT_GE(util::boot_ms_now() - joined, 1000);
    EXPECT_EQ(out.answer.consumer, ada.session->id());
    co_await ada.session->close();
    co_await rest.session->close();
  });
}

TEST_F(RedisRoutes, ARouteRewrittenOnTheBrokerWithoutTheSecretIsRefused) {
  run([&]() -> asio::awaitable<void> {
    auto sealed = [&](std::vector<std::string> wanted) {
      auto o = options(std::move(wanted), 6000ms);
      o.keys = our_keys();
      return o;
    };
    auto ada = co_await open_serving(sealed(routes("/headers/x-dev=ada")));
    auto raw = co_await raw_connection();
    const redis_backend::app_keys keys(app);
    const std::string ada_key = keys.consumer(ada.session->id());
    // The session's info on the broker is sealed: no route in the clear.
    std::vector<std::string_view> get{"GET", ada_key};
    const auto stored = co_await raw->execute_checked(get);
    EXPECT_TRUE(tunnel::keyring::looks_sealed(stored.str));
    EXPECT_EQ(stored.str.find("x-dev"), std::string::npos);

    // The broker's owner rewrites Ada's route to take Mallory's invocations.
    tunnel::consumer_card forged;
    forged.host = "ada-laptop";
    forged.pid = 1;
    forged.ttl_ms = 5000;
    forged.session = ada.session->id();
    forged.routes = routes("/headers/x-dev=mallory");
    const std::string forged_text = tunnel::encode_consumer_card(forged);
    std::vector<std::string_view> set{"SET", ada_key, forged_text, "PX", "5000"};
    co_await raw->execute_checked(set);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), sealed(routes()));
    auto out = co_await forwarder->forward(event_from("mallory"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::not_taken) << out.reason << out.message;
    EXPECT_TRUE(ada.log->payloads.empty());

    // A request pushed onto Ada's inbox on the broker that her route does not want: she
    // refuses it rather than run it.
    co_await sleep_for(1100ms);  // her next heartbeat restored her info
    const auto diverted = event_from("mallory");
    const std::string envelope = our_keys().seal(tunnel::encode(diverted));
    const std::string inbox_key = keys.inbox(ada.session->id());
    const std::string item = diverted.id + "\n" + envelope;
    std::vector<std::string_view> push{"RPUSH", inbox_key, item};
    co_await raw->execute_checked(push);
    co_await sleep_for(300ms);
    EXPECT_TRUE(ada.log->payloads.empty());
    const std::string resp_key = keys.resp(diverted.id);
    std::vector<std::string_view> range{"LRANGE", resp_key, "0", "-1"};
    const auto refusals = co_await raw->execute_checked(range);
    EXPECT_EQ(refusals.elements.size(), 1u);
    if (refusals.elements.size() == 1u) {
      const auto refusal = tunnel::decode_response(our_keys().open(refusals.elements[0].str));
      EXPECT_EQ(refusal.error_type, "Funcie.BadRequest");
      EXPECT_NE(refusal.body.find("routes"), std::string::npos) << refusal.body;
    }

    // And her own invocations still reach her.
    out = co_await forwarder->forward(event_from("ada"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
    EXPECT_EQ(ada.log->payloads.size(), 1u);
    raw->close();
    co_await ada.session->close();
  });
}

TEST_F(RedisRoutes, StatusShowsEachSessionsRoutes) {
  run([&]() -> asio::awaitable<void> {
    auto ada = co_await open_serving(options(routes("/headers/x-dev=ada", "sample=0.5")));
    auto rest = co_await open_serving(options());
    auto listed = co_await tunnel::list_consumers(io.get_executor(), options());
    EXPECT_EQ(listed.size(), 2u);
    for (const auto& c : listed) {
      if (c.session == ada.session->id()) {
        EXPECT_EQ(c.routes, routes("/headers/x-dev=ada", "sample=0.5"));
      } else {
        EXPECT_TRUE(c.routes.empty());
      }
    }
    co_await ada.session->close();
    co_await rest.session->close();
  });
}

}  // namespace
}  // namespace funcie
