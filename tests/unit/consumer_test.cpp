// The consumer's session loop against a fake tunnel::consumer_session: responses, many in
// flight, clean leave, lost sessions and backoff, runner failures.
#include "consumer/consumer.hpp"
#include "../support/async.hpp"
#include "tunnel/backend.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace funcie;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using clock_point = steady_clock::time_point;

constexpr const char* app = "orders";

std::string hex_id(unsigned n) {
  char buffer[33];
  std::snprintf(buffer, sizeof buffer, "%032x", n);
  return buffer;
}

using funcie::test::sleep_for;

/// What the test sees of one fake session.
struct session_record {
  std::string id;
  bool opened = false;
  bool closed = false;
  std::vector<tunnel::response> responses;
  std::int64_t in_flight = -1;
  std::int64_t max_in_flight = 0;
  bool fail_respond = false;
  milliseconds close_takes{0};  ///< close() waits this long (a leave script on its way).
  using incoming =
      asio::experimental::channel<void(boost::system::error_code, std::optional<tunnel::request>)>;
  std::shared_ptr<incoming> requests;

  /// Hands `req` to the session's next(); nullopt makes next() throw (session lost).
  void push(std::optional<tunnel::request> req) {
    requests->async_send(boost::system::error_code{}, std::move(req), asio::detached);
  }
};

/// All sessions the consumer made, in order, and how opening them goes.
struct fake_broker {
  asio::any_io_executor executor;
  int open_failures = 0;  ///< The next N open() calls throw backend_error.
  std::vector<clock_point> open_attempts;
  std::vector<std::shared_ptr<session_record>> sessions;  ///< Opened ones only.
  unsigned made = 0;
};

class fake_session : public tunnel::consumer_session {
 public:
  fake_session(std::shared_ptr<fake_broker> broker) : broker_(std::move(broker)) {
    record_ = std::make_shared<session_record>();
    record_->id = hex_id(++broker_->made);
    record_->requests = std::make_shared<session_record::incoming>(broker_->executor, 1000);
  }
  const std::string& id() const override { return record_->id; }
  asio::awaitable<void> open() override {
    broker_->open_attempts.push_back(steady_clock::now());
    if (broker_->open_failures > 0) {
      --broker_->open_failures;
      throw tunnel::backend_error("cannot connect to Redis at 127.0.0.1:1: connection refused");
    }
    record_->opened = true;
    broker_->sessions.push_back(record_);
    co_return;
  }
  asio::awaitable<tunnel::request> next() override {
    auto req = co_await record_->requests->async_receive(asio::use_awaitable);
    if (!req) throw tunnel::backend_error("the session's heartbeat lapsed");
    co_return std::move(*req);
  }
  asio::awaitable<void> respond(const tunnel::response& answer) override {
    if (record_->fail_respond) throw tunnel::backend_error("connection reset");
    record_->responses.push_back(answer);
    co_return;
  }
  void set_in_flight(std::int64_t count) override {
    record_->in_flight = count;
    record_->max_in_flight = std::max(record_->max_in_flight, count);
  }
  asio::awaitable<void> close() override {
    if (record_->close_takes.count() > 0) co_await sleep_for(record_->close_takes);
    record_->closed = true;
  }

 private:
  std::shared_ptr<fake_broker> broker_;
  std::shared_ptr<session_record> record_;
};

tunnel::request make_request(unsigned n, std::string payload) {
  tunnel::request req;
  req.id = hex_id(0xa0000 + n);
  req.app = app;
  req.context.request_id = "req-" + std::to_string(n);
  req.context.deadline_ms = 4102444800000;
  req.payload = std::move(payload);
  return req;
}

/// A runner driven by the payload: "sleep:N" succeeds with the payload after N ms,
/// "error" is a function error, "init" an init error, "throw" throws; else echo at once.
consumer::runner scripted_runner() {
  return [](const tunnel::request& req) -> asio::awaitable<runtime_api::result> {
    runtime_api::result r;
    const auto& p = req.payload;
    if (p.rfind("sleep:", 0) == 0) co_await sleep_for(milliseconds(std::stoi(p.substr(6))));
    if (p == "throw") throw std::runtime_error("boom");
    if (p == "error") {
      r.outcome = runtime_api::result::kind::function_error;
      r.error_type = "TypeError";
      r.body = R"({"errorMessage":"x is not a function","errorType":"TypeError"})";
      co_return r;
    }
    if (p == "init") {
      r.outcome = runtime_api::result::kind::init_error;
      r.error_type = "Runtime.ImportModuleError";
      r.body = R"({"errorMessage":"Cannot find module","errorType":"Runtime.ImportModuleError"})";
      co_return r;
    }
    r.body = p;
    r.content_type = "application/octet-stream";
    co_return r;
  };
}

/// One consumer on a fake broker; `script` drives it and ends the test.
struct harness {
  asio::io_context io;
  std::shared_ptr<fake_broker> broker = std::make_shared<fake_broker>();
  consumer::consumer_options options;
  std::vector<std::pair<std::string, bool>> session_calls;
  std::unique_ptr<consumer::consumer> subject;
  bool run_returned = false;
  std::exception_ptr run_error;

  harness(milliseconds min = milliseconds(40), milliseconds max = milliseconds(400)) {
    broker->executor = io.get_executor();
    options.backend.url = "redis://:secret@127.0.0.1:6379";
    options.backend.app = app;
    options.reconnect_min = min;
    options.reconnect_max = max;
    options.on_session = [this](const std::string& id, bool first) {
      session_calls.emplace_back(id, first);
    };
    options.make_session = [b = broker]() -> std::unique_ptr<tunnel::consumer_session> {
      return std::make_unique<fake_session>(b);
    };
  }

  void run(consumer::runner runner, std::function<asio::awaitable<void>(harness&)> script) {
    subject = std::make_unique<consumer::consumer>(io.get_executor(), options, std::move(runner));
    asio::co_spawn(io, subject->run(), [this](std::exception_ptr e) {
      run_returned = true;
      run_error = e;
    });
    asio::co_spawn(io, script(*this), [this](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& error) {
          ADD_FAILURE() << "script threw: " << error.what();
        }
      }
      io.stop();
    });
    io.run_for(std::chrono::seconds(20));
  }

  /// Waits (polling) until `ready` holds or `limit` passes.
  static asio::awaitable<bool> until(std::function<bool()> ready,
                                     milliseconds limit = milliseconds(3000)) {
    auto end = steady_clock::now() + limit;
    while (!ready()) {
      if (steady_clock::now() > end) co_return false;
      co_await sleep_for(milliseconds(2));
    }
    co_return true;
  }
};

std::string error_type_in(const std::string& body) {
  return std::string(boost::json::parse(body).as_object().at("errorType").as_string());
}
std::string error_message_in(const std::string& body) {
  return std::string(boost::json::parse(body).as_object().at("errorMessage").as_string());
}

TEST(Consumer, BuildsResponsesFromResults) {
  harness h;
  const std::string binary("\x00\xff{not json\r\n\x80", 12);
  h.run(scripted_runner(), [&](harness& t) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await harness::until([&] { return !t.broker->sessions.empty(); }));
    auto s = t.broker->sessions[0];
    s->push(make_request(1, binary));
    s->push(make_request(2, "error"));
    s->push(make_request(3, "init"));
    s->push(make_request(4, "throw"));
    EXPECT_TRUE(co_await harness::until([&] { return s->responses.size() == 4; }));
    co_await t.subject->stop();
    EXPECT_TRUE(co_await harness::until([&] { return t.run_returned; }, milliseconds(500)));
  });
  ASSERT_EQ(h.broker->sessions.size(), 1u);
  auto& s = *h.broker->sessions[0];
  ASSERT_EQ(s.responses.size(), 4u);
  std::map<std::string, tunnel::response> by_id;
  for (auto& r : s.responses) by_id[r.id] = r;
  for (auto& [id, r] : by_id) {
    EXPECT_EQ(r.app, app);
    EXPECT_EQ(r.consumer, s.id);
  }
  const auto& ok = by_id.at(make_request(1, "").id);
  EXPECT_EQ(ok.result, tunnel::response::outcome::success);
  EXPECT_EQ(ok.body, binary);  // byte for byte
  EXPECT_EQ(ok.content_type, "application/octet-stream");
  EXPECT_EQ(ok.error_type, "");

  const auto& error = by_id.at(make_request(2, "").id);
  EXPECT_EQ(error.result, tunnel::response::outcome::error);
  EXPECT_EQ(error.error_type, "TypeError");
  EXPECT_EQ(error.body, R"({"errorMessage":"x is not a function","errorType":"TypeError"})");

  const auto& init = by_id.at(make_request(3, "").id);
  EXPECT_EQ(init.result, tunnel::response::outcome::error);
  EXPECT_EQ(init.error_type, "Runtime.ImportModuleError");

  const auto& thrown = by_id.at(make_request(4, "").id);
  EXPECT_EQ(thrown.result, tunnel::response::outcome::error);
  EXPECT_EQ(thrown.error_type, "Funcie.ConsumerError");
  EXPECT_EQ(error_type_in(thrown.body), "Funcie.ConsumerError");
  EXPECT_NE(error_message_in(thrown.body).find("boom"), std::string::npos);

  ASSERT_EQ(h.session_calls.size(), 1u);
  EXPECT_EQ(h.session_calls[0].first, s.id);
  EXPECT_TRUE(h.session_calls[0].second);
  EXPECT_TRUE(s.closed);
  EXPECT_TRUE(h.run_returned);
  EXPECT_FALSE(h.run_error);
}

TEST(Consumer, RunsManyRequestsAtOnce) {
  harness h;
  constexpr unsigned n = 50;
  milliseconds took{};
  h.run(scripted_runner(), [&](harness& t) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await harness::until([&] { return !t.broker->sessions.empty(); }));
    auto s = t.broker->sessions[0];
    auto start = steady_clock::now();
    for (unsigned i = 0; i < n; ++i) s->push(make_request(i, "sleep:300"));
    EXPECT_TRUE(co_await harness::until([&] { return t.subject->in_flight() == n; }));
    EXPECT_TRUE(co_await harness::until([&] { return s->responses.size() == n; }));
    took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
    co_await t.subject->stop();
    EXPECT_TRUE(co_await harness::until([&] { return t.run_returned; }, milliseconds(500)));
  });
  auto& s = *h.broker->sessions[0];
  EXPECT_EQ(s.responses.size(), n);
  EXPECT_EQ(s.max_in_flight, static_cast<std::int64_t>(n));
  EXPECT_LT(took, milliseconds(1500));  // 50 x 300 ms one after the other would be 15 s
  for (const auto& r : s.responses) EXPECT_EQ(r.body, "sleep:300");
}

TEST(Consumer, StopAnswersWhatItHoldsAtOnceAndCloses) {
  harness h;
  milliseconds stop_took{};
  h.run(scripted_runner(), [&](harness& t) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await harness::until([&] { return !t.broker->sessions.empty(); }));
    auto s = t.broker->sessions[0];
    for (unsigned i = 0; i < 3; ++i) s->push(make_request(i, "sleep:400"));
    EXPECT_TRUE(co_await harness::until([&] { return t.subject->in_flight() == 3; }));
    auto start = steady_clock::now();
    co_await t.subject->stop();
    stop_took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
    EXPECT_EQ(t.subject->in_flight(), 0u);
    co_await t.subject->stop();  // more than once is fine
    // The runners' results come later and are dropped.
    co_await sleep_for(milliseconds(600));
  });
  auto& s = *h.broker->sessions[0];
  EXPECT_LT(stop_took, milliseconds(300));  // at once: the runners need 400 ms more
  ASSERT_EQ(s.responses.size(), 3u);
  for (const auto& r : s.responses) {
    EXPECT_EQ(r.result, tunnel::response::outcome::error);
    EXPECT_EQ(r.error_type, "Funcie.ConsumerLeft");
    EXPECT_EQ(r.consumer, s.id);
    EXPECT_EQ(error_type_in(r.body), "Funcie.ConsumerLeft");
    EXPECT_NE(error_message_in(r.body).find("stopped while running this invocation"),
              std::string::npos);
  }
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.in_flight, 0);
  EXPECT_TRUE(h.run_returned);
  EXPECT_EQ(h.broker->sessions.size(), 1u);
}

TEST(Consumer, ARequestClaimedWhileLeavingIsAnsweredAsLeft) {
  harness h;
  h.run(scripted_runner(), [&](harness& t) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await harness::until([&] { return !t.broker->sessions.empty(); }));
    EXPECT_TRUE(co_await harness::until([&] { return !t.session_calls.empty(); }));
    co_await sleep_for(milliseconds(5));  // serving: waiting in next()
    auto s = t.broker->sessions[0];
    s->close_takes = milliseconds(100);
    bool stopped = false;
    asio::co_spawn(t.io, t.subject->stop(), [&](std::exception_ptr) { stopped = true; });
    co_await sleep_for(milliseconds(10));
    s->push(make_request(7, "late"));  // its claim was on its way when stop() began
    EXPECT_TRUE(co_await harness::until([&] { return stopped && t.run_returned; }));
  });
  auto& s = *h.broker->sessions[0];
  ASSERT_EQ(s.responses.size(), 1u);
  EXPECT_EQ(s.responses[0].error_type, "Funcie.ConsumerLeft");
  EXPECT_TRUE(s.closed);
}

TEST(Consumer, LostSessionStartsANewOneWithBackoffAndDropsWhatItHeld) {
  harness h(milliseconds(100), milliseconds(1000));
  clock_point lost_at;
  h.run(scripted_runner(), [&](harness& t) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await harness::until([&] { return !t.broker->sessions.empty(); }));
    auto first = t.broker->sessions[0];
    first->push(make_request(1, "sleep:300"));
    EXPECT_TRUE(co_await harness::until([&] { return t.subject->in_flight() == 1; }));
    lost_at = steady_clock::now();
    first->push(std::nullopt);  // heartbeat lapsed
    if (!co_await harness::until([&] { return t.broker->sessions.size() == 2; })) {
      ADD_FAILURE() << "no new session";
      co_return;
    }
    EXPECT_EQ(t.subject->in_flight(), 0u);
    // The held request's result (at 300 ms) goes nowhere; the new session serves new ones.
    auto second = t.broker->sessions[1];
    second->push(make_request(2, "fresh"));
    co_await sleep_for(milliseconds(500));
    co_await t.subject->stop();
    EXPECT_TRUE(co_await harness::until([&] { return t.run_returned; }, milliseconds(500)));
  });
  ASSERT_EQ(h.broker->sessions.size(), 2u);
  auto& first = *h.broker->sessions[0];
  auto& second = *h.broker->sessions[1];
  EXPECT_NE(first.id, second.id);
  EXPECT_TRUE(first.responses.empty());
  ASSERT_EQ(second.responses.size(), 1u);
  EXPECT_EQ(second.responses[0].body, "fresh");
  EXPECT_EQ(second.responses[0].consumer, second.id);
  ASSERT_EQ(h.broker->open_attempts.size(), 2u);
  auto pause = h.broker->open_attempts[1] - lost_at;
  EXPECT_GE(pause, milliseconds(85));  // reconnect_min with -10% jitter
  EXPECT_LT(pause, milliseconds(300));
  ASSERT_EQ(h.session_calls.size(), 2u);
  EXPECT_TRUE(h.session_calls[0].second);
  EXPECT_FALSE(h.session_calls[1].second);
  EXPECT_EQ(h.session_calls[1].first, second.id);
  EXPECT_TRUE(first.closed);
}

TEST(Consumer, OpenFailuresAreRetriedWithDoublingBackoff) {
  harness h(milliseconds(50), milliseconds(150));
  h.broker->open_failures = 4;
  h.run(scripted_runner(), [&](harness& t) -> asio::awaitable<void> {
    // Until the session is announced (opened), not merely made: stopping in between would
    // race the announcement this test counts.
    EXPECT_TRUE(co_await harness::until([&] { return !t.session_calls.empty(); }));
    co_await t.subject->stop();
    EXPECT_TRUE(co_await harness::until([&] { return t.run_returned; }, milliseconds(500)));
  });
  const auto& at = h.broker->open_attempts;
  ASSERT_EQ(at.size(), 5u);
  const int expected[] = {50, 100, 150, 150};  // doubling, capped at reconnect_max
  for (int i = 0; i < 4; ++i) {
    auto gap = std::chrono::duration_cast<milliseconds>(at[i + 1] - at[i]).count();
    EXPECT_GE(gap, expected[i] * 0.9 - 1) << "pause " << i;
    EXPECT_LT(gap, expected[i] * 1.1 + 150) << "pause " << i;  // slack for a loaded CI
  }
  ASSERT_EQ(h.session_calls.size(), 1u);
  EXPECT_TRUE(h.session_calls[0].second);
}

TEST(Consumer, FailedResponseEndsTheSession) {
  harness h;
  h.run(scripted_runner(), [&](harness& t) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await harness::until([&] { return !t.broker->sessions.empty(); }));
    auto first = t.broker->sessions[0];
    first->fail_respond = true;
    first->push(make_request(1, "hello"));
    if (!co_await harness::until([&] { return t.broker->sessions.size() == 2; })) {
      ADD_FAILURE() << "no new session";
      co_return;
    }
    co_await t.subject->stop();
    EXPECT_TRUE(co_await harness::until([&] { return t.run_returned; }, milliseconds(500)));
  });
  ASSERT_EQ(h.broker->sessions.size(), 2u);
  EXPECT_NE(h.broker->sessions[0]->id, h.broker->sessions[1]->id);
  EXPECT_TRUE(h.broker->sessions[1]->responses.empty());
}

TEST(Consumer, StopWhileWaitingForTheBrokerReturns) {
  harness h(milliseconds(1000), milliseconds(5000));
  h.broker->open_failures = 1000;
  h.run(scripted_runner(), [&](harness& t) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await harness::until([&] { return !t.broker->open_attempts.empty(); }));
    co_await t.subject->stop();
    // Well before the next attempt (1 s away): stop does not wait out the backoff.
    EXPECT_TRUE(co_await harness::until([&] { return t.run_returned; }, milliseconds(500)));
  });
  EXPECT_TRUE(h.run_returned);
  EXPECT_TRUE(h.broker->sessions.empty());
}

}  // namespace
