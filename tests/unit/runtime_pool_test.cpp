// consumer::runtime_pool with a real runtime: a bash+curl bootstrap that reports back the
// Runtime API headers and the Lambda environment it was given, so the forwarded context is
// seen as the developer's runtime sees it. Also: the cloud's deadline is kept and enforced.
#include "consumer/runtime_pool.hpp"
#include "../support/env.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace funcie;
using std::chrono::milliseconds;

// Answers each event with its headers ("Header: value") and the environment ("K=V"), one per
// line; an event "sleep" sleeps first.
constexpr const char* bootstrap = R"(#!/usr/bin/env bash
set -u
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
h=$(mktemp); out=$(mktemp)
trap 'rm -f "$h" "$out"' EXIT
while true; do
  event=$(curl -sS -D "$h" "$api/invocation/next")
  id=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  if [[ "$event" == sleep ]]; then sleep 10; fi
  { grep -i '^Lambda-Runtime-' "$h" | tr -d '\r'; env | grep -E '^(AWS_|_HANDLER=)'; } > "$out"
  curl -sS -o /dev/null -X POST "$api/invocation/$id/response" --data-binary "@$out"
done
)";

std::int64_t now_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class RuntimePool : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "funcie_pool_bootstrap_" + std::to_string(::getpid());
    std::ofstream(path_) << bootstrap;
    ::chmod(path_.c_str(), 0755);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  consumer::runtime_pool_options options() const {
    consumer::runtime_pool_options o;
    o.command = {path_};
    o.concurrency = 2;
    o.app = "orders-app";
    return o;
  }

  static tunnel::request request(std::string payload, std::int64_t deadline_ms) {
    tunnel::request req;
    req.id = std::string(32, 'a');
    req.app = "orders-app";
    req.context.request_id = "8f5d2c1e-1111-2222-3333-444455556666";
    req.context.deadline_ms = deadline_ms;
    req.context.function_arn = "arn:aws:lambda:eu-west-3:123456789012:function:orders:live";
    req.context.trace_id =
        "Root=1-65f0a1b2-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1";
    req.context.client_context = R"({"client":{"installation_id":"x"},"custom":{"a":"b"}})";
    req.context.cognito_identity = R"({"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"})";
    req.context.tenant_id = "tenant-7";
    req.function.name = "orders";
    req.function.version = "42";
    req.function.memory_mb = 512;
    req.function.region = "eu-west-3";
    req.function.log_group = "/aws/lambda/orders";
    req.function.log_stream = "2026/01/02/[42]0123456789abcdef0123456789abcdef";
    req.payload = std::move(payload);
    return req;
  }

  /// Runs `req` on a fresh pool and shuts it down.
  runtime_api::result run(const tunnel::request& req, milliseconds* took = nullptr) {
    asio::io_context io;
    consumer::runtime_pool pool(io.get_executor(), options());
    auto start = std::chrono::steady_clock::now();
    auto future = asio::co_spawn(
        io,
        [&]() -> asio::awaitable<runtime_api::result> {
          auto r = co_await pool.run(req);
          if (took) {
            *took =
                std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
          }
          co_await pool.shut_down(milliseconds(500));
          co_return r;
        },
        asio::use_future);
    io.run_for(std::chrono::seconds(20));
    return future.get();
  }

  std::string path_;
};

std::map<std::string, std::string> lines_of(const std::string& body) {
  std::map<std::string, std::string> out;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(": ");
    auto eq = line.find('=');
    if (line.rfind("Lambda-Runtime-", 0) == 0 || line.rfind("lambda-runtime-", 0) == 0) {
      auto name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out[name] = line.substr(colon + 2);
    } else if (eq != std::string::npos) {
      out[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  return out;
}

TEST_F(RuntimePool, RestoresTheForwardedContextAndFunction) {
  // The developer's own keys would be inherited (developer_variables): none here, so that
  // a key in the handler's environment could only have come with the request.
  const test::scoped_env key("AWS_ACCESS_KEY_ID", nullptr);
  const test::scoped_env secret("AWS_SECRET_ACCESS_KEY", nullptr);
  const test::scoped_env token("AWS_SESSION_TOKEN", nullptr);
  const auto deadline = now_ms() + 60000;
  auto req = request("{}", deadline);
  auto r = run(req);
  ASSERT_EQ(r.outcome, runtime_api::result::kind::success) << r.body;
  auto got = lines_of(r.body);
  EXPECT_EQ(got["lambda-runtime-aws-request-id"], req.context.request_id);
  EXPECT_EQ(got["lambda-runtime-deadline-ms"], std::to_string(deadline));  // the cloud's
  EXPECT_EQ(got["lambda-runtime-invoked-function-arn"], req.context.function_arn);
  EXPECT_EQ(got["lambda-runtime-trace-id"], req.context.trace_id);
  EXPECT_EQ(got["lambda-runtime-client-context"], req.context.client_context);
  EXPECT_EQ(got["lambda-runtime-cognito-identity"], req.context.cognito_identity);
  EXPECT_EQ(got["lambda-runtime-aws-tenant-id"], req.context.tenant_id);
  EXPECT_EQ(got["AWS_LAMBDA_FUNCTION_NAME"], "orders");
  EXPECT_EQ(got["AWS_LAMBDA_FUNCTION_VERSION"], "42");
  EXPECT_EQ(got["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "512");
  EXPECT_EQ(got["AWS_REGION"], "eu-west-3");
  EXPECT_EQ(got["AWS_DEFAULT_REGION"], "eu-west-3");
  EXPECT_EQ(got["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/orders");
  EXPECT_EQ(got["AWS_LAMBDA_LOG_STREAM_NAME"], req.function.log_stream);
  EXPECT_EQ(got.count("AWS_SECRET_ACCESS_KEY"), 0u);
}

TEST_F(RuntimePool, FallsBackWhenTheFunctionIsNotDescribed) {
  auto req = request("{}", now_ms() + 60000);
  req.function = {};
  auto config = consumer::config_for(options(), req);
  EXPECT_EQ(config.name, "orders-app");
  EXPECT_EQ(config.region, "eu-west-3");  // from the ARN
  EXPECT_EQ(config.account, "123456789012");
  EXPECT_EQ(config.memory_mb, 128u);
  EXPECT_EQ(config.environment.count("AWS_LAMBDA_FUNCTION_VERSION"), 0u);
}

TEST_F(RuntimePool, TimesOutAtTheForwardedDeadline) {
  milliseconds took{};
  auto r = run(request("sleep", now_ms() + 1200), &took);
  EXPECT_EQ(r.outcome, runtime_api::result::kind::function_error);
  EXPECT_EQ(r.error_type, "Sandbox.Timedout");
  EXPECT_NE(r.body.find("deadline"), std::string::npos) << r.body;
  EXPECT_GE(took, milliseconds(1000));  // the runtime's start eats into it
  EXPECT_LT(took, milliseconds(3000));  // not the 900 s bound of an undated invocation
}

TEST_F(RuntimePool, APassedDeadlineNeverReachesTheRuntime) {
  auto r = run(request("{}", now_ms() - 10));
  EXPECT_EQ(r.error_type, "Sandbox.Timedout");
}

TEST_F(RuntimePool, SaysWhichEnvironmentRunsEachRequestAndReportsItsStart) {
  // What funcie connect needs to tie the handler's lines to their invocation, and for the
  // REPORT figures: the environment, its runtime's pid, the init of a cold start.
  asio::io_context io;
  auto o = options();
  std::vector<std::pair<unsigned, std::string>> handed;
  o.on_invoke = [&](unsigned env, std::string_view id) { handed.emplace_back(env, id); };
  consumer::runtime_pool pool(io.get_executor(), o);
  std::optional<consumer::environment_report> cold;
  std::optional<consumer::environment_report> warm;
  auto first = request("{}", now_ms() + 60000);
  auto second = first;
  second.context.request_id = "9a6e3d2f-1111-2222-3333-444455556666";
  auto future = asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await pool.run(first);
        cold = pool.report_of(handed.at(0).first);
        co_await pool.run(second);
        warm = pool.report_of(handed.at(1).first);
        co_await pool.shut_down(milliseconds(500));
      },
      asio::use_future);
  io.run_for(std::chrono::seconds(20));
  future.get();
  ASSERT_EQ(handed.size(), 2u);
  EXPECT_EQ(handed[0], std::make_pair(0u, first.context.request_id));
  EXPECT_EQ(handed[1], std::make_pair(0u, second.context.request_id));  // warm: the same one
  ASSERT_TRUE(cold && warm);
  EXPECT_GT(cold->pid, 0);
  EXPECT_EQ(warm->pid, cold->pid);
  EXPECT_GT(cold->init.count(), 0);  // the runtime started for the first request
  EXPECT_EQ(warm->init.count(), 0);  // and was warm for the second
  EXPECT_FALSE(pool.report_of(7));   // no such environment
}

TEST_F(RuntimePool, ACommandThatCannotStartIsAnInvalidEntrypoint) {
  path_ = "/nonexistent/bootstrap";
  auto r = run(request("{}", now_ms() + 5000));
  EXPECT_EQ(r.outcome, runtime_api::result::kind::function_error);
  EXPECT_EQ(r.error_type, "Runtime.InvalidEntrypoint");
}

}  // namespace
