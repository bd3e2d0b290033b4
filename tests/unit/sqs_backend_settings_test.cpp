// The SQS backend's configuration: what a user sets (queues, tunables, region, endpoint) and
// the errors a wrong value gets, before any I/O.
#include "backend/sqs/sqs_backend.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace {

using funcie::sqs_backend::resolve_settings;
using funcie::tunnel::backend_config_error;
using funcie::tunnel::backend_options;

struct fake_env {
  std::map<std::string, std::string> vars;
  funcie::aws::getenv_fn fn() const {
    return [this](const char* name) -> const char* {
      const auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

constexpr const char* request_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/fn-requests";
constexpr const char* response_url =
    "https://sqs.eu-west-1.amazonaws.com/123456789012/fn-responses";

backend_options options() {
  backend_options o;
  o.url = "sqs://";
  o.app = "orders";
  return o;
}

fake_env base_env() {
  fake_env env;
  env.vars = {{"FUNCIE_REQUEST_QUEUE_URL", request_url},
              {"FUNCIE_RESPONSE_QUEUE_URL", response_url},
              {"HOME", "/nonexistent-home-for-test"}};
  return env;
}

std::string error_of(const backend_options& o, const fake_env& env) {
  try {
    resolve_settings(o, env.fn());
  } catch (const backend_config_error& e) {
    return e.what();
  }
  return "";
}

TEST(SqsSettings, QueuesFromTheEnvironmentAndRegionAndEndpointFromTheQueueUrl) {
  const auto env = base_env();
  const auto s = resolve_settings(options(), env.fn());
  EXPECT_EQ(s.request_queue, request_url);
  EXPECT_EQ(s.response_queue, response_url);
  EXPECT_EQ(s.service.region, "eu-west-1");
  EXPECT_EQ(s.service.endpoint, "https://sqs.eu-west-1.amazonaws.com");
  EXPECT_EQ(s.claim_window.count(), 2000);
  EXPECT_EQ(s.absent_for.count(), 30000);
  EXPECT_EQ(s.receive_batch, 10);
  EXPECT_EQ(s.max_message_bytes, 0u);
}

TEST(SqsSettings, OptionsWinOverTheEnvironmentAndTheSeedsNamesWork) {
  auto o = options();
  o.sqs.request_queue_url = "http://127.0.0.1:4566/000000000000/a";
  fake_env env;
  env.vars = {{"LAMBDA_PROXY_REQ_QUEUE_URL", request_url},
              {"LAMBDA_PROXY_RESP_QUEUE_URL", response_url},
              {"AWS_REGION", "us-east-1"},
              {"AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:4566"},
              {"HOME", "/nonexistent-home-for-test"}};
  const auto s = resolve_settings(o, env.fn());
  EXPECT_EQ(s.request_queue, "http://127.0.0.1:4566/000000000000/a");
  EXPECT_EQ(s.response_queue, response_url);
  EXPECT_EQ(s.service.region, "us-east-1");
  EXPECT_EQ(s.service.endpoint, "http://127.0.0.1:4566");
}

TEST(SqsSettings, NoResponseQueueMeansFireAndForget) {
  auto env = base_env();
  env.vars.erase("FUNCIE_RESPONSE_QUEUE_URL");
  EXPECT_TRUE(resolve_settings(options(), env.fn()).response_queue.empty());
}

TEST(SqsSettings, TunablesComeFromTheOptionsNeverFromTheEnvironment) {
  auto env = base_env();
  // Set in the environment, these are the edges' business (tunnel::read_sqs_options): the
  // backend does not look at them, even bad ones.
  env.vars["FUNCIE_SQS_CLAIM_MS"] = "soon";
  env.vars["FUNCIE_SQS_RECEIVE_BATCH"] = "1";
  auto o = options();
  o.sqs_tuning.claim_window = std::chrono::milliseconds(750);
  o.sqs_tuning.absent_for = std::chrono::milliseconds(0);
  o.sqs_tuning.max_message_bytes = 262144;
  o.sqs_tuning.presence_idle_max = std::chrono::milliseconds(60000);
  const auto s = resolve_settings(o, env.fn());
  EXPECT_EQ(s.presence_idle_max.count(), 60000);
  EXPECT_EQ(s.claim_window.count(), 750);
  EXPECT_EQ(s.absent_for.count(), 0);
  EXPECT_EQ(s.receive_batch, 10);
  EXPECT_EQ(s.max_message_bytes, 262144u);
  EXPECT_EQ(resolve_settings(options(), base_env().fn()).presence_idle_max.count(), 300000);

  // The idle bound is at least the period; a size under SQS's floor is refused.
  auto slow = options();
  slow.sqs_tuning.presence_every = std::chrono::milliseconds(20000);
  slow.sqs_tuning.presence_idle_max = std::chrono::milliseconds(5000);
  EXPECT_EQ(resolve_settings(slow, base_env().fn()).presence_idle_max.count(), 20000);
  auto tiny = options();
  tiny.sqs_tuning.max_message_bytes = 100;
  EXPECT_NE(error_of(tiny, base_env()).find("FUNCIE_SQS_MAX_MESSAGE_BYTES"), std::string::npos);
}

TEST(SqsSettings, ClearErrorsForMissingOrWrongQueuesAndUrls) {
  fake_env none;
  none.vars["HOME"] = "/nonexistent-home-for-test";
  EXPECT_NE(error_of(options(), none).find("FUNCIE_REQUEST_QUEUE_URL"), std::string::npos);

  auto same = base_env();
  same.vars["FUNCIE_RESPONSE_QUEUE_URL"] = request_url;
  EXPECT_NE(error_of(options(), same).find("use two queues"), std::string::npos);

  auto not_url = base_env();
  not_url.vars["FUNCIE_REQUEST_QUEUE_URL"] = "fn-requests";
  EXPECT_NE(error_of(options(), not_url).find("not a queue URL"), std::string::npos);

  auto o = options();
  o.url = "sqs://somewhere";
  EXPECT_NE(error_of(o, base_env()).find("just sqs://"), std::string::npos);

  auto bad_app = options();
  bad_app.app = "no spaces";
  EXPECT_NE(error_of(bad_app, base_env()).find("app name"), std::string::npos);

  auto fast = options();
  fast.timing.heartbeat = std::chrono::milliseconds(300);
  EXPECT_NE(error_of(fast, base_env()).find("at least 600 ms"), std::string::npos);

  // A queue URL that names no region, and no region anywhere else.
  auto no_region = base_env();
  no_region.vars["FUNCIE_REQUEST_QUEUE_URL"] = "http://127.0.0.1:4566/000000000000/a";
  EXPECT_NE(error_of(options(), no_region).find("region"), std::string::npos)
      << error_of(options(), no_region);
}

}  // namespace
