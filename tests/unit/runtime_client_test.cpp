// The Runtime API client and run_handler against a fake Runtime API written here (Beast, on
// 127.0.0.1 port 0, its own thread), so each behaviour a function author relies on is seen
// on the wire.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../support/env.hpp"
#include "funcie/runtime/runtime.hpp"
#include "runtime/client.hpp"
#include "runtime_api/pipelining.hpp"
#include "runtime_api/protocol.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace header = funcie::runtime_api::header;
using asio::ip::tcp;
using funcie::runtime::client;
using funcie::runtime::client_errc;
using funcie::runtime::client_error;
using funcie::runtime::invocation_request;
using funcie::runtime::invocation_response;
using funcie::runtime::run_options;
using funcie::test::scoped_env;

constexpr std::string_view invocation_prefix = "/2018-06-01/runtime/invocation/";

/// An invocation the fake hands out on GET /next.
struct queued_invocation {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload;
};

/// A POST the fake received.
struct recorded_post {
  std::string target;
  std::string content_type;
  std::string error_type;  ///< Lambda-Runtime-Function-Error-Type
  std::string body;
};

/// Deadline 5 s from now, as Lambda sends it.
std::string deadline_in_5s() {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  return std::to_string(now.count() + 5000);
}

queued_invocation event(std::string request_id, std::string payload) {
  return {
      {{std::string(header::request_id), std::move(request_id)},
       {std::string(header::deadline_ms), deadline_in_5s()},
       {std::string(header::function_arn), "arn:aws:lambda:eu-west-1:123456789012:function:echo"}},
      std::move(payload)};
}

/// How the fake Runtime API misbehaves, if asked to.
struct fake_behaviour {
  /// Close each connection right after an answer, without saying so (Connection: close),
  /// as a server whose keep-alive timer fired does.
  bool close_after_each_answer = false;
  /// Hold every /next this long before answering.
  std::chrono::milliseconds next_delay{0};
  /// Status for posts of results (instead of 202).
  unsigned post_status = 202;
  /// Say on /next answers that pipelined requests are read, as funcie's own Runtime API does.
  bool pipelining = false;
};

/// A Runtime API good enough to drive a runtime: /next pops a queue (500 when it is empty,
/// which tells a runtime to exit), posts are recorded and answered 202.
class fake_runtime_api {
 public:
  explicit fake_runtime_api(fake_behaviour b = {})
      : behaviour_(b), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~fake_runtime_api() {
    io_.stop();
    thread_.join();
  }
  fake_runtime_api(const fake_runtime_api&) = delete;
  fake_runtime_api& operator=(const fake_runtime_api&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  void push(queued_invocation invocation) {
    const std::lock_guard lock(mutex_);
    queue_.push_back(std::move(invocation));
  }
  std::vector<recorded_post> posts() const {
    const std::lock_guard lock(mutex_);
    return posts_;
  }
  int connections() const { return connections_; }
  int next_calls() const { return next_calls_; }
  /// GET /next requests that were already read (behind another request) when the answer
  /// before them was written.
  int pipelined_next_calls() const { return pipelined_next_calls_; }

 private:
  using request_type = http::request<http::string_body>;
  using response_type = http::response<http::string_body>;

  asio::awaitable<void> accept_loop() {
    for (;;) {
      tcp::socket socket = co_await acceptor_.async_accept(asio::use_awaitable);
      ++connections_;
      asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(16 * 1024 * 1024);
      boost::system::error_code ec;
      const bool already_read = buffer.size() > 0;
      co_await http::async_read(socket, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      const request_type request = parser.release();
      if (already_read && request.target() == "/2018-06-01/runtime/invocation/next") {
        ++pipelined_next_calls_;
      }
      if (request.target() == "/2018-06-01/runtime/invocation/next" &&
          behaviour_.next_delay.count() > 0) {
        asio::steady_timer timer(io_, behaviour_.next_delay);
        co_await timer.async_wait(asio::use_awaitable);
      }
      response_type response = answer(request);
      response.keep_alive(request.keep_alive());
      response.prepare_payload();
      co_await http::async_write(socket, response, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || behaviour_.close_after_each_answer) co_return;  // drops the socket
    }
  }

  static response_type reply(unsigned status, std::string_view type, std::string_view message) {
    response_type response(static_cast<http::status>(status), 11);
    response.set(http::field::content_type, "application/json");
    response.body() = funcie::runtime_api::format_api_error(type, message);
    return response;
  }

  response_type answer(const request_type& request) {
    const std::lock_guard lock(mutex_);
    const std::string target(request.target());
    if (request.method() == http::verb::get && target == "/2018-06-01/runtime/invocation/next") {
      ++next_calls_;
      if (queue_.empty()) return reply(500, "Runtime.NoMoreInvocations", "the test is over");
      queued_invocation invocation = std::move(queue_.front());
      queue_.pop_front();
      response_type response(http::status::ok, 11);
      response.set(http::field::content_type, "application/json");
      for (const auto& [name, value] : invocation.headers) response.set(name, value);
      if (behaviour_.pipelining) response.set(header::pipelining, "1");
      for (const auto& [name, value] : invocation.headers) {
        if (beast::iequals(name, header::request_id)) issued_.insert(value);
      }
      response.body() = std::move(invocation.payload);
      return response;
    }
    if (request.method() != http::verb::post) return reply(404, "NotFound", "no such route");

    recorded_post post{target, std::string(request[http::field::content_type]),
                       std::string(request[header::function_error_type]), request.body()};
    if (target == "/2018-06-01/runtime/init/error") {
      posts_.push_back(std::move(post));
      return reply(202, "", "");
    }
    std::string_view rest = target;
    if (!rest.starts_with(invocation_prefix) || rest.rfind('/') < invocation_prefix.size()) {
      return reply(404, "NotFound", "no such route");
    }
    rest.remove_prefix(invocation_prefix.size());
    const std::string id(rest.substr(0, rest.rfind('/')));
    if (issued_.count(id) == 0) return reply(400, "InvalidRequestID", "unknown request id");
    posts_.push_back(std::move(post));
    return reply(behaviour_.post_status, behaviour_.post_status == 202 ? "" : "Refused", "test");
  }

  fake_behaviour behaviour_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::deque<queued_invocation> queue_;
  std::set<std::string> issued_;
  std::vector<recorded_post> posts_;
  std::atomic<int> connections_{0};
  std::atomic<int> next_calls_{0};
  std::atomic<int> pipelined_next_calls_{0};
};

run_options against(const fake_runtime_api& api, std::size_t max_invocations) {
  return {.max_invocations = max_invocations, .runtime_api = api.address()};
}

std::string response_target(std::string_view id) {
  return std::string(invocation_prefix) + std::string(id) + "/response";
}
std::string error_target(std::string_view id) {
  return std::string(invocation_prefix) + std::string(id) + "/error";
}

/// Runs one coroutine on a client to completion; rethrows what it throws.
template <typename T>
T with_client(const std::string& address, const std::function<asio::awaitable<T>(client&)>& work,
              client::options options = {}) {
  asio::io_context io;
  client api(io.get_executor(), address, options);
  auto result = asio::co_spawn(io, work(api), asio::use_future);
  io.run();
  return result.get();
}

funcie::runtime_api::function_error parse_error_body(const std::string& body) {
  return funcie::runtime_api::parse_error(body, "");
}

namespace my_app {
struct bad_event : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
}  // namespace my_app

TEST(RunHandler, GivesTheHandlerEveryContextHeader) {
  fake_runtime_api api;
  queued_invocation invocation{
      {{"lambda-runtime-aws-request-id", "req-1"},  // any case
       {std::string(header::deadline_ms), "1700000012345"},
       {std::string(header::function_arn), "arn:aws:lambda:eu-west-1:123456789012:function:f:live"},
       {std::string(header::trace_id), "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"},
       {std::string(header::client_context), R"({"custom":{"k":"v"}})"},
       {std::string(header::cognito_identity),
        R"({"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"})"},
       {std::string(header::tenant_id), "tenant-7"}},
      R"({"hello":"world"})"};
  api.push(std::move(invocation));

  invocation_request seen;
  funcie::runtime::run_handler(
      [&](const invocation_request& request) {
        seen = request;
        return invocation_response::success("{}");
      },
      against(api, 1));

  EXPECT_EQ(seen.request_id, "req-1");
  EXPECT_EQ(seen.payload, R"({"hello":"world"})");
  EXPECT_EQ(seen.function_arn, "arn:aws:lambda:eu-west-1:123456789012:function:f:live");
  EXPECT_EQ(seen.xray_trace_id, "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
  EXPECT_EQ(seen.client_context, R"({"custom":{"k":"v"}})");
  EXPECT_EQ(seen.cognito_identity, R"({"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"})");
  EXPECT_EQ(seen.tenant_id, "tenant-7");
  EXPECT_EQ(seen.deadline,
            std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000012345)));
  EXPECT_LT(seen.get_time_remaining().count(), 0) << "a deadline in 2023 has passed";
}

TEST(RunHandler, TimeRemainingCountsDownToTheDeadline) {
  fake_runtime_api api;
  api.push(event("req-1", "{}"));
  std::chrono::milliseconds remaining{};
  funcie::runtime::run_handler(
      [&](const invocation_request& request) {
        remaining = request.get_time_remaining();
        return invocation_response::success("{}");
      },
      against(api, 1));
  EXPECT_GT(remaining.count(), 4000);
  EXPECT_LE(remaining.count(), 5000);
}

TEST(RunHandler, SetsXAmznTraceIdForEachInvocationAndClearsItWithoutOne) {
  const scoped_env stale("_X_AMZN_TRACE_ID", "Root=stale");
  fake_runtime_api api;
  queued_invocation traced = event("req-1", "{}");
  traced.headers.emplace_back(header::trace_id, "Root=1-abc;Parent=def;Sampled=1");
  api.push(std::move(traced));
  api.push(event("req-2", "{}"));

  std::vector<std::optional<std::string>> seen;
  funcie::runtime::run_handler(
      [&](const invocation_request&) {
        const char* value = std::getenv("_X_AMZN_TRACE_ID");
        seen.push_back(value != nullptr ? std::optional<std::string>(value) : std::nullopt);
        return invocation_response::success("{}");
      },
      against(api, 2));

  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], "Root=1-abc;Parent=def;Sampled=1");
  EXPECT_EQ(seen[1], std::nullopt) << "a trace id of an earlier invocation must not leak";
}

TEST(RunHandler, PostsTheSuccessPayloadAndContentTypeByteForByte) {
  fake_runtime_api api;
  api.push(event("req-1", "ignored"));
  using namespace std::string_literals;
  const std::string payload = "\0\xff\r\n\r\nbinary \"x\"\n"s;  // NUL, not UTF-8, CRLF

  funcie::runtime::run_handler(
      [&](const invocation_request&) {
        return invocation_response::success(payload, "application/octet-stream");
      },
      against(api, 1));

  const auto posts = api.posts();
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].target, response_target("req-1"));
  EXPECT_EQ(posts[0].content_type, "application/octet-stream");
  EXPECT_EQ(posts[0].body, payload);
  EXPECT_EQ(posts[0].error_type, "");
}

TEST(RunHandler, HandlerExceptionsBecomeFunctionErrorsAndTheLoopGoesOn) {
  fake_runtime_api api;
  api.push(event("req-1", "a"));
  api.push(event("req-2", "b"));
  api.push(event("req-3", "c"));
  api.push(event("req-4", "d"));

  funcie::runtime::run_handler(
      [](const invocation_request& request) -> invocation_response {
        if (request.payload == "a") throw std::runtime_error("boom: \"quoted\"");
        if (request.payload == "b") throw my_app::bad_event("no name");
        if (request.payload == "c") throw 42;
        return invocation_response::success("still alive");
      },
      against(api, 4));

  const auto posts = api.posts();
  ASSERT_EQ(posts.size(), 4u);
  EXPECT_EQ(posts[0].target, error_target("req-1"));
  EXPECT_EQ(posts[0].content_type, funcie::runtime_api::error_content_type);
  EXPECT_EQ(posts[0].error_type, "std::runtime_error");
  const auto first = parse_error_body(posts[0].body);
  EXPECT_EQ(first.error_type, "std::runtime_error");
  EXPECT_EQ(first.error_message, "boom: \"quoted\"");

  EXPECT_EQ(posts[1].error_type, "(anonymous namespace)::my_app::bad_event");
  EXPECT_EQ(parse_error_body(posts[1].body).error_message, "no name");

  EXPECT_EQ(posts[2].target, error_target("req-3"));
  EXPECT_EQ(posts[2].error_type, "UnknownException");
  EXPECT_EQ(parse_error_body(posts[2].body).error_type, "UnknownException");
  EXPECT_NE(parse_error_body(posts[2].body).error_message.find("int"), std::string::npos);

  EXPECT_EQ(posts[3].target, response_target("req-4"));
  EXPECT_EQ(posts[3].body, "still alive");
}

TEST(RunHandler, FailureIsPostedAsAFunctionError) {
  fake_runtime_api api;
  api.push(event("req-1", "{}"));
  funcie::runtime::run_handler(
      [](const invocation_request&) {
        return invocation_response::failure("the event has no name", "InvalidEvent");
      },
      against(api, 1));

  const auto posts = api.posts();
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].target, error_target("req-1"));
  EXPECT_EQ(posts[0].error_type, "InvalidEvent");
  EXPECT_EQ(posts[0].content_type, "application/vnd.aws.lambda.error+json");
  const auto error = parse_error_body(posts[0].body);
  EXPECT_EQ(error.error_type, "InvalidEvent");
  EXPECT_EQ(error.error_message, "the event has no name");
}

TEST(RunHandler, FailureCarriesItsStackTrace) {
  fake_runtime_api api;
  api.push(event("req-1", "{}"));
  funcie::runtime::run_handler(
      [](const invocation_request&) {
        return invocation_response::failure("no name", "InvalidEvent",
                                            {"parse_event (main.cpp:12)", "main (main.cpp:40)"});
      },
      against(api, 1));

  const auto posts = api.posts();
  ASSERT_EQ(posts.size(), 1u);
  const auto error = parse_error_body(posts[0].body);
  EXPECT_EQ(error.error_type, "InvalidEvent");
  EXPECT_EQ(error.error_message, "no name");
  EXPECT_EQ(error.stack_trace,
            (std::vector<std::string>{"parse_event (main.cpp:12)", "main (main.cpp:40)"}));
}

TEST(RunHandler, ManyInvocationsShareOneKeepAliveConnection) {
  fake_runtime_api api;
  constexpr int count = 50;
  for (int i = 0; i < count; ++i) api.push(event("req-" + std::to_string(i), std::to_string(i)));

  funcie::runtime::run_handler(
      [](const invocation_request& request) {
        return invocation_response::success(request.payload);
      },
      against(api, count));

  const auto posts = api.posts();
  ASSERT_EQ(posts.size(), std::size_t{count});
  for (int i = 0; i < count; ++i) {
    EXPECT_EQ(posts[i].target, response_target("req-" + std::to_string(i)));
    EXPECT_EQ(posts[i].body, std::to_string(i));
  }
  EXPECT_EQ(api.connections(), 1);
}

TEST(RunHandler, EchoesAnEventOfLambdasFullSize) {
  fake_runtime_api api;
  std::string big(funcie::runtime_api::max_payload_bytes, 'x');
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + i % 26);
  api.push(event("req-big", big));

  std::size_t seen_size = 0;
  funcie::runtime::run_handler(
      [&](const invocation_request& request) {
        seen_size = request.payload.size();
        return invocation_response::success(request.payload);
      },
      against(api, 1));

  EXPECT_EQ(seen_size, big.size());
  const auto posts = api.posts();
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].target, response_target("req-big"));
  EXPECT_TRUE(posts[0].body == big) << "6 MiB response differs";
}

TEST(RunHandler, ATooLargeResultBecomesResponseSizeTooLarge) {
  fake_runtime_api api;
  api.push(event("req-1", "{}"));
  funcie::runtime::run_handler(
      [](const invocation_request&) {
        return invocation_response::success(
            std::string(funcie::runtime_api::max_runtime_post_bytes + 1, 'x'));
      },
      against(api, 1));

  const auto posts = api.posts();
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].target, error_target("req-1"));
  EXPECT_EQ(posts[0].error_type, "Function.ResponseSizeTooLarge");
}

TEST(RunHandler, KeepsGoingWhenTheRuntimeApiRefusesOneResult) {
  fake_runtime_api api({.post_status = 413});
  api.push(event("req-1", "{}"));
  api.push(event("req-2", "{}"));
  int calls = 0;
  testing::internal::CaptureStderr();
  funcie::runtime::run_handler(
      [&](const invocation_request&) {
        ++calls;
        return invocation_response::success("{}");
      },
      against(api, 2));
  const std::string stderr_text = testing::internal::GetCapturedStderr();
  EXPECT_EQ(calls, 2);
  EXPECT_NE(stderr_text.find("413"), std::string::npos) << stderr_text;
}

TEST(RunHandler, ReturnsWhenTheRuntimeApiFailsAPostWith5xx) {
  fake_runtime_api api({.post_status = 500});
  api.push(event("req-1", "{}"));
  api.push(event("req-2", "{}"));
  int calls = 0;
  testing::internal::CaptureStderr();
  funcie::runtime::run_handler(
      [&](const invocation_request&) {
        ++calls;
        return invocation_response::success("{}");
      },
      against(api, 0));
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(api.next_calls(), 1);
}

TEST(RunHandler, ReadsTheAddressFromTheEnvironmentAndReturnsWhenNextAnswers500) {
  fake_runtime_api api;
  api.push(event("req-1", "one"));
  api.push(event("req-2", "two"));
  const scoped_env env("AWS_LAMBDA_RUNTIME_API", api.address().c_str());

  testing::internal::CaptureStderr();
  funcie::runtime::run_handler([](const invocation_request& request) {
    return invocation_response::success(request.payload, "text/plain");
  });
  const std::string stderr_text = testing::internal::GetCapturedStderr();

  const auto posts = api.posts();
  ASSERT_EQ(posts.size(), 2u);
  EXPECT_EQ(posts[1].body, "two");
  EXPECT_EQ(api.next_calls(), 3);
  EXPECT_NE(stderr_text.find("500"), std::string::npos) << stderr_text;
}

TEST(RunHandler, SaysWhatIsMissingWhenAwsLambdaRuntimeApiIsUnset) {
  const scoped_env env("AWS_LAMBDA_RUNTIME_API", nullptr);
  bool called = false;
  testing::internal::CaptureStderr();
  funcie::runtime::run_handler([&](const invocation_request&) {
    called = true;
    return invocation_response::success("{}");
  });
  const std::string stderr_text = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(called);
  EXPECT_NE(stderr_text.find("AWS_LAMBDA_RUNTIME_API is not set"), std::string::npos)
      << stderr_text;
}

unsigned short closed_port() {
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();  // closed again when acceptor goes
}

TEST(RunHandler, ReturnsSoonWhenNoRuntimeApiListens) {
  const auto start = std::chrono::steady_clock::now();
  testing::internal::CaptureStderr();
  funcie::runtime::run_handler(
      [](const invocation_request&) { return invocation_response::success("{}"); },
      {.runtime_api = "127.0.0.1:" + std::to_string(closed_port())});
  const std::string stderr_text = testing::internal::GetCapturedStderr();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_NE(stderr_text.find("cannot connect"), std::string::npos) << stderr_text;
}

TEST(RunHandler, ReconnectsWhenTheServerDropsTheKeptAliveConnection) {
  fake_runtime_api api({.close_after_each_answer = true});
  for (int i = 0; i < 5; ++i) api.push(event("req-" + std::to_string(i), std::to_string(i)));

  funcie::runtime::run_handler(
      [](const invocation_request& request) {
        return invocation_response::success(request.payload);
      },
      against(api, 5));

  const auto posts = api.posts();
  ASSERT_EQ(posts.size(), 5u) << "each result posted exactly once";
  for (int i = 0; i < 5; ++i) EXPECT_EQ(posts[i].body, std::to_string(i));
  EXPECT_EQ(api.next_calls(), 5);
  EXPECT_GE(api.connections(), 5);
}

// funcie's own Runtime API takes the next GET /next in the same write as a result's POST
// (one message less per invocation, bench/README.md); Lambda's is never sent one early.
TEST(RunHandler, SendsTheNextGetWithTheResultOnlyWhenTheServerSaysItReadsPipelinedRequests) {
  for (const bool pipelining : {false, true}) {
    SCOPED_TRACE(pipelining ? "server says Funcie-Pipelining" : "server as Lambda's");
    fake_runtime_api api({.pipelining = pipelining});
    for (int i = 0; i < 4; ++i) api.push(event("req-" + std::to_string(i), std::to_string(i)));

    funcie::runtime::run_handler(
        [](const invocation_request& request) {
          return invocation_response::success(request.payload);
        },
        against(api, 4));

    const auto posts = api.posts();
    ASSERT_EQ(posts.size(), 4u);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(posts[i].body, std::to_string(i));
    // After the last of its max_invocations, the runtime asks for no more.
    EXPECT_EQ(api.next_calls(), 4);
    EXPECT_EQ(api.pipelined_next_calls(), pipelining ? 3 : 0);
    EXPECT_EQ(api.connections(), 1);
  }
}

TEST(RunHandler, APipelinedNextLostWithADroppedConnectionIsSentAgain) {
  fake_runtime_api api({.close_after_each_answer = true, .pipelining = true});
  for (int i = 0; i < 5; ++i) api.push(event("req-" + std::to_string(i), std::to_string(i)));

  funcie::runtime::run_handler(
      [](const invocation_request& request) {
        return invocation_response::success(request.payload);
      },
      against(api, 5));

  const auto posts = api.posts();
  ASSERT_EQ(posts.size(), 5u) << "each result posted exactly once";
  for (int i = 0; i < 5; ++i) EXPECT_EQ(posts[i].body, std::to_string(i));
  EXPECT_EQ(api.next_calls(), 5);
}

TEST(RunHandler, KeepsGoingWhenAPipeliningRuntimeApiRefusesOneResult) {
  fake_runtime_api api({.post_status = 413, .pipelining = true});
  api.push(event("req-1", "{}"));
  api.push(event("req-2", "{}"));
  int calls = 0;
  testing::internal::CaptureStderr();
  funcie::runtime::run_handler(
      [&](const invocation_request&) {
        ++calls;
        return invocation_response::success("{}");
      },
      against(api, 2));
  const std::string stderr_text = testing::internal::GetCapturedStderr();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(api.pipelined_next_calls(), 1);
  EXPECT_NE(stderr_text.find("413"), std::string::npos) << stderr_text;
}

TEST(ReportInitError, PostsTheErrorToInitError) {
  fake_runtime_api api;
  const scoped_env env("AWS_LAMBDA_RUNTIME_API", api.address().c_str());
  funcie::runtime::report_init_error("Runtime.ConfigError", "FUNCIE_URL is not set");

  const auto posts = api.posts();
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].target, "/2018-06-01/runtime/init/error");
  EXPECT_EQ(posts[0].error_type, "Runtime.ConfigError");
  EXPECT_EQ(posts[0].content_type, funcie::runtime_api::error_content_type);
  const auto error = parse_error_body(posts[0].body);
  EXPECT_EQ(error.error_type, "Runtime.ConfigError");
  EXPECT_EQ(error.error_message, "FUNCIE_URL is not set");
}

TEST(RuntimeClient, NextWaitsLongerThanThePostTimeout) {
  fake_runtime_api api({.next_delay = std::chrono::milliseconds(600)});
  api.push(event("req-1", "late"));
  client::options options;
  options.io_timeout = std::chrono::milliseconds(100);

  const auto invocation = with_client<funcie::runtime_api::invocation>(
      api.address(), [](client& c) { return c.next(); }, options);
  EXPECT_EQ(invocation.context.request_id, "req-1");
  EXPECT_EQ(invocation.payload, "late");
}

TEST(RuntimeClient, ARefusedPostCarriesTheStatusAndTheRuntimeApisError) {
  fake_runtime_api api;
  try {
    with_client<void>(api.address(), [](client& c) -> asio::awaitable<void> {
      co_await c.post_response("never-issued", "{}", "application/json");
    });
    FAIL() << "expected client_error";
  } catch (const client_error& e) {
    EXPECT_EQ(e.code(), client_errc::http_status);
    EXPECT_EQ(e.http_status(), 400u);
    EXPECT_EQ(e.api_error_type(), "InvalidRequestID");
    EXPECT_EQ(e.api_error_message(), "unknown request id");
    EXPECT_NE(std::string(e.what()).find("never-issued/response"), std::string::npos);
  }
}

TEST(RuntimeClient, ANextAnswerWithoutRequestIdIsABadResponse) {
  fake_runtime_api api;
  api.push({{{std::string(header::deadline_ms), deadline_in_5s()}}, "{}"});
  try {
    with_client<funcie::runtime_api::invocation>(api.address(), [](client& c) { return c.next(); });
    FAIL() << "expected client_error";
  } catch (const client_error& e) {
    EXPECT_EQ(e.code(), client_errc::bad_response);
    EXPECT_NE(std::string(e.what()).find("Lambda-Runtime-Aws-Request-Id"), std::string::npos);
  }
}

TEST(RuntimeClient, NoListenerIsAConnectFailure) {
  client::options options;
  options.connect_attempts = 2;
  try {
    with_client<funcie::runtime_api::invocation>(
        "127.0.0.1:" + std::to_string(closed_port()), [](client& c) { return c.next(); }, options);
    FAIL() << "expected client_error";
  } catch (const client_error& e) {
    EXPECT_EQ(e.code(), client_errc::connect_failed);
    EXPECT_TRUE(e.is_connection_error());
    EXPECT_EQ(e.http_status(), std::nullopt);
  }
}

TEST(RuntimeClient, AnAddressWithoutPortIsRefused) {
  asio::io_context io;
  EXPECT_THROW(client(io.get_executor(), "localhost"), client_error);
  EXPECT_THROW(client(io.get_executor(), ":9001"), client_error);
}

}  // namespace
