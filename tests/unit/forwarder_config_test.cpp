// The forwarder's FUNCIE_* configuration: defaults, accepted values, and a clear message
// naming the variable for every bad one, never with the broker's password.
#include "forwarder/forwarder.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <map>
#include <string>

using namespace funcie::forwarder;
using std::chrono::milliseconds;

namespace {

constexpr const char* password = "s3cretPassw0rd";

struct fake_env {
  std::map<std::string, std::string> vars;

  std::function<const char*(const char*)> getenv() const {
    return [this](const char* name) -> const char* {
      const auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

fake_env lambda_env() {
  fake_env env;
  env.vars = {
      {"FUNCIE_BACKEND", std::string("redis://dev:") + password + "@broker.example:6380/2"},
      {"AWS_LAMBDA_FUNCTION_NAME", "orders-api"},
      {"AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"},
      {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"},
      {"AWS_REGION", "eu-west-1"},
      {"AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/orders-api"},
      {"AWS_LAMBDA_LOG_STREAM_NAME", "2024/01/01/[$LATEST]abc"},
  };
  return env;
}

// The message of the config_error `env` gives; fails the test when there is none.
std::string error_of(const fake_env& env, std::string_view app = {}) {
  try {
    config_from_environment(env.getenv(), app);
  } catch (const config_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no config_error";
  return {};
}

void expect_clear_error(fake_env env, const std::string& name, const std::string& value,
                        const std::string& allowed) {
  env.vars[name] = value;
  const std::string message = error_of(env);
  EXPECT_NE(message.find(name), std::string::npos) << message;
  EXPECT_NE(message.find(allowed), std::string::npos) << message;
  EXPECT_EQ(message.find(password), std::string::npos) << message;
}

}  // namespace

TEST(ForwarderConfig, WithoutBackendForwardingIsOff) {
  fake_env env = lambda_env();
  env.vars.erase("FUNCIE_BACKEND");
  EXPECT_FALSE(config_from_environment(env.getenv()).enabled());
  env.vars["FUNCIE_BACKEND"] = "";
  EXPECT_FALSE(config_from_environment(env.getenv()).enabled());
}

TEST(ForwarderConfig, DefaultsAndLambdaVariables) {
  const fake_env env = lambda_env();
  const forwarder_config config = config_from_environment(env.getenv());
  EXPECT_TRUE(config.enabled());
  EXPECT_EQ(config.backend.url, env.vars.at("FUNCIE_BACKEND"));
  EXPECT_EQ(config.backend.app, "orders-api") << "the app defaults to the function's name";
  EXPECT_EQ(config.backend.timing.heartbeat, milliseconds(3000));
  EXPECT_EQ(config.backend.timing.connect_timeout, milliseconds(200));
  EXPECT_EQ(config.deadline_margin, milliseconds(500));
  EXPECT_EQ(config.backend.ca_file, "");
  EXPECT_TRUE(config.backend.tls_verify);
  const funcie::tunnel::function_info expected{.name = "orders-api",
                                               .version = "$LATEST",
                                               .memory_mb = 512,
                                               .region = "eu-west-1",
                                               .log_group = "/aws/lambda/orders-api",
                                               .log_stream = "2024/01/01/[$LATEST]abc",
                                               .handler = ""};
  EXPECT_EQ(config.function, expected);
}

TEST(ForwarderConfig, ValidValuesAreTaken) {
  fake_env env = lambda_env();
  env.vars["FUNCIE_APP"] = "team.orders_dev-1";
  env.vars["FUNCIE_HEARTBEAT_MS"] = "300";
  env.vars["FUNCIE_CONNECT_TIMEOUT_MS"] = "10000";
  env.vars["FUNCIE_DEADLINE_MARGIN_MS"] = "0";
  env.vars["FUNCIE_CA_FILE"] = "/proc/self/status";  // any readable file
  env.vars["FUNCIE_TLS_VERIFY"] = "FALSE";
  const forwarder_config config = config_from_environment(env.getenv());
  EXPECT_EQ(config.backend.app, "team.orders_dev-1");
  EXPECT_EQ(config.backend.timing.heartbeat, milliseconds(300));
  EXPECT_EQ(config.backend.timing.connect_timeout, milliseconds(10000));
  EXPECT_EQ(config.deadline_margin, milliseconds(0));
  EXPECT_EQ(config.backend.ca_file, "/proc/self/status");
  EXPECT_FALSE(config.backend.tls_verify);

  for (const auto& [text, value] : {std::pair{"true", true}, std::pair{"1", true},
                                    std::pair{"0", false}, std::pair{"false", false}}) {
    env.vars["FUNCIE_TLS_VERIFY"] = text;
    EXPECT_EQ(config_from_environment(env.getenv()).backend.tls_verify, value) << text;
  }
  env.vars["FUNCIE_HEARTBEAT_MS"] = "60000";
  env.vars["FUNCIE_DEADLINE_MARGIN_MS"] = "60000";
  env.vars["FUNCIE_CONNECT_TIMEOUT_MS"] = "10";
  const forwarder_config upper = config_from_environment(env.getenv());
  EXPECT_EQ(upper.backend.timing.heartbeat, milliseconds(60000));
  EXPECT_EQ(upper.deadline_margin, milliseconds(60000));
  EXPECT_EQ(upper.backend.timing.connect_timeout, milliseconds(10));
}

TEST(ForwarderConfig, AppArgumentOverridesFunciesApp) {
  fake_env env = lambda_env();
  env.vars["FUNCIE_APP"] = "from-env";
  EXPECT_EQ(config_from_environment(env.getenv(), "from-code").backend.app, "from-code");
  EXPECT_EQ(config_from_environment(env.getenv()).backend.app, "from-env");
}

TEST(ForwarderConfig, BadNumbersNameTheVariableAndTheRange) {
  const fake_env env = lambda_env();
  for (const char* bad : {"abc", "-1", "299", "60001", "3000ms", " 3000", "1e3", ""}) {
    if (*bad == '\0') continue;  // empty means the default
    expect_clear_error(env, "FUNCIE_HEARTBEAT_MS", bad, "from 300 to 60000");
  }
  for (const char* bad : {"9", "10001", "x", "99999999999999999999999"}) {
    expect_clear_error(env, "FUNCIE_CONNECT_TIMEOUT_MS", bad, "from 10 to 10000");
  }
  for (const char* bad : {"-5", "60001", "0.5"}) {
    expect_clear_error(env, "FUNCIE_DEADLINE_MARGIN_MS", bad, "from 0 to 60000");
  }
  expect_clear_error(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots", "whole number");
}

TEST(ForwarderConfig, BadBooleanAndFileAreRefused) {
  const fake_env env = lambda_env();
  for (const char* bad : {"yes", "on", "2", "treu"}) {
    expect_clear_error(env, "FUNCIE_TLS_VERIFY", bad, "true, false, 1 or 0");
  }
  expect_clear_error(env, "FUNCIE_CA_FILE", "/nonexistent/ca.pem", "cannot be read");
}

TEST(ForwarderConfig, BadAppNamesAreRefused) {
  fake_env env = lambda_env();
  for (const char* bad :
       {"has space", "a/b", "{tag}", "x:y",
        "0123456789012345678901234567890123456789012345678901234567890123456789"}) {
    expect_clear_error(env, "FUNCIE_APP", bad, "not a valid app name");
  }
  const std::string message = error_of(env, "bad name");
  EXPECT_NE(message.find("not a valid app name"), std::string::npos) << message;

  env.vars.erase("AWS_LAMBDA_FUNCTION_NAME");
  const std::string missing = error_of(env);
  EXPECT_NE(missing.find("FUNCIE_APP"), std::string::npos) << missing;
  EXPECT_NE(missing.find("AWS_LAMBDA_FUNCTION_NAME"), std::string::npos) << missing;
}

TEST(ForwarderConfig, BadBackendUrlsNeverShowThePassword) {
  const fake_env env = lambda_env();
  for (const std::string& bad :
       {std::string("broker.example:6379"), std::string("dev:") + password + "@broker.example",
        std::string("://dev:") + password + "@host"}) {
    expect_clear_error(env, "FUNCIE_BACKEND", bad, "redis://");
  }
  // What the backend itself refuses when it is made (unknown scheme, no host) is reported as
  // FUNCIE_BACKEND too, before any I/O.
  boost::asio::io_context io;
  for (const std::string& bad : {std::string("memcached://dev:") + password + "@host:11211",
                                 std::string("redis://dev:") + password + "@:6379"}) {
    fake_env e = env;
    e.vars["FUNCIE_BACKEND"] = bad;
    try {
      forwarder f(io.get_executor(), config_from_environment(e.getenv()));
      ADD_FAILURE() << "accepted " << funcie::tunnel::redact_url(bad);
    } catch (const config_error& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("FUNCIE_BACKEND"), std::string::npos) << message;
      EXPECT_EQ(message.find(password), std::string::npos) << message;
    }
  }
}

TEST(ForwarderConfig, OtherErrorsDoNotShowThePassword) {
  fake_env env = lambda_env();
  env.vars["FUNCIE_HEARTBEAT_MS"] = "often";
  const std::string message = error_of(env);
  EXPECT_EQ(message.find(password), std::string::npos) << message;
}

TEST(ForwarderConfig, SecretMakesKeysAndNeverShowsInErrors) {
  fake_env env = lambda_env();
  EXPECT_FALSE(config_from_environment(env.getenv()).backend.keys.enabled());

  const std::string secret = "correct horse battery staple 42";
  env.vars["FUNCIE_SECRET"] = secret;
  const auto sealed = config_from_environment(env.getenv()).backend.keys;
  ASSERT_TRUE(sealed.enabled());
  EXPECT_TRUE(sealed.encrypts());
  EXPECT_EQ(sealed.key_ids().size(), 1u);

  env.vars["FUNCIE_SECRET_PREVIOUS"] = "the secret we used last month";
  env.vars["FUNCIE_ENCRYPT"] = "false";
  const auto rotating = config_from_environment(env.getenv()).backend.keys;
  EXPECT_EQ(rotating.key_ids().size(), 2u);
  EXPECT_EQ(rotating.current_key_id(), sealed.current_key_id());
  EXPECT_FALSE(rotating.encrypts());

  env.vars["FUNCIE_SECRET"] = "short-s3cret";
  try {
    config_from_environment(env.getenv());
    FAIL() << "a 12-byte secret was accepted";
  } catch (const config_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("FUNCIE_SECRET"), std::string::npos) << message;
    EXPECT_EQ(message.find("short-s3cret"), std::string::npos) << message;
  }

  env.vars.erase("FUNCIE_SECRET");
  try {
    config_from_environment(env.getenv());
    FAIL() << "a previous secret without a current one was accepted";
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("FUNCIE_SECRET_PREVIOUS"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find("last month"), std::string::npos);
  }
}
