#include "emulate/config.hpp"
#include "../support/env.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace funcie::emulate;
using funcie::test::scoped_env;

namespace {

function_config valid() {
  function_config config;
  config.name = "orders";
  config.command = {"./bootstrap"};
  return config;
}

bool has(const std::vector<std::string>& env, const std::string& entry) {
  return std::find(env.begin(), env.end(), entry) != env.end();
}

}  // namespace

TEST(EmulateConfig, DefaultsAreValid) {
  EXPECT_NO_THROW(validate(valid()));
}

TEST(EmulateConfig, OutOfRangeValuesNameTheFlag) {
  auto expect_error = [](function_config config, const std::string& flag) {
    try {
      validate(config);
      ADD_FAILURE() << "accepted a bad " << flag;
    } catch (const config_error& e) {
      EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
    }
  };
  auto c = valid();
  c.timeout = std::chrono::milliseconds(500);
  expect_error(c, "--timeout");
  c = valid();
  c.timeout = std::chrono::seconds(901);
  expect_error(c, "--timeout");
  c = valid();
  c.memory_mb = 64;
  expect_error(c, "--memory");
  c = valid();
  c.concurrency = 0;
  expect_error(c, "--concurrency");
  c = valid();
  c.name = "has space";
  expect_error(c, "--function");
  c = valid();
  c.command.clear();
  expect_error(c, "--");
}

TEST(EmulateConfig, EnvironmentAssignments) {
  auto c = valid();
  add_environment(c, "TABLE=orders=v2");
  EXPECT_EQ(c.environment.at("TABLE"), "orders=v2");
  add_environment(c, "EMPTY=");
  EXPECT_EQ(c.environment.at("EMPTY"), "");
  EXPECT_THROW(add_environment(c, "NOEQUALS"), config_error);
  EXPECT_THROW(add_environment(c, "1BAD=x"), config_error);
  EXPECT_THROW(add_environment(c, "AWS_REGION=eu-west-1"), config_error);
  EXPECT_THROW(add_environment(c, "AWS_SECRET_ACCESS_KEY=x"), config_error);
}

TEST(EmulateConfig, RuntimeSeesLambdasVariablesAndItsOwn) {
  const scoped_env secret("AWS_SECRET_ACCESS_KEY", "caller-secret");
  const scoped_env key("AWS_ACCESS_KEY_ID", "AKIACALLER");
  auto c = valid();
  c.memory_mb = 512;
  c.region = "eu-central-1";
  add_environment(c, "STAGE=dev");
  add_environment(c, "PATH=/opt/bin");
  auto env = runtime_environment(c, "127.0.0.1:4000", "2026/01/01/[$LATEST]abc");
  EXPECT_TRUE(has(env, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:4000"));
  EXPECT_TRUE(has(env, "AWS_LAMBDA_FUNCTION_NAME=orders"));
  EXPECT_TRUE(has(env, "AWS_LAMBDA_FUNCTION_VERSION=$LATEST"));
  EXPECT_TRUE(has(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512"));
  EXPECT_TRUE(has(env, "AWS_REGION=eu-central-1"));
  EXPECT_TRUE(has(env, "AWS_DEFAULT_REGION=eu-central-1"));
  EXPECT_TRUE(has(env, "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/orders"));
  EXPECT_TRUE(has(env, "AWS_LAMBDA_LOG_STREAM_NAME=2026/01/01/[$LATEST]abc"));
  EXPECT_TRUE(has(env, "_HANDLER=function.handler"));
  EXPECT_TRUE(has(env, "TZ=:UTC"));
  EXPECT_TRUE(has(env, "STAGE=dev"));
  EXPECT_TRUE(has(env, "PATH=/opt/bin")) << "the function's own PATH wins";
  EXPECT_EQ(std::count_if(env.begin(), env.end(),
                          [](const std::string& e) { return e.rfind("PATH=", 0) == 0; }),
            1);
  EXPECT_FALSE(std::any_of(env.begin(), env.end(), [](const std::string& e) {
    return e.rfind("AWS_SECRET_ACCESS_KEY=", 0) == 0 || e.rfind("AWS_ACCESS_KEY_ID=", 0) == 0;
  })) << "the caller's AWS credentials never reach the function unasked";
}

TEST(EmulateConfig, LogStreamNamesLookLikeLambdas) {
  auto name = new_log_stream_name();
  ASSERT_EQ(name.size(), std::string("2026/11/23/[$LATEST]").size() + 32);
  EXPECT_EQ(name.substr(10, 10), "/[$LATEST]");
  EXPECT_NE(new_log_stream_name(), name);
}

TEST(EmulateConfig, InheritedVariablesComeFromFunciesOwnEnvironment) {
  const scoped_env profile("AWS_PROFILE", "developer");
  const scoped_env key("AWS_ACCESS_KEY_ID", "AKIADEVELOPER");
  const scoped_env test_region("FUNCIE_TEST_REGION", "ap-south-1");
  const scoped_env runtime_api("AWS_LAMBDA_RUNTIME_API", "10.0.0.1:9001");
  const scoped_env region("AWS_REGION", "sa-east-1");
  const scoped_env unset("FUNCIE_TEST_UNSET", nullptr);
  auto c = valid();
  c.inherit_environment = {"AWS_PROFILE",       "AWS_ACCESS_KEY_ID",      "FUNCIE_TEST_UNSET",
                           "AWS_REGION",        "AWS_LAMBDA_RUNTIME_API", "BAD=NAME",
                           "FUNCIE_TEST_REGION"};
  add_environment(c, "FUNCIE_TEST_REGION=from-the-function");
  auto env = runtime_environment(c, "127.0.0.1:4000", "stream");
  EXPECT_TRUE(has(env, "AWS_PROFILE=developer")) << "no reserved-key rule for inherited names";
  EXPECT_TRUE(has(env, "AWS_ACCESS_KEY_ID=AKIADEVELOPER"));
  EXPECT_TRUE(has(env, "AWS_REGION=sa-east-1")) << "inherited after Lambda's own";
  EXPECT_TRUE(has(env, "FUNCIE_TEST_REGION=from-the-function")) << "the function's own win";
  EXPECT_TRUE(has(env, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:4000")) << "always funcie's";
  EXPECT_FALSE(std::any_of(env.begin(), env.end(), [](const std::string& e) {
    return e.rfind("FUNCIE_TEST_UNSET", 0) == 0 || e.rfind("BAD", 0) == 0;
  }));
}

TEST(EmulateConfig, WorkingDirectoryIsTheTaskRoot) {
  auto c = valid();
  auto env = runtime_environment(c, "127.0.0.1:4000", "stream");
  auto cwd = std::filesystem::current_path().string();
  EXPECT_TRUE(has(env, "LAMBDA_TASK_ROOT=" + cwd)) << "unchanged without one";
  c.working_directory = "/tmp/./funcie-app/";
  env = runtime_environment(c, "127.0.0.1:4000", "stream");
  EXPECT_TRUE(has(env, "LAMBDA_TASK_ROOT=/tmp/funcie-app"));
  EXPECT_TRUE(has(env, "LAMBDA_RUNTIME_DIR=/tmp/funcie-app"));
  c.working_directory = "relative/app";
  env = runtime_environment(c, "127.0.0.1:4000", "stream");
  EXPECT_TRUE(has(env, "LAMBDA_TASK_ROOT=" + cwd + "/relative/app")) << "made absolute";
}

TEST(EmulateConfig, AWorkingDirectoryMustExist) {
  auto c = valid();
  c.working_directory = "/nonexistent/funcie-app";
  try {
    validate(c);
    ADD_FAILURE() << "accepted a missing working directory";
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/funcie-app"), std::string::npos);
  }
  c.working_directory = std::filesystem::temp_directory_path().string();
  EXPECT_NO_THROW(validate(c));
}
