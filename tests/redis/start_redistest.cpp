// funcie::start run locally (no AWS_LAMBDA_RUNTIME_API) against a real redis-server: the
// handler runs on the thread that called start(), with the function's environment set there,
// while the tunnel's event loop keeps the session alive on a thread of its own.
#include "../support/async.hpp"
#include "forwarder/forwarder.hpp"
#include "redis/redis_server.hpp"

#include <funcie/funcie.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

namespace funcie {
namespace {

using namespace std::chrono_literals;

TEST(StartLocally, RunsTheHandlerOnTheCallersThreadAndAnswersTheForwarder) {
  test::redis_server server;
  const std::string url = server.url();
  ::unsetenv("AWS_LAMBDA_RUNTIME_API");
  ::unsetenv("AWS_LAMBDA_FUNCTION_NAME");

  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<bool> on_caller{false};
  std::string function_name;  // written on the caller's thread, read after start returns
  std::atomic<int> calls{0};

  // The cloud side: a forwarder on a thread of its own offers invocations until the local
  // consumer takes one, then stops start() the way a developer does, with Ctrl-C.
  std::optional<runtime_api::result> answer;
  std::thread cloud([&] {
    forwarder::forwarder_config config = forwarder::config_from_environment(
        [&](const char* name) -> const char* {
          const std::string_view n(name);
          if (n == "FUNCIE_BACKEND") return url.c_str();
          if (n == "AWS_LAMBDA_FUNCTION_NAME") return "start-test";
          return nullptr;
        },
        "start-test");
    test::run_async(
        [&](boost::asio::io_context& io) -> boost::asio::awaitable<void> {
          forwarder::forwarder fwd(io.get_executor(), config);
          runtime_api::invocation invocation;
          invocation.context.request_id = "req-1";
          invocation.context.deadline_ms = 4102444800000;
          invocation.context.function_arn =
              "arn:aws:lambda:eu-west-1:123456789012:function:start-test";
          invocation.payload = R"({"name":"Ada"})";
          // Until the consumer has joined, nobody takes it (it would run in the cloud).
          while (!answer) {
            answer = co_await fwd.forward(invocation);
            if (!answer) co_await test::sleep_for(100ms);
          }
        },
        60s);
    std::raise(SIGINT);
  });

  start_options options;
  options.backend = url;
  const int code = start(
      "start-test",
      [&](const runtime::invocation_request& request) {
        on_caller = std::this_thread::get_id() == caller;
        const char* name = std::getenv("AWS_LAMBDA_FUNCTION_NAME");
        function_name = name != nullptr ? name : "";
        ++calls;
        return runtime::invocation_response::success("{\"hello\":" + request.payload + "}");
      },
      options);
  cloud.join();

  EXPECT_EQ(code, 0);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(on_caller) << "the handler ran on another thread than start()'s caller";
  EXPECT_EQ(function_name, "start-test");
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->outcome, runtime_api::result::kind::success) << answer->body;
  EXPECT_EQ(answer->body, R"({"hello":{"name":"Ada"}})");
  ::unsetenv("AWS_LAMBDA_FUNCTION_NAME");
}

}  // namespace
}  // namespace funcie
