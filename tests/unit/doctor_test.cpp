// funcie doctor's checks that need no broker: findings, the secret, env files, a function's
// environment through the forwarder's reader. The broker checks run in
// tests/integration/doctor.test.mjs against a real redis-server and SQS server.
#include "doctor/doctor.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace {

using funcie::doctor::level;
namespace doctor = funcie::doctor;

constexpr const char* good_secret = "q8X0c2m1YVb7sR3tN5kP9wZ4eL6hJ2aD";  // 32 characters

doctor::getenv_function env_of(std::map<std::string, std::string> vars) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [shared](const char* name) -> const char* {
    auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

std::string all_text(const doctor::report& r) {
  std::string out;
  for (const auto& f : r.findings()) out += doctor::format_finding(f);
  return out;
}

const doctor::finding* find(const doctor::report& r, const std::string& what) {
  for (const auto& f : r.findings()) {
    if (f.what == what) return &f;
  }
  return nullptr;
}

TEST(DoctorFormat, OneLinePerFindingAndTheFixBelow) {
  EXPECT_EQ(doctor::format_finding({level::ok, "app", "orders", {}}), "ok       app: orders\n");
  EXPECT_EQ(doctor::format_finding({level::failed, "broker", "refused", "start it"}),
            "FAILED   broker: refused\n         fix: start it\n");
  EXPECT_EQ(doctor::format_finding({level::warning, "secret", "none", {}}),
            "warning  secret: none\n");
}

TEST(DoctorFormat, SummaryCountsFailuresAndWarnings) {
  doctor::report r;
  std::vector<std::string> seen;
  r.on_finding = [&](const doctor::finding& f) { seen.push_back(f.what); };
  r.add(level::ok, "a", "fine");
  EXPECT_EQ(doctor::summary(r), "funcie doctor: all checks passed");
  r.add(level::warning, "b", "hmm", "do x");
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(doctor::summary(r), "funcie doctor: no check FAILED (1 warning)");
  r.add(level::failed, "c", "bad", "do y");
  r.add(level::failed, "d", "bad", "do z");
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(doctor::summary(r),
            "funcie doctor: 2 FAILED, 1 warning: fix the FAILED lines above and run it again");
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST(DoctorChecks, BackendUrl) {
  EXPECT_EQ(doctor::check_backend_url("").severity, level::failed);
  EXPECT_EQ(doctor::check_backend_url("http://x").severity, level::failed);
  EXPECT_EQ(doctor::check_backend_url("sqs://queue").severity, level::failed);
  EXPECT_EQ(doctor::check_backend_url("sqs://").severity, level::ok);
  const auto f = doctor::check_backend_url("redis://user:hunter2secret@cache:6380/2");
  EXPECT_EQ(f.severity, level::ok);
  EXPECT_EQ(f.detail.find("hunter2secret"), std::string::npos) << f.detail;
  const auto bad = doctor::check_backend_url("redis://:hunter2secret@cache:notaport");
  EXPECT_EQ(bad.severity, level::failed);
  EXPECT_EQ(doctor::format_finding(bad).find("hunter2secret"), std::string::npos);
}

TEST(DoctorChecks, AppName) {
  EXPECT_EQ(doctor::check_app("orders", "--app").severity, level::ok);
  EXPECT_EQ(doctor::check_app("", "--app").severity, level::failed);
  const auto f = doctor::check_app("has space", "--app");
  EXPECT_EQ(f.severity, level::failed);
  EXPECT_NE(f.fix.find("--app"), std::string::npos);
}

TEST(DoctorChecks, NoSecretIsAWarning) {
  auto s = doctor::check_secret({}, true, env_of({}));
  EXPECT_EQ(s.result.severity, level::warning);
  EXPECT_FALSE(s.keys.enabled());
  EXPECT_NE(s.result.fix.find("funcie secret"), std::string::npos);
}

TEST(DoctorChecks, ShortSecretFailsWithoutShowingIt) {
  auto s = doctor::check_secret({}, true, env_of({{"FUNCIE_SECRET", "tooshort99"}}));
  EXPECT_EQ(s.result.severity, level::failed);
  EXPECT_FALSE(s.result.fix.empty());
  EXPECT_EQ(doctor::format_finding(s.result).find("tooshort99"), std::string::npos);
}

TEST(DoctorChecks, GoodSecretShowsItsKeyId) {
  auto s = doctor::check_secret({}, true, env_of({{"FUNCIE_SECRET", good_secret}}));
  ASSERT_EQ(s.result.severity, level::ok) << s.result.detail;
  ASSERT_TRUE(s.keys.enabled());
  EXPECT_NE(s.result.detail.find(s.keys.current_key_id()), std::string::npos);
  EXPECT_EQ(s.result.detail.find(good_secret), std::string::npos);
}

TEST(DoctorEnvFile, KeyValueLines) {
  const auto env = doctor::parse_environment(
      "# the function's variables\n"
      "FUNCIE_BACKEND=redis://cache:6379\n"
      "\n"
      "export FUNCIE_APP='orders'\n"
      "FUNCIE_SECRET=\"a=b c\"\r\n"
      "EMPTY=\n",
      "fn.env");
  EXPECT_EQ(env.at("FUNCIE_BACKEND"), "redis://cache:6379");
  EXPECT_EQ(env.at("FUNCIE_APP"), "orders");
  EXPECT_EQ(env.at("FUNCIE_SECRET"), "a=b c");
  EXPECT_EQ(env.at("EMPTY"), "");
  EXPECT_EQ(env.size(), 4U);
}

TEST(DoctorEnvFile, JsonObjectAsTheAwsCliPrintsIt) {
  const auto env = doctor::parse_environment(
      R"({"FUNCIE_BACKEND": "sqs://", "FUNCIE_APP": "orders"})", "fn.json");
  EXPECT_EQ(env.at("FUNCIE_BACKEND"), "sqs://");
  EXPECT_EQ(env.at("FUNCIE_APP"), "orders");
}

TEST(DoctorEnvFile, ErrorsNameTheLineNeverTheValue) {
  try {
    doctor::parse_environment("A=1\nthis line has no equals sign secretvalue\n", "fn.env");
    FAIL() << "no error";
  } catch (const doctor::env_file_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("fn.env:2"), std::string::npos) << message;
    EXPECT_EQ(message.find("secretvalue"), std::string::npos) << message;
  }
  EXPECT_THROW(doctor::parse_environment("1BAD=x\n", "fn.env"), doctor::env_file_error);
  EXPECT_THROW(doctor::parse_environment(R"({"A": 1})", "fn.json"), doctor::env_file_error);
  EXPECT_THROW(doctor::parse_environment("{not json", "fn.json"), doctor::env_file_error);
}

TEST(DoctorFunctionEnv, NoBackendFails) {
  doctor::report r;
  const auto checked = doctor::check_function_environment({{"FUNCIE_APP", "orders"}}, {}, r);
  EXPECT_FALSE(checked.backend);
  ASSERT_NE(find(r, "FUNCIE_BACKEND"), nullptr);
  EXPECT_EQ(find(r, "FUNCIE_BACKEND")->severity, level::failed);
}

TEST(DoctorFunctionEnv, GoodRedisEnvironment) {
  doctor::report r;
  const auto checked = doctor::check_function_environment(
      {{"FUNCIE_BACKEND", "rediss://:tokenvalue123@cache.example:6379"},
       {"FUNCIE_APP", "orders"},
       {"FUNCIE_SECRET", good_secret},
       {"AWS_LAMBDA_EXEC_WRAPPER", "/opt/funcie-wrapper"}},
      {}, r);
  ASSERT_TRUE(checked.backend) << all_text(r);
  EXPECT_EQ(checked.backend->app, "orders");
  EXPECT_TRUE(checked.backend->keys.enabled());
  EXPECT_FALSE(r.failed()) << all_text(r);
  EXPECT_EQ(r.count(level::warning), 0U) << all_text(r);
  const auto text = all_text(r);
  EXPECT_EQ(text.find("tokenvalue123"), std::string::npos) << text;
  EXPECT_EQ(text.find(good_secret), std::string::npos) << text;
}

TEST(DoctorFunctionEnv, BadValueFailsNamingTheVariable) {
  doctor::report r;
  const auto checked = doctor::check_function_environment({{"FUNCIE_BACKEND", "redis://cache:6379"},
                                                           {"FUNCIE_APP", "orders"},
                                                           {"FUNCIE_HEARTBEAT_MS", "soon"}},
                                                          {}, r);
  EXPECT_FALSE(checked.backend);
  const auto* f = find(r, "function environment");
  ASSERT_NE(f, nullptr) << all_text(r);
  EXPECT_EQ(f->severity, level::failed);
  EXPECT_NE(f->detail.find("FUNCIE_HEARTBEAT_MS"), std::string::npos) << f->detail;
}

TEST(DoctorFunctionEnv, TyposWrapperAndTlsAreWarnings) {
  doctor::report r;
  const auto checked =
      doctor::check_function_environment({{"FUNCIE_BACKEND", "redis://cache:6379"},
                                          {"FUNCIE_APPNAME", "orders"},
                                          {"FUNCIE_TLS_VERIFY", "false"},
                                          {"AWS_LAMBDA_EXEC_WRAPPER", "/opt/other"}},
                                         "orders-fn", r);
  ASSERT_TRUE(checked.backend) << all_text(r);
  EXPECT_EQ(checked.backend->app, "orders-fn");  // the function's name
  ASSERT_NE(find(r, "variable FUNCIE_APPNAME"), nullptr) << all_text(r);
  EXPECT_EQ(find(r, "variable FUNCIE_APPNAME")->severity, level::warning);
  EXPECT_EQ(find(r, "FUNCIE_TLS_VERIFY")->severity, level::warning);
  EXPECT_EQ(find(r, "AWS_LAMBDA_EXEC_WRAPPER")->severity, level::warning);
  EXPECT_EQ(find(r, "secret")->severity, level::warning);
  EXPECT_FALSE(r.failed()) << all_text(r);
}

TEST(DoctorFunctionEnv, CaFileOfTheFunctionIsNotRequiredHere) {
  doctor::report r;
  const auto checked =
      doctor::check_function_environment({{"FUNCIE_BACKEND", "rediss://cache:6379"},
                                          {"FUNCIE_APP", "orders"},
                                          {"FUNCIE_CA_FILE", "/opt/does-not-exist/ca.pem"}},
                                         {}, r);
  ASSERT_TRUE(checked.backend) << all_text(r);
  EXPECT_EQ(find(r, "FUNCIE_CA_FILE")->severity, level::info);
}

TEST(DoctorFunctionEnv, SqsWithoutResponseQueueIsFireAndForget) {
  doctor::report r;
  const auto checked = doctor::check_function_environment(
      {{"FUNCIE_BACKEND", "sqs://"},
       {"FUNCIE_APP", "orders"},
       {"FUNCIE_REQUEST_QUEUE_URL",
        "https://sqs.eu-west-1.amazonaws.com/123456789012/funcie-orders-requests"}},
      {}, r);
  ASSERT_TRUE(checked.backend) << all_text(r);
  EXPECT_EQ(find(r, "FUNCIE_RESPONSE_QUEUE_URL")->severity, level::warning);
  EXPECT_EQ(checked.backend->sqs.request_queue_url,
            "https://sqs.eu-west-1.amazonaws.com/123456789012/funcie-orders-requests");
}

TEST(DoctorFunctionEnv, SqsWithoutRequestQueueFails) {
  doctor::report r;
  const auto checked = doctor::check_function_environment(
      {{"FUNCIE_BACKEND", "sqs://"}, {"FUNCIE_APP", "orders"}}, {}, r);
  EXPECT_FALSE(checked.backend);
  EXPECT_EQ(find(r, "FUNCIE_REQUEST_QUEUE_URL")->severity, level::failed);
}

TEST(DoctorFunctionEnv, ShortSecretFailsWithoutShowingIt) {
  doctor::report r;
  doctor::check_function_environment({{"FUNCIE_BACKEND", "redis://cache:6379"},
                                      {"FUNCIE_APP", "orders"},
                                      {"FUNCIE_SECRET", "shortsecret"}},
                                     {}, r);
  EXPECT_EQ(find(r, "secret")->severity, level::failed);
  EXPECT_EQ(all_text(r).find("shortsecret"), std::string::npos) << all_text(r);
}

}  // namespace
