// The SQS tunables (FUNCIE_SQS_*) as a typed struct, read at the edges only: the parser's
// values and messages, the CLI's target flags and the forwarder's config filling them in.
#include "tunnel/sqs_options.hpp"
#include "cli/command.hpp"
#include "cli/target_flags.hpp"
#include "forwarder/forwarder.hpp"
#include "tunnel/backend.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

using namespace funcie;
using std::chrono::milliseconds;

namespace {

struct fake_env {
  std::map<std::string, std::string> vars;
  std::function<const char*(const char*)> fn() const {
    return [this](const char* name) -> const char* {
      const auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

std::string error_of(const fake_env& env) {
  try {
    tunnel::read_sqs_options(env.fn());
  } catch (const tunnel::backend_config_error& e) {
    return e.what();
  }
  return "";
}

TEST(SqsOptions, DefaultsWithoutVariablesAndEachVariableSetsItsField) {
  EXPECT_EQ(tunnel::read_sqs_options(fake_env{}.fn()), tunnel::sqs_options{});
  const tunnel::sqs_options d;
  EXPECT_EQ(d.claim_window, milliseconds(2000));
  EXPECT_EQ(d.receive_batch, 10);

  fake_env env;
  env.vars = {{"FUNCIE_SQS_CLAIM_MS", "750"},        {"FUNCIE_SQS_ABSENT_MS", "0"},
              {"FUNCIE_SQS_PRESENCE_MS", "2000"},    {"FUNCIE_SQS_PRESENCE_IDLE_MS", "60000"},
              {"FUNCIE_SQS_RECEIVE_BATCH", "1"},     {"FUNCIE_SQS_MAX_MESSAGE_BYTES", "262144"},
              {"FUNCIE_SQS_UNKNOWN", "ignored here"}};
  const auto o = tunnel::read_sqs_options(env.fn());
  EXPECT_EQ(o.claim_window, milliseconds(750));
  EXPECT_EQ(o.absent_for, milliseconds(0));
  EXPECT_EQ(o.presence_every, milliseconds(2000));
  EXPECT_EQ(o.presence_idle_max, milliseconds(60000));
  EXPECT_EQ(o.receive_batch, 1);
  EXPECT_EQ(o.max_message_bytes, 262144u);
  EXPECT_EQ(tunnel::sqs_option_names().size(), 6u);
  EXPECT_NE(tunnel::describe(o).find("receive batch 1"), std::string::npos) << tunnel::describe(o);
}

TEST(SqsOptions, ABadValueNamesTheVariableTheRangeAndTheValue) {
  for (const auto& [name, bad, range] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"FUNCIE_SQS_CLAIM_MS", "soon", "from 100 to 60000"},
           {"FUNCIE_SQS_CLAIM_MS", "99", "from 100 to 60000"},
           {"FUNCIE_SQS_CLAIM_MS", "1500ms", "from 100 to 60000"},
           {"FUNCIE_SQS_RECEIVE_BATCH", "11", "from 1 to 10"},
           {"FUNCIE_SQS_RECEIVE_BATCH", "0", "from 1 to 10"},
           {"FUNCIE_SQS_MAX_MESSAGE_BYTES", "2000000", "from 0 to 1048576"},
           {"FUNCIE_SQS_MAX_MESSAGE_BYTES", "100", "at least 1024"},
           {"FUNCIE_SQS_ABSENT_MS", "-1", "from 0 to 3600000"},
           {"FUNCIE_SQS_PRESENCE_MS", "999", "from 1000 to 3600000"},
           {"FUNCIE_SQS_PRESENCE_IDLE_MS", "999", "from 1000 to 86400000"}}) {
    fake_env env;
    env.vars[name] = bad;
    const auto message = error_of(env);
    EXPECT_NE(message.find(name), std::string::npos) << message;
    EXPECT_NE(message.find(range), std::string::npos) << message;
    EXPECT_NE(message.find("'" + bad + "'"), std::string::npos) << message;
  }
  // An empty variable is an unset one.
  fake_env empty;
  empty.vars["FUNCIE_SQS_CLAIM_MS"] = "";
  EXPECT_EQ(tunnel::read_sqs_options(empty.fn()).claim_window, milliseconds(2000));
}

TEST(SqsOptions, TheCliFillsThemFromTheVariablesIntoTheBackendOptions) {
  CLI::App app("test");
  cli::target_flags flags;
  cli::add_target_flags(&app, flags);
  const char* argv[] = {"funcie", "--backend", "sqs://", "--app", "orders"};
  app.parse(5, argv);
  fake_env env;
  env.vars = {{"FUNCIE_SQS_RECEIVE_BATCH", "1"}, {"FUNCIE_SQS_CLAIM_MS", "900"}};
  const auto specs = cli::resolve_targets(flags, std::nullopt, env.fn());
  ASSERT_EQ(specs.size(), 1u);
  const auto backend = cli::backend_options_for(specs[0]);
  EXPECT_EQ(backend.sqs_tuning.receive_batch, 1);
  EXPECT_EQ(backend.sqs_tuning.claim_window, milliseconds(900));

  env.vars["FUNCIE_SQS_RECEIVE_BATCH"] = "twenty";
  try {
    cli::resolve_targets(flags, std::nullopt, env.fn());
    FAIL() << "a bad FUNCIE_SQS_RECEIVE_BATCH was accepted";
  } catch (const cli::usage_error& e) {  // exit 2
    const std::string message = e.what();
    EXPECT_NE(message.find("FUNCIE_SQS_RECEIVE_BATCH must be a whole number"), std::string::npos)
        << message;
    EXPECT_NE(message.find("'twenty'"), std::string::npos) << message;
  }
}

TEST(SqsOptions, FlagThenProjectKeyThenVariable) {
  std::string pattern = (std::filesystem::temp_directory_path() / "funcie-sqsopt-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::filesystem::path dir(pattern);
  std::ofstream(dir / "funcie.toml")
      << "sqs_receive_batch = 2\nsqs_claim_ms = 800\n"
         "[functions.orders]\ncommand = \"true\"\nsqs_claim_ms = 900\n";
  fake_env env;
  env.vars = {{"FUNCIE_SQS_RECEIVE_BATCH", "5"},
              {"FUNCIE_SQS_CLAIM_MS", "700"},
              {"FUNCIE_SQS_ABSENT_MS", "0"}};
  const auto resolve = [&](std::vector<const char*> args) {
    CLI::App app("test");
    cli::target_flags flags;
    cli::add_target_flags(&app, flags);
    args.insert(args.begin(), "funcie");
    app.parse(static_cast<int>(args.size()), args.data());
    auto specs = cli::resolve_targets(flags, (dir / "funcie.toml").string(), env.fn());
    EXPECT_EQ(specs.size(), 1u);
    return specs.at(0).sqs;
  };
  auto o = resolve({});
  EXPECT_EQ(o.claim_window, milliseconds(900)) << "the function's key, over the top level's";
  EXPECT_EQ(o.receive_batch, 2) << "the file's top level, over the variable";
  EXPECT_EQ(o.absent_for, milliseconds(0)) << "the variable, where the file says nothing";
  o = resolve({"--sqs-receive-batch", "1", "--sqs-claim-ms", "600"});
  EXPECT_EQ(o.receive_batch, 1);
  EXPECT_EQ(o.claim_window, milliseconds(600));
  try {
    resolve({"--sqs-receive-batch", "12"});
    ADD_FAILURE() << "--sqs-receive-batch 12 was accepted";
  } catch (const cli::usage_error& e) {
    EXPECT_NE(std::string(e.what()).find("--sqs-receive-batch must be a whole number"),
              std::string::npos)
        << e.what();
  }
  // A bad key in the file names the file, the key and the range.
  std::ofstream(dir / "funcie.toml")
      << "[functions.orders]\ncommand = \"true\"\nsqs_receive_batch = 11\n";
  try {
    resolve({});
    ADD_FAILURE() << "sqs_receive_batch = 11 was accepted";
  } catch (const project::project_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("funcie.toml:3:"), std::string::npos) << message;
    EXPECT_NE(message.find("'sqs_receive_batch': sqs_receive_batch must be a whole number of "
                           "messages from 1 to 10"),
              std::string::npos)
        << message;
  }
  std::filesystem::remove_all(dir);
}

TEST(SqsOptions, TheForwarderReadsThemForSqsAndRefusesABadOne) {
  fake_env env;
  env.vars = {{"FUNCIE_BACKEND", "sqs://"},
              {"AWS_LAMBDA_FUNCTION_NAME", "orders"},
              {"FUNCIE_SQS_ABSENT_MS", "0"},
              {"FUNCIE_SQS_PRESENCE_MS", "5000"}};
  const auto config = forwarder::config_from_environment(env.fn());
  EXPECT_EQ(config.backend.sqs_tuning.absent_for, milliseconds(0));
  EXPECT_EQ(config.backend.sqs_tuning.presence_every, milliseconds(5000));

  env.vars["FUNCIE_SQS_CLAIM_MS"] = "forever";
  try {
    forwarder::config_from_environment(env.fn());
    FAIL() << "a bad FUNCIE_SQS_CLAIM_MS was accepted";
  } catch (const forwarder::config_error& e) {
    EXPECT_NE(std::string(e.what()).find("FUNCIE_SQS_CLAIM_MS"), std::string::npos) << e.what();
  }
  // Another backend does not read them (nor refuses for them).
  env.vars["FUNCIE_BACKEND"] = "redis://127.0.0.1:6379";
  EXPECT_EQ(forwarder::config_from_environment(env.fn()).backend.sqs_tuning, tunnel::sqs_options{});
}

}  // namespace
