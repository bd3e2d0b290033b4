// forwarder::forward: what each outcome of the backend becomes for the Runtime API, the
// request it builds and the deadline it gives the backend. The backend is a fake here; the
// Redis one is tested against a real redis-server.
#include "forwarder/forwarder.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace funcie;
using forwarder::forwarder_config;
using runtime_api::result;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

class fake_backend : public tunnel::forwarder_backend {
 public:
  tunnel::forward_outcome outcome;
  bool throws = false;
  int calls = 0;
  tunnel::request seen;
  steady_clock::time_point give_up_at;

  boost::asio::awaitable<tunnel::forward_outcome> forward(const tunnel::request& req,
                                                          steady_clock::time_point until) override {
    ++calls;
    seen = req;
    give_up_at = until;
    if (throws) throw std::runtime_error("connection reset by peer");
    co_return outcome;
  }
};

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

runtime_api::invocation invocation_due_in(milliseconds left) {
  runtime_api::invocation inv;
  inv.context.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
  inv.context.deadline_ms = unix_ms_now() + left.count();
  inv.context.function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:orders-api";
  inv.context.trace_id = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419";
  inv.context.client_context = R"({"client":{}})";
  inv.payload = std::string("{\"event\":\"\xF0\x9F\x8E\x89\",\"bytes\":\"\0\x01\"}", 29);
  return inv;
}

struct fixture {
  forwarder_config config;
  fake_backend* backend = nullptr;  // owned by fwd
  std::optional<forwarder::forwarder> fwd;

  explicit fixture(milliseconds margin = milliseconds(500)) {
    config.backend.url = "redis://localhost:6379";
    config.backend.app = "orders-api";
    config.deadline_margin = margin;
    config.function = {.name = "orders-api",
                       .version = "7",
                       .memory_mb = 256,
                       .region = "eu-west-1",
                       .log_group = "/aws/lambda/orders-api",
                       .log_stream = "stream",
                       .handler = "index.handler"};
    auto owned = std::make_unique<fake_backend>();
    backend = owned.get();
    fwd.emplace(config, std::move(owned));
  }

  std::optional<result> forward(const runtime_api::invocation& inv) {
    boost::asio::io_context io;
    std::optional<result> out;
    bool done = false;
    boost::asio::co_spawn(io, fwd->forward(inv),
                          [&](std::exception_ptr e, std::optional<result> r) {
                            EXPECT_FALSE(e) << "forward() threw";
                            out = std::move(r);
                            done = true;
                          });
    io.run();
    EXPECT_TRUE(done);
    return out;
  }
};

// The error object of a function error body.
boost::json::object error_json(const result& r) {
  return boost::json::parse(r.body).as_object();
}

}  // namespace

TEST(Forwarder, NotTakenRunsInTheCloud) {
  fixture f;
  f.backend->outcome.outcome = tunnel::forward_outcome::kind::not_taken;
  f.backend->outcome.reason = "no consumer";
  EXPECT_EQ(f.forward(invocation_due_in(milliseconds(3000))), std::nullopt);
  EXPECT_EQ(f.backend->calls, 1);
}

TEST(Forwarder, BuildsTheRequestFromTheInvocation) {
  fixture f;
  const auto inv = invocation_due_in(milliseconds(3000));
  const auto before = unix_ms_now();
  f.forward(inv);
  const tunnel::request& req = f.backend->seen;
  EXPECT_TRUE(tunnel::is_valid_id(req.id)) << req.id;
  EXPECT_EQ(req.app, "orders-api");
  EXPECT_GE(req.sent_ms, before);
  EXPECT_LE(req.sent_ms, unix_ms_now());
  EXPECT_EQ(req.context, inv.context);
  EXPECT_EQ(req.function, f.config.function);
  EXPECT_EQ(req.payload, inv.payload) << "the event byte for byte";

  const std::string first_id = req.id;
  f.forward(inv);
  EXPECT_NE(f.backend->seen.id, first_id) << "each forwarded attempt has its own id";
}

TEST(Forwarder, GivesUpAtTheDeadlineMinusTheMargin) {
  fixture f(milliseconds(700));
  const auto before = steady_clock::now();
  f.forward(invocation_due_in(milliseconds(5000)));
  const auto after = steady_clock::now();
  // deadline - margin = now + 4300 ms, within the clock reading's granularity (1 ms).
  EXPECT_GE(f.backend->give_up_at, before + milliseconds(4300 - 2));
  EXPECT_LE(f.backend->give_up_at, after + milliseconds(4300 + 1));
}

TEST(Forwarder, AnsweredSuccessIsPostedByteForByte) {
  fixture f;
  auto& answer = f.backend->outcome.answer;
  f.backend->outcome.outcome = tunnel::forward_outcome::kind::answered;
  answer.result = tunnel::response::outcome::success;
  answer.body = std::string("\x00\xff not json \r\n", 14);
  answer.content_type = "application/octet-stream";
  const auto r = f.forward(invocation_due_in(milliseconds(3000)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, result::kind::success);
  EXPECT_EQ(r->body, answer.body);
  EXPECT_EQ(r->content_type, "application/octet-stream");
  EXPECT_EQ(r->error_type, "");
}

TEST(Forwarder, AnsweredErrorKeepsTheConsumersBodyAndType) {
  fixture f;
  auto& answer = f.backend->outcome.answer;
  f.backend->outcome.outcome = tunnel::forward_outcome::kind::answered;
  answer.result = tunnel::response::outcome::error;
  answer.error_type = "TypeError";
  answer.body =
      R"json({"errorType":"TypeError","errorMessage":"x is undefined","trace":["at handler (index.mjs:3)"]})json";
  const auto r = f.forward(invocation_due_in(milliseconds(3000)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, result::kind::function_error);
  EXPECT_EQ(r->body, answer.body);
  EXPECT_EQ(r->error_type, "TypeError");
}

TEST(Forwarder, FailedBecomesAFunctionError) {
  for (const char* type : {"Funcie.ConsumerLost", "Funcie.ConsumerLeft", "Funcie.Timeout"}) {
    fixture f;
    f.backend->outcome.outcome = tunnel::forward_outcome::kind::failed;
    f.backend->outcome.error_type = type;
    f.backend->outcome.message = "the consumer stopped answering";
    const auto r = f.forward(invocation_due_in(milliseconds(3000)));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->outcome, result::kind::function_error);
    EXPECT_EQ(r->error_type, type);
    const auto error = error_json(*r);
    EXPECT_EQ(error.at("errorType").as_string(), type);
    EXPECT_EQ(error.at("errorMessage").as_string(), "the consumer stopped answering");
  }
}

TEST(Forwarder, DeadlineAlreadyPastTimesOutWithoutOffering) {
  fixture f(milliseconds(500));
  const auto r = f.forward(invocation_due_in(milliseconds(400)));
  ASSERT_TRUE(r);
  EXPECT_EQ(f.backend->calls, 0) << "never offered";
  EXPECT_EQ(r->outcome, result::kind::function_error);
  EXPECT_EQ(r->error_type, "Funcie.Timeout");
  const auto error = error_json(*r);
  EXPECT_NE(std::string(error.at("errorMessage").as_string()).find("FUNCIE_DEADLINE_MARGIN_MS"),
            std::string::npos)
      << r->body;
}

TEST(Forwarder, ABackendThatThrowsAfterTheOfferGivesBrokerLost) {
  fixture f;
  f.backend->throws = true;
  const auto r = f.forward(invocation_due_in(milliseconds(3000)));
  ASSERT_TRUE(r) << "it may have been offered: it must not run in the cloud too";
  EXPECT_EQ(r->error_type, "Funcie.BrokerLost");
  EXPECT_EQ(error_json(*r).at("errorType").as_string(), "Funcie.BrokerLost");
}

TEST(Forwarder, WithoutBackendEverythingRunsInTheCloud) {
  forwarder::forwarder fwd(forwarder_config{}, nullptr);
  boost::asio::io_context io;
  std::optional<result> out = result{};
  const auto inv = invocation_due_in(milliseconds(3000));
  boost::asio::co_spawn(io, fwd.forward(inv),
                        [&](std::exception_ptr, std::optional<result> r) { out = std::move(r); });
  io.run();
  EXPECT_EQ(out, std::nullopt);
}

namespace {

// The pieces after the first, then a failure (or the end).
class fake_pieces : public tunnel::response_pieces {
 public:
  std::vector<tunnel::forward_outcome> rest;
  std::size_t next_index = 0;
  boost::asio::awaitable<tunnel::forward_outcome> next(steady_clock::time_point) override {
    co_return rest.at(next_index++);
  }
};

tunnel::forward_outcome piece(std::int64_t n, bool more, std::string body) {
  tunnel::response r;
  r.id = "0123456789abcdef0123456789abcdef";
  r.app = "orders-api";
  r.consumer = "fedcba9876543210fedcba9876543210";
  r.piece = n;
  r.more = more;
  r.body = std::move(body);
  return tunnel::answered(std::move(r));
}

// Reads a piece source to its end.
std::vector<std::string> read_all(runtime_api::piece_source& source) {
  boost::asio::io_context io;
  std::vector<std::string> pieces;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        while (auto bytes = co_await source.read()) pieces.push_back(std::move(*bytes));
      },
      [](std::exception_ptr e) { EXPECT_FALSE(e) << "read() threw"; });
  io.run();
  return pieces;
}

}  // namespace

TEST(Forwarder, AskedForPiecesOnlyWhenTheBackendStreams) {
  fixture f;
  f.forward(invocation_due_in(milliseconds(3000)));
  EXPECT_FALSE(f.backend->seen.stream) << "the fake, like SQS, carries whole responses only";
}

TEST(Forwarder, AStreamedAnswerIsPostedPieceByPieceAndEndsWithTheError) {
  fixture f;
  auto first = piece(0, true, "first\n");
  first.answer.content_type = "text/plain";
  auto rest = std::make_shared<fake_pieces>();
  rest->rest.push_back(piece(1, true, "second\n"));
  auto last = piece(2, false, R"({"errorMessage":"broke","errorType":"TypeError"})");
  last.answer.result = tunnel::response::outcome::error;
  last.answer.error_type = "TypeError";
  rest->rest.push_back(last);
  first.pieces = rest;
  f.backend->outcome = first;
  auto r = f.forward(invocation_due_in(milliseconds(3000)));
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->pieces);
  EXPECT_EQ(r->outcome, result::kind::success);
  EXPECT_EQ(r->content_type, "text/plain");
  EXPECT_EQ(read_all(*r->pieces), (std::vector<std::string>{"first\n", "second\n"}));
  ASSERT_TRUE(r->pieces->error());
  EXPECT_EQ(r->pieces->error()->error_type, "TypeError");
  EXPECT_EQ(r->pieces->error_body(), R"({"errorMessage":"broke","errorType":"TypeError"})");
}

TEST(Forwarder, AConsumerLostMidStreamEndsTheStreamWithThatError) {
  fixture f;
  auto first = piece(0, true, "started\n");
  auto rest = std::make_shared<fake_pieces>();
  rest->rest.push_back(tunnel::failed("Funcie.ConsumerLost", "the consumer session is gone"));
  first.pieces = rest;
  f.backend->outcome = first;
  auto r = f.forward(invocation_due_in(milliseconds(3000)));
  ASSERT_TRUE(r && r->pieces);
  EXPECT_EQ(read_all(*r->pieces), std::vector<std::string>{"started\n"});
  ASSERT_TRUE(r->pieces->error());
  EXPECT_EQ(r->pieces->error()->error_type, "Funcie.ConsumerLost");
  EXPECT_NE(r->pieces->error_body().find("the consumer session is gone"), std::string::npos);
}

namespace {

// Pieces of 1 MiB for ever: a consumer that streams past every limit.
class endless_pieces : public tunnel::response_pieces {
 public:
  std::int64_t n = 1;
  boost::asio::awaitable<tunnel::forward_outcome> next(steady_clock::time_point) override {
    co_return piece(n++, true, std::string(std::size_t{1} << 20, 'x'));
  }
};

}  // namespace

TEST(Forwarder, AStreamPastLambdasStreamingLimitEndsWithResponseSizeTooLarge) {
  fixture f;
  auto first = piece(0, true, std::string(std::size_t{1} << 20, 'x'));
  first.pieces = std::make_shared<endless_pieces>();
  f.backend->outcome = first;
  auto r = f.forward(invocation_due_in(milliseconds(30000)));
  ASSERT_TRUE(r && r->pieces);
  // Counted, not kept: 200 MiB would be a lot of memory under ASan.
  std::size_t total = 0;
  boost::asio::io_context io;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        while (auto bytes = co_await r->pieces->read()) total += bytes->size();
      },
      [](std::exception_ptr e) { EXPECT_FALSE(e) << "read() threw"; });
  io.run();
  EXPECT_LE(total, runtime_api::max_streamed_response_bytes);
  EXPECT_GT(total, runtime_api::max_streamed_response_bytes - (std::size_t{1} << 20))
      << "the stream runs up to the limit";
  ASSERT_TRUE(r->pieces->error());
  EXPECT_EQ(r->pieces->error()->error_type, "Function.ResponseSizeTooLarge");
  EXPECT_NE(r->pieces->error_body().find("Function.ResponseSizeTooLarge"), std::string::npos);
}
