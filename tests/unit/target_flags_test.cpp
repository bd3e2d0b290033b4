// The target flags connect, status and doctor share (src/cli/target_flags.hpp): real command
// lines parsed by CLI11, a real funcie.toml in a fresh directory, the environment faked.
#include "cli/target_flags.hpp"

#include "cli/command.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

using namespace funcie;
using namespace funcie::cli;
namespace fs = std::filesystem;

namespace {

class TargetFlags : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "funcie-targets-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = fs::canonical(pattern);
    fs::create_directories(dir_ / "empty");
  }

  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void write_project(const std::string& text) {
    std::ofstream(dir_ / "funcie.toml", std::ios::binary) << text;
  }

  /// Parses `args` as the options of a command with the target flags.
  void parse(std::vector<std::string> args) {
    app_ = std::make_unique<CLI::App>("test");
    flags_ = target_flags{};
    add_target_flags(app_.get(), flags_);
    std::vector<const char*> argv{"funcie"};
    for (const auto& a : args) argv.push_back(a.c_str());
    app_->parse(static_cast<int>(argv.size()), argv.data());
  }

  getenv_fn env() const {
    return [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    };
  }

  /// The targets of the parsed flags, run in `cwd` (the test's directory by default).
  std::vector<project::function_spec> targets(const fs::path& cwd = {}) {
    const auto where = cwd.empty() ? dir_ : cwd;
    return resolve_targets(flags_, project_for(flags_, where.string()), env());
  }

  fs::path dir_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<CLI::App> app_;
  target_flags flags_;
};

TEST_F(TargetFlags, OneAppTakesTheFlagBeforeTheVariable) {
  env_ = {{"FUNCIE_BACKEND", "redis://from-env:6379"},
          {"FUNCIE_APP", "env-app"},
          {"FUNCIE_REQUEST_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/env-req"}};
  parse({});
  auto t = targets(dir_ / "empty");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].backend, "redis://from-env:6379");
  EXPECT_EQ(t[0].app, "env-app");
  EXPECT_EQ(t[0].request_queue, "https://sqs.eu-west-1.amazonaws.com/1/env-req");

  parse({"--backend", "redis://flag:1", "--app", "flag-app", "--request-queue",
         "https://sqs.eu-west-1.amazonaws.com/1/flag-req"});
  t = targets(dir_ / "empty");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].backend, "redis://flag:1");
  EXPECT_EQ(t[0].app, "flag-app");
  EXPECT_EQ(t[0].request_queue, "https://sqs.eu-west-1.amazonaws.com/1/flag-req");
}

TEST_F(TargetFlags, TheProjectComesBetweenTheFlagAndTheVariable) {
  write_project(
      "backend = \"redis://from-file:6379\"\n"
      "tls_verify = false\n"
      "[functions.orders]\ncommand = \"true\"\napp = \"orders-dev\"\n"
      "[functions.billing]\ncommand = \"true\"\nbackend = \"redis://billing-file:6379\"\n"
      "encrypt = false\n");
  env_ = {{"FUNCIE_BACKEND", "redis://from-env:6379"}, {"FUNCIE_APP", "env-app"}};
  parse({});
  auto t = targets();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].name, "orders");
  EXPECT_EQ(t[0].app, "orders-dev") << "the file's app, not FUNCIE_APP";
  EXPECT_EQ(t[0].backend, "redis://from-file:6379") << "the file's backend, not FUNCIE_BACKEND";
  EXPECT_FALSE(t[0].tls_verify);
  EXPECT_EQ(t[1].backend, "redis://billing-file:6379");
  EXPECT_FALSE(t[1].encrypt);

  // A flag wins over the file, for every function.
  parse({"--backend", "redis://flag:1", "--tls-insecure=false"});
  t = targets();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].backend, "redis://flag:1");
  EXPECT_EQ(t[1].backend, "redis://flag:1");
  EXPECT_TRUE(t[0].tls_verify) << "--tls-insecure=false given undoes the file's tls_verify";

  // The variable fills in what the file leaves out.
  write_project("[functions.orders]\ncommand = \"true\"\n");
  parse({});
  t = targets();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].backend, "redis://from-env:6379");
  EXPECT_EQ(t[0].app, "orders");
}

TEST_F(TargetFlags, TheProjectIsFoundAboveAndSkippedForOneApp) {
  write_project("backend = \"redis://from-file:6379\"\n[functions.orders]\ncommand = \"true\"\n");
  fs::create_directories(dir_ / "a" / "b");
  parse({});
  auto found = project_for(flags_, (dir_ / "a" / "b").string());
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(fs::path(*found), dir_ / "funcie.toml");

  // --app is one app, the project file aside (as a command after -- is for funcie connect).
  env_ = {{"FUNCIE_BACKEND", "redis://from-env:6379"}};
  parse({"--app", "other"});
  auto t = targets();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].app, "other");
  EXPECT_EQ(t[0].backend, "redis://from-env:6379");
}

TEST_F(TargetFlags, OnlyPicksFunctionsAndNamesTheUnknownOnes) {
  write_project(
      "backend = \"redis://x:1\"\n[functions.orders]\ncommand = \"true\"\n"
      "[functions.billing]\ncommand = \"true\"\n");
  parse({"--only", "billing"});
  auto t = targets();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].name, "billing");

  parse({"--only", "nope"});
  try {
    targets();
    FAIL() << "an unknown --only was accepted";
  } catch (const usage_error& e) {
    EXPECT_NE(std::string(e.what()).find("--only nope:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(it has orders, billing)"), std::string::npos)
        << e.what();
  }

  parse({"--app", "a", "--config", (dir_ / "funcie.toml").string()});
  EXPECT_THROW(project_for(flags_, dir_.string()), usage_error);
  fs::remove(dir_ / "funcie.toml");
  parse({"--only", "orders"});
  EXPECT_THROW(project_for(flags_, (dir_ / "empty").string()), usage_error)
      << "--only reads a project file, and there is none";
}

TEST_F(TargetFlags, FlagPathsAreAbsoluteAndCheckedWithOneMessage) {
  parse({"--backend", "redis://127.0.0.1:1", "--app", "a", "--ca-file", "no-such.pem"});
  auto t = targets(dir_ / "empty");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_TRUE(fs::path(t[0].ca_file).is_absolute());
  try {
    check_target(t[0], env());
    FAIL() << "an unreadable CA file was accepted";
  } catch (const usage_error& e) {
    EXPECT_EQ(std::string(e.what()), "--ca-file: cannot read '" + t[0].ca_file + "'");
  }
}

TEST_F(TargetFlags, CheckTargetSaysWhatIsMissingOrBad) {
  auto message = [&](const project::function_spec& spec) {
    try {
      check_target(spec, env());
    } catch (const util::user_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  project::function_spec spec;
  EXPECT_NE(message(spec).find("no broker: give --backend URL (or FUNCIE_BACKEND)"),
            std::string::npos);
  spec.backend = "redis://127.0.0.1:1";
  EXPECT_NE(message(spec).find("no app: give --app NAME (or FUNCIE_APP)"), std::string::npos);
  spec.app = "bad{app}";
  EXPECT_NE(message(spec).find("app"), std::string::npos);
  spec.app = "good";
  EXPECT_EQ(message(spec), "accepted");
  spec.backend = "mqtt://127.0.0.1";
  EXPECT_NE(message(spec).find("redis"), std::string::npos) << message(spec);
  spec.backend = "redis://:hunter2@127.0.0.1:notaport";
  EXPECT_EQ(message(spec).find("hunter2"), std::string::npos) << "no password in errors";
  spec.backend = "redis://127.0.0.1:1";
  env_ = {{"FUNCIE_SECRET", "short"}};
  EXPECT_NE(message(spec).find("FUNCIE_SECRET"), std::string::npos) << message(spec);
}

}  // namespace
