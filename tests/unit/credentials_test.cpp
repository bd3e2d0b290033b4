// The credential chain as a user meets it: which source wins, credential_process's
// failures, the container endpoint and IMDSv2 (against a fake on loopback), refresh before
// expiry, one resolution for concurrent callers, and messages that say what to do and never
// show a secret.
#include "aws/credentials.hpp"
#include "../support/async.hpp"
#include "http/server.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace aws = funcie::aws;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using funcie::test::run_async;

namespace {

// What a secret looks like in these tests: no message may ever contain it.
constexpr const char* secret = "SECRETwJalrXUtnFEMIK7MDENGbPxRfiCY";
constexpr const char* token = "TOKENIQoJb3JpZ2luX2VjEMr";

std::string iso_in(std::chrono::seconds from_now) {
  const std::time_t t =
      std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + from_now);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

// The JSON of the metadata endpoints (token field "Token").
std::string metadata_json(const std::string& key, std::chrono::seconds expires_in) {
  return R"({"Code":"Success","Type":"AWS-HMAC","AccessKeyId":")" + key +
         R"(","SecretAccessKey":")" + secret + R"(","Token":")" + token + R"(","Expiration":")" +
         iso_in(expires_in) + R"("})";
}

// A fake HTTP endpoint on loopback that records what it was asked.
class fake_endpoint {
 public:
  using answer_fn = std::function<funcie::http::response(const funcie::http::request&)>;
  fake_endpoint(asio::io_context& io, answer_fn answer) : answer_(std::move(answer)) {
    funcie::http::handlers h;
    h.on_request = [this](funcie::http::request& req) -> asio::awaitable<funcie::http::response> {
      seen.push_back(req);
      co_return answer_(req);
    };
    h.too_large = [](const funcie::http::request_header&) {
      return funcie::http::make_response(413, "", "text/plain");
    };
    server_ = std::make_unique<funcie::http::server>(
        io.get_executor(), asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0),
        funcie::http::server_options{}, std::move(h));
    server_->start();
  }
  ~fake_endpoint() { server_->stop(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  std::vector<funcie::http::request> seen;

 private:
  answer_fn answer_;
  std::unique_ptr<funcie::http::server> server_;
};

funcie::http::response reply(unsigned status, std::string body) {
  return funcie::http::make_response(status, std::move(body), "text/plain");
}

// An IMDSv2 that hands out `key` (asked through `key_for`), checking the session token.
fake_endpoint::answer_fn imds(std::function<std::string()> body_for_role) {
  return [body_for_role](const funcie::http::request& req) {
    const std::string target(req.target());
    if (target == "/latest/api/token") {
      if (req.method_string() != "PUT" ||
          funcie::http::header_value(req, "X-aws-ec2-metadata-token-ttl-seconds") != "21600") {
        return reply(400, "");
      }
      return reply(200, "imds-session-token");
    }
    if (funcie::http::header_value(req, "X-aws-ec2-metadata-token") != "imds-session-token") {
      return reply(401, "");
    }
    if (target == "/latest/meta-data/iam/security-credentials/") return reply(200, "app-role");
    if (target == "/latest/meta-data/iam/security-credentials/app-role") {
      return reply(200, body_for_role());
    }
    return reply(404, "");
  };
}

// A HOME with ~/.aws/ in a temporary directory and the variables a test sets: nothing of
// the developer's own AWS setup reaches these tests. IMDS is off unless a test points it
// at a fake.
class Credentials : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/funcie-credentials-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    fs::create_directories(dir_ / ".aws");
    env_["HOME"] = dir_.string();
    env_["AWS_EC2_METADATA_DISABLED"] = "true";
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& relative, const std::string& text) {
    std::ofstream(dir_ / relative) << text;
  }
  // An executable shell script in the temporary directory; returns its path.
  std::string script(const std::string& name, const std::string& body) {
    const fs::path path = dir_ / name;
    std::ofstream(path) << "#!/bin/sh\n" << body;
    fs::permissions(path, fs::perms::owner_all);
    return path.string();
  }
  int count_runs() const {
    std::ifstream in(dir_ / "runs");
    int lines = 0;
    for (std::string line; std::getline(in, line);) ++lines;
    return lines;
  }
  aws::getenv_fn getenv() const {
    return [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    };
  }
  aws::credential_options fast() const {
    aws::credential_options o;
    o.process_timeout = 5s;
    o.metadata_timeout = 1s;
    return o;
  }
  // The credentials of one get() on a fresh provider.
  aws::credentials get(aws::credential_options options) {
    aws::credentials out;
    run_async(
        [&](asio::io_context& io) -> asio::awaitable<void> {
          aws::credential_provider provider(io.get_executor(), getenv(), options);
          out = co_await provider.get();
        },
        30s);
    return out;
  }
  aws::credentials get() { return get(fast()); }
  std::string error_of(aws::credential_options options) {
    try {
      get(options);
    } catch (const aws::credentials_error& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.find(secret), std::string::npos) << message;
      EXPECT_EQ(message.find(token), std::string::npos) << message;
      return message;
    }
    return "(no error)";
  }
  std::string error_of() { return error_of(fast()); }
  void use_process(const std::string& command) {
    write(".aws/config", "[default]\ncredential_process = " + command + "\n");
  }

  fs::path dir_;
  std::map<std::string, std::string> env_;
};

// ---- environment ----

TEST_F(Credentials, EnvironmentKeysWithSessionTokenAsInsideLambda) {
  env_["AWS_ACCESS_KEY_ID"] = "ASIAENV";
  env_["AWS_SECRET_ACCESS_KEY"] = secret;
  env_["AWS_SESSION_TOKEN"] = token;
  const auto c = get();
  EXPECT_EQ(c.access_key_id, "ASIAENV");
  EXPECT_EQ(c.secret_access_key, secret);
  EXPECT_EQ(c.session_token, token);
  EXPECT_FALSE(c.expires);
  EXPECT_EQ(c.source, "environment");
}

TEST_F(Credentials, EnvironmentBeatsProfile) {
  write(".aws/credentials", "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = x\n");
  env_["AWS_ACCESS_KEY_ID"] = "AKIAENV";
  env_["AWS_SECRET_ACCESS_KEY"] = secret;
  EXPECT_EQ(get().access_key_id, "AKIAENV");
}

TEST_F(Credentials, HalfTheEnvironmentKeysSaysWhichIsMissing) {
  env_["AWS_SECRET_ACCESS_KEY"] = secret;
  const std::string message = error_of();
  EXPECT_NE(message.find("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"),
            std::string::npos)
      << message;
}

// ---- profiles ----

TEST_F(Credentials, ProfileKeysFromTheCredentialsFile) {
  write(".aws/credentials",
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = x\n"
        "[dev]\naws_access_key_id = AKIADEV\naws_secret_access_key = " +
            std::string(secret) + "\n");
  env_["AWS_PROFILE"] = "dev";
  const auto c = get();
  EXPECT_EQ(c.access_key_id, "AKIADEV");
  EXPECT_EQ(c.secret_access_key, secret);
  EXPECT_EQ(c.session_token, "");
  EXPECT_EQ(c.source, "profile dev (" + (dir_ / ".aws/credentials").string() + ")");
}

TEST_F(Credentials, ProfileKeysFromTheConfigFileProfileSection) {
  write(".aws/config",
        "[dev]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = x\n"
        "[profile dev]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = y\n");
  env_["AWS_PROFILE"] = "dev";
  EXPECT_EQ(get().access_key_id, "AKIACONFIG");
}

TEST_F(Credentials, CredentialsFileBeatsConfigFile) {
  write(".aws/config", "[default]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = y\n");
  write(".aws/credentials",
        "[default]\naws_access_key_id = AKIACREDS\naws_secret_access_key = x\n");
  EXPECT_EQ(get().access_key_id, "AKIACREDS");
}

TEST_F(Credentials, FilesNamedByTheirVariables) {
  write("creds.ini", "[default]\naws_access_key_id = AKIAMOVED\naws_secret_access_key = x\n");
  env_["AWS_SHARED_CREDENTIALS_FILE"] = (dir_ / "creds.ini").string();
  EXPECT_EQ(get().access_key_id, "AKIAMOVED");
}

TEST_F(Credentials, LongSessionTokenInTheCredentialsFileIsReadWhole) {
  const std::string long_token(1200, 'Q');
  write(".aws/credentials",
        "[default]\naws_access_key_id = ASIAFILE\naws_secret_access_key = x\n"
        "aws_session_token = " +
            long_token + "\n");
  EXPECT_EQ(get().session_token, long_token);
}

TEST_F(Credentials, UnknownAwsProfileIsAnErrorNotAFallThrough) {
  write(".aws/credentials", "[default]\naws_access_key_id = AKIA\naws_secret_access_key = x\n");
  env_["AWS_PROFILE"] = "prod";
  const std::string message = error_of();
  EXPECT_NE(message.find("AWS_PROFILE is prod, but no such profile"), std::string::npos) << message;
  EXPECT_NE(message.find((dir_ / ".aws/credentials").string()), std::string::npos) << message;
}

TEST_F(Credentials, AssumeRoleProfileSaysHowToExportCredentials) {
  write(".aws/config", "[profile admin]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = d\n");
  env_["AWS_PROFILE"] = "admin";
  const std::string message = error_of();
  EXPECT_NE(message.find("role_arn"), std::string::npos) << message;
  EXPECT_NE(message.find("aws configure export-credentials --profile admin"), std::string::npos)
      << message;
}

TEST_F(Credentials, KeyWithoutSecretInAProfileIsAnError) {
  write(".aws/credentials", "[default]\naws_access_key_id = AKIA\n");
  EXPECT_NE(error_of().find("needs both aws_access_key_id and aws_secret_access_key"),
            std::string::npos);
}

// ---- credential_process ----

TEST_F(Credentials, CredentialProcessWithTokenAndExpiration) {
  const std::string expires = iso_in(3600s);
  use_process(script("creds.sh", R"(echo '{"Version": 1, "AccessKeyId": "ASIAPROC", )"
                                 R"("SecretAccessKey": ")" +
                                     std::string(secret) + R"(", "SessionToken": ")" + token +
                                     R"(", "Expiration": ")" + expires + "\"}'\n"));
  const auto c = get();
  EXPECT_EQ(c.access_key_id, "ASIAPROC");
  EXPECT_EQ(c.secret_access_key, secret);
  EXPECT_EQ(c.session_token, token);
  ASSERT_TRUE(c.expires);
  const auto left = *c.expires - std::chrono::system_clock::now();
  EXPECT_GT(left, 3590s);
  EXPECT_LT(left, 3601s);
  EXPECT_EQ(c.source, "credential_process of profile default");
}

TEST_F(Credentials, CredentialProcessRunsThroughTheShellWithArgumentsAndMultilineJson) {
  const std::string path = script("creds.sh",
                                  "printf '{\\n  \"Version\": 1,\\n  \"AccessKeyId\": \"%s\",\\n'"
                                  " \"$1\"\n"
                                  "printf '  \"SecretAccessKey\": \"x\"\\n}\\n'\n"
                                  "echo 'a note for the user' >&2\n");
  use_process(path + " 'AKIA ARG'");
  EXPECT_EQ(get().access_key_id, "AKIA ARG");
}

TEST_F(Credentials, CredentialProcessPrintingNoJsonNeverShowsItsOutput) {
  use_process(
      script("creds.sh", "echo 'AccessKeyId=AKIA SecretAccessKey=" + std::string(secret) + "'\n"));
  const std::string message = error_of();
  EXPECT_NE(message.find("credential_process of profile default did not return a JSON object"),
            std::string::npos)
      << message;
}

TEST_F(Credentials, CredentialProcessFailingNamesItsExitStatus) {
  use_process(script("creds.sh",
                     "echo '{\"SecretAccessKey\": \"" + std::string(secret) + "\"}'\nexit 3\n"));
  const std::string message = error_of();
  EXPECT_NE(message.find("credential_process of profile default failed (exit status 3)"),
            std::string::npos)
      << message;
}

TEST_F(Credentials, CredentialProcessThatHangsIsStoppedAtTheBound) {
  use_process(script("creds.sh", "sleep 30\n"));
  auto options = fast();
  options.process_timeout = 300ms;
  const auto started = std::chrono::steady_clock::now();
  const std::string message = error_of(options);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_NE(message.find("did not finish within 0.3 s"), std::string::npos) << message;
}

TEST_F(Credentials, CredentialProcessWithExpiredCredentialsIsRefused) {
  use_process(script("creds.sh", R"(echo '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"x",)"
                                 R"("Expiration":")" +
                                     iso_in(-60s) + "\"}'\n"));
  EXPECT_NE(error_of().find("returned credentials that expired at"), std::string::npos);
}

TEST_F(Credentials, CredentialProcessWithoutVersionOneIsRefused) {
  use_process(script("creds.sh", R"(echo '{"Version":2,"AccessKeyId":"A","SecretAccessKey":"x"}')"
                                 "\n"));
  EXPECT_NE(error_of().find("Version other than 1"), std::string::npos);
  use_process(script("creds2.sh", R"(echo '{"AccessKeyId":"A","SecretAccessKey":"x"}')"
                                  "\n"));
  EXPECT_NE(error_of().find("no \"Version\": 1"), std::string::npos);
}

TEST_F(Credentials, CredentialProcessWithBadExpirationIsRefused) {
  use_process(script("creds.sh", R"(echo '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"x",)"
                                 R"("Expiration":"tomorrow"}')"
                                 "\n"));
  EXPECT_NE(error_of().find("not an ISO 8601 time"), std::string::npos);
}

// The script counts its runs in DIR/runs and answers with credentials expiring in `seconds`.
std::string counting_process(const std::string& dir, int seconds) {
  return "echo run >> " + dir + "/runs\nsleep 0.2\n" + "exp=$(date -u -d \"+" +
         std::to_string(seconds) +
         " seconds\" +%Y-%m-%dT%H:%M:%SZ)\n"
         "echo \"{\\\"Version\\\":1,\\\"AccessKeyId\\\":\\\"ASIA$(wc -l < " +
         dir +
         "/runs | tr -d ' ')\\\",\\\"SecretAccessKey\\\":\\\"x\\\","
         "\\\"Expiration\\\":\\\"$exp\\\"}\"\n";
}

TEST_F(Credentials, CachedWhileFreshAndConcurrentCallersShareOneRun) {
  use_process(script("creds.sh", counting_process(dir_.string(), 3600)));
  std::vector<std::string> keys;
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        aws::credential_provider provider(io.get_executor(), getenv(), fast());
        int done = 0;
        for (int i = 0; i < 3; ++i) {
          asio::co_spawn(
              io,
              [&]() -> asio::awaitable<void> {
                keys.push_back((co_await provider.get()).access_key_id);
                ++done;
              },
              asio::detached);
        }
        while (done < 3) co_await funcie::test::sleep_for(20ms);
        keys.push_back((co_await provider.get()).access_key_id);
      },
      30s);
  EXPECT_EQ(count_runs(), 1);
  EXPECT_EQ(keys, std::vector<std::string>(4, "ASIA1"));
}

TEST_F(Credentials, RefreshedWhenWithinFiveMinutesOfExpiry) {
  use_process(script("creds.sh", counting_process(dir_.string(), 240)));
  auto options = fast();
  options.min_refresh_interval = 0ms;
  std::vector<std::string> keys;
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        aws::credential_provider provider(io.get_executor(), getenv(), options);
        keys.push_back((co_await provider.get()).access_key_id);
        keys.push_back((co_await provider.get()).access_key_id);
      },
      30s);
  EXPECT_EQ(keys, (std::vector<std::string>{"ASIA1", "ASIA2"}));
}

TEST_F(Credentials, ShortLivedCredentialsAreNotFetchedBeforeEveryRequest) {
  use_process(script("creds.sh", counting_process(dir_.string(), 240)));
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        aws::credential_provider provider(io.get_executor(), getenv(), fast());
        for (int i = 0; i < 5; ++i) co_await provider.get();
      },
      30s);
  EXPECT_EQ(count_runs(), 1);
}

// ---- container endpoint ----

TEST_F(Credentials, ContainerFullUriWithAuthorizationToken) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        fake_endpoint agent(io, [](const funcie::http::request& req) {
          if (req.target() != "/v2/credentials/abc" ||
              funcie::http::header_value(req, "Authorization") != "Basic pod-token") {
            return reply(403, "");
          }
          return reply(200, metadata_json("ASIACONTAINER", 3600s));
        });
        env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = agent.url() + "/v2/credentials/abc";
        env_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "Basic pod-token";
        aws::credential_provider provider(io.get_executor(), getenv(), fast());
        const auto c = co_await provider.get();
        EXPECT_EQ(c.access_key_id, "ASIACONTAINER");
        EXPECT_EQ(c.session_token, token);
        EXPECT_TRUE(c.expires);
        EXPECT_EQ(c.source, "container endpoint");
        EXPECT_EQ(agent.seen.size(), 1u);
      },
      30s);
}

TEST_F(Credentials, ContainerTokenFileBeatsTokenVariable) {
  write("pod-token", "from-file\n");
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        fake_endpoint agent(io, [](const funcie::http::request& req) {
          return funcie::http::header_value(req, "Authorization") == "from-file"
                     ? reply(200, metadata_json("ASIAFILETOKEN", 3600s))
                     : reply(401, "");
        });
        env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = agent.url() + "/creds";
        env_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "from-variable";
        env_["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = (dir_ / "pod-token").string();
        aws::credential_provider provider(io.get_executor(), getenv(), fast());
        EXPECT_EQ((co_await provider.get()).access_key_id, "ASIAFILETOKEN");
      },
      30s);
}

TEST_F(Credentials, ContainerRefusalNamesTheTokenVariables) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        fake_endpoint agent(io, [](const funcie::http::request&) { return reply(401, secret); });
        env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = agent.url() + "/creds";
        aws::credential_provider provider(io.get_executor(), getenv(), fast());
        try {
          co_await provider.get();
          ADD_FAILURE() << "no error";
        } catch (const aws::credentials_error& e) {
          const std::string message = e.what();
          EXPECT_NE(message.find("HTTP 401"), std::string::npos) << message;
          EXPECT_NE(message.find("AWS_CONTAINER_AUTHORIZATION_TOKEN"), std::string::npos);
          EXPECT_EQ(message.find(secret), std::string::npos);
        }
      },
      30s);
}

TEST_F(Credentials, ContainerPlainHttpOnlyToLoopbackAndTheAgents) {
  env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://metadata.example.com/creds";
  const std::string message = error_of();
  EXPECT_NE(message.find("uses plain http to metadata.example.com"), std::string::npos) << message;
}

// ---- instance metadata (IMDSv2) ----

TEST_F(Credentials, InstanceMetadataTokenThenRoleThenKeys) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        fake_endpoint metadata(io, imds([] { return metadata_json("ASIAIMDS", 3600s); }));
        env_.erase("AWS_EC2_METADATA_DISABLED");
        env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = metadata.url() + "/";
        aws::credential_provider provider(io.get_executor(), getenv(), fast());
        const auto c = co_await provider.get();
        EXPECT_EQ(c.access_key_id, "ASIAIMDS");
        EXPECT_EQ(c.secret_access_key, secret);
        EXPECT_EQ(c.session_token, token);
        EXPECT_EQ(c.source, "instance metadata");
        std::vector<std::string> asked;
        for (const auto& req : metadata.seen) {
          asked.push_back(std::string(req.method_string()) + " " + std::string(req.target()));
        }
        EXPECT_EQ(asked,
                  (std::vector<std::string>{
                      "PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/",
                      "GET /latest/meta-data/iam/security-credentials/app-role"}));
      },
      30s);
}

TEST_F(Credentials, InstanceMetadataRefreshedNearExpiryAndKeptWhenRefreshFails) {
  int round = 0;
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        fake_endpoint metadata(io, imds([&] {
                                 ++round;
                                 if (round == 3) return std::string("{broken");
                                 return metadata_json("ASIAROUND" + std::to_string(round), 240s);
                               }));
        env_.erase("AWS_EC2_METADATA_DISABLED");
        env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = metadata.url();
        auto options = fast();
        options.min_refresh_interval = 0ms;
        aws::credential_provider provider(io.get_executor(), getenv(), options);
        EXPECT_EQ((co_await provider.get()).access_key_id, "ASIAROUND1");
        // Within 5 minutes of expiry: asked again.
        EXPECT_EQ((co_await provider.get()).access_key_id, "ASIAROUND2");
        // The third answer is broken: the old keys, still valid, keep working.
        EXPECT_EQ((co_await provider.get()).access_key_id, "ASIAROUND2");
      },
      30s);
  EXPECT_EQ(round, 3);
}

TEST_F(Credentials, InstanceWithoutRoleIsListedAmongTheSourcesTried) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        fake_endpoint metadata(io, [](const funcie::http::request& req) {
          return req.target() == "/latest/api/token" ? reply(200, "t") : reply(404, "");
        });
        env_.erase("AWS_EC2_METADATA_DISABLED");
        env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = metadata.url();
        aws::credential_provider provider(io.get_executor(), getenv(), fast());
        try {
          co_await provider.get();
          ADD_FAILURE() << "no error";
        } catch (const aws::credentials_error& e) {
          EXPECT_NE(std::string(e.what()).find("the instance has no IAM role"), std::string::npos)
              << e.what();
        }
      },
      30s);
}

TEST_F(Credentials, NoInstanceMetadataCostsLittle) {
  env_.erase("AWS_EC2_METADATA_DISABLED");
  env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:1";  // nothing listens
  const auto started = std::chrono::steady_clock::now();
  const std::string message = error_of();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_NE(message.find("instance metadata: no answer from http://127.0.0.1:1"), std::string::npos)
      << message;
}

// ---- nothing found ----

TEST_F(Credentials, NothingFoundListsEverySourceAndWhatToSet) {
  const std::string message = error_of();
  for (const char* expected :
       {"no AWS credentials found", "1. environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        "2. profile default (", "3. container endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "4. instance metadata: off (AWS_EC2_METADATA_DISABLED=true)",
        "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"}) {
    EXPECT_NE(message.find(expected), std::string::npos) << expected << "\n" << message;
  }
}

// Every broken source whose answer held a secret: the message names the source only.
TEST_F(Credentials, NoMessageEverShowsASecret) {
  const std::string leaky = std::string("{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"") + secret +
                            "\",\"Token\":\"" + token + "\",\"Expiration\":\"soon\"}";
  use_process(script("a.sh", "echo '" + leaky + "'\n"));
  error_of();  // error_of checks the message for the secret and the token
  use_process(script("b.sh", "echo '" + leaky + "'; exit 1\n"));
  error_of();
  use_process(script("c.sh", "echo '" + leaky.substr(0, 40) + "'\n"));
  error_of();
  write(".aws/config", "");
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        fake_endpoint agent(io, [&](const funcie::http::request&) { return reply(200, leaky); });
        env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = agent.url() + "/creds";
        aws::credential_provider provider(io.get_executor(), getenv(), fast());
        try {
          co_await provider.get();
          ADD_FAILURE() << "no error";
        } catch (const aws::credentials_error& e) {
          EXPECT_EQ(std::string(e.what()).find(secret), std::string::npos) << e.what();
          EXPECT_EQ(std::string(e.what()).find(token), std::string::npos) << e.what();
        }
      },
      30s);
}

}  // namespace
