// Region and endpoint as AWS SDKs resolve them: the variables, the profile in ~/.aws/config,
// its services section, the queue URL as the last resort, and errors that say what to set.
#include "aws/profile_files.hpp"
#include "aws/settings.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace aws = funcie::aws;
namespace fs = std::filesystem;

namespace {

// A HOME with ~/.aws/ in a temporary directory, and the variables a test sets: nothing of
// the developer's own AWS setup reaches these tests.
class AwsSettings : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/funcie-settings-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    home_ = pattern;
    fs::create_directories(home_ / ".aws");
    env_["HOME"] = home_.string();
  }
  void TearDown() override { fs::remove_all(home_); }

  void write(const std::string& relative, const std::string& text) {
    std::ofstream(home_ / relative) << text;
  }
  aws::getenv_fn getenv() const {
    return [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    };
  }
  aws::service_settings resolve(std::string_view hint = {}) {
    return aws::resolve_service(getenv(), "sqs", hint);
  }
  std::string error_of(std::string_view hint = {}) {
    try {
      resolve(hint);
    } catch (const aws::settings_error& e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path home_;
  std::map<std::string, std::string> env_;
};

constexpr const char* queue_url = "https://sqs.eu-central-1.amazonaws.com/123456789012/requests";

TEST_F(AwsSettings, RegionFromAwsRegionFirstThenDefaultRegionThenProfile) {
  write(".aws/config", "[default]\nregion = ap-south-1\n");
  env_["AWS_REGION"] = "eu-west-1";
  env_["AWS_DEFAULT_REGION"] = "us-west-2";
  EXPECT_EQ(resolve(queue_url).region, "eu-west-1");
  env_.erase("AWS_REGION");
  EXPECT_EQ(resolve(queue_url).region, "us-west-2");
  env_.erase("AWS_DEFAULT_REGION");
  EXPECT_EQ(resolve(queue_url).region, "ap-south-1");
}

TEST_F(AwsSettings, NamedProfileIsProfileSectionInConfig) {
  write(".aws/config",
        "[default]\nregion = ap-south-1\n"
        "[profile dev]\nregion = eu-north-1\n"
        "[qa]\nregion = us-east-2\n");
  env_["AWS_PROFILE"] = "dev";
  auto s = resolve();
  EXPECT_EQ(s.region, "eu-north-1");
  EXPECT_EQ(s.profile, "dev");
  // "[qa]" is how the credentials file names a profile, not the config file: not used.
  env_["AWS_PROFILE"] = "qa";
  EXPECT_EQ(resolve(queue_url).region, "eu-central-1");
}

TEST_F(AwsSettings, DefaultProfileMayBeWrittenProfileDefault) {
  write(".aws/config", "[profile default]\nregion = sa-east-1\n");
  EXPECT_EQ(resolve().region, "sa-east-1");
  EXPECT_EQ(resolve().profile, "default");
}

TEST_F(AwsSettings, ConfigFileFromAwsConfigFileWithTilde) {
  write("elsewhere.ini", "[default]\nregion = ca-central-1\n");
  env_["AWS_CONFIG_FILE"] = "~/elsewhere.ini";
  EXPECT_EQ(resolve().region, "ca-central-1");
}

TEST_F(AwsSettings, RegionFromQueueUrlWhenNothingElseSaysIt) {
  EXPECT_EQ(resolve(queue_url).region, "eu-central-1");
  EXPECT_EQ(resolve("https://sqs.cn-north-1.amazonaws.com.cn/123/q").region, "cn-north-1");
  EXPECT_EQ(resolve("https://us-west-1.queue.amazonaws.com/123/q").region, "us-west-1");
  EXPECT_EQ(resolve("https://vpce-0a1b-c2d3.sqs.ap-northeast-1.vpce.amazonaws.com/123/q").region,
            "ap-northeast-1");
}

TEST_F(AwsSettings, MissingRegionSaysWhatToSet) {
  const std::string message = error_of("http://127.0.0.1:4566/000000000000/requests");
  EXPECT_NE(message.find("no AWS region"), std::string::npos) << message;
  EXPECT_NE(message.find("AWS_REGION"), std::string::npos) << message;
  EXPECT_NE(message.find("profile default"), std::string::npos) << message;
  EXPECT_NE(message.find((home_ / ".aws/config").string()), std::string::npos) << message;
}

TEST_F(AwsSettings, MalformedRegionIsRefused) {
  env_["AWS_REGION"] = "eu west 1";
  EXPECT_NE(error_of().find("AWS_REGION is not a region name"), std::string::npos);
}

TEST_F(AwsSettings, DefaultEndpointIsTheRegionalOne) {
  env_["AWS_REGION"] = "eu-west-1";
  EXPECT_EQ(resolve().endpoint, "https://sqs.eu-west-1.amazonaws.com");
  env_["AWS_REGION"] = "cn-northwest-1";
  EXPECT_EQ(resolve().endpoint, "https://sqs.cn-northwest-1.amazonaws.com.cn");
}

TEST_F(AwsSettings, EndpointOrderServiceVariableGlobalVariableServicesSectionProfile) {
  write(".aws/config",
        "[default]\nregion = eu-west-1\nservices = local\nendpoint_url = http://127.0.0.1:1004\n"
        "[services local]\n"
        "s3 =\n  endpoint_url = http://127.0.0.1:9000\n"
        "sqs =\n  endpoint_url = http://127.0.0.1:1003/\n");
  env_["AWS_ENDPOINT_URL_SQS"] = "http://127.0.0.1:1001";
  env_["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1002";
  EXPECT_EQ(resolve().endpoint, "http://127.0.0.1:1001");
  env_.erase("AWS_ENDPOINT_URL_SQS");
  EXPECT_EQ(resolve().endpoint, "http://127.0.0.1:1002");
  env_.erase("AWS_ENDPOINT_URL");
  EXPECT_EQ(resolve().endpoint, "http://127.0.0.1:1003");  // the trailing '/' dropped
  write(".aws/config",
        "[default]\nregion = eu-west-1\nservices = local\nendpoint_url = http://127.0.0.1:1004\n"
        "[services local]\ns3 =\n  endpoint_url = http://127.0.0.1:9000\n");
  EXPECT_EQ(resolve().endpoint, "http://127.0.0.1:1004");
}

TEST_F(AwsSettings, ServicesSectionOfANamedProfile) {
  write(".aws/config",
        "[profile local]\nregion = us-east-1\nservices = localstack\n"
        "[services localstack]\nsqs =\n  endpoint_url = http://localhost:4566\n  "
        "other_setting = x\n");
  env_["AWS_PROFILE"] = "local";
  EXPECT_EQ(resolve().endpoint, "http://localhost:4566");
}

TEST_F(AwsSettings, IgnoreConfiguredEndpointUrlsIgnoresThemAll) {
  write(".aws/config",
        "[default]\nregion = eu-west-1\nservices = local\nendpoint_url = http://127.0.0.1:1004\n"
        "[services local]\nsqs =\n  endpoint_url = http://127.0.0.1:1003\n");
  env_["AWS_ENDPOINT_URL_SQS"] = "http://127.0.0.1:1001";
  env_["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1002";
  env_["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true";
  EXPECT_EQ(resolve().endpoint, "https://sqs.eu-west-1.amazonaws.com");
  env_.clear();
  env_["HOME"] = home_.string();
  write(".aws/config",
        "[default]\nregion = eu-west-1\nendpoint_url = http://127.0.0.1:1004\n"
        "ignore_configured_endpoint_urls = TRUE\n");
  EXPECT_EQ(resolve().endpoint, "https://sqs.eu-west-1.amazonaws.com");
}

TEST_F(AwsSettings, BadEndpointUrlNamesWhereItCameFrom) {
  env_["AWS_REGION"] = "eu-west-1";
  env_["AWS_ENDPOINT_URL_SQS"] = "ftp://127.0.0.1:21";
  const std::string message = error_of();
  EXPECT_NE(message.find("AWS_ENDPOINT_URL_SQS"), std::string::npos) << message;
}

TEST_F(AwsSettings, BrokenConfigFileNamesFileAndLine) {
  write(".aws/config", "[default]\nregion = eu-west-1\nthis line is no setting\n");
  const std::string message = error_of();
  EXPECT_NE(message.find((home_ / ".aws/config").string() + " line 3"), std::string::npos)
      << message;
}

TEST_F(AwsSettings, CommentsAndInlineCommentsAreIgnored) {
  write(".aws/config", "# mine\n; also mine\n[default]\nregion = eu-west-3 ; Paris\n");
  EXPECT_EQ(resolve().region, "eu-west-3");
}

// inih reads lines into a 200-byte buffer; session tokens are far longer.
TEST_F(AwsSettings, ValuesLongerThanInihsLineBufferAreReadWhole) {
  const std::string token(1500, 'T');
  write(".aws/credentials", "[default]\naws_session_token = " + token + "   ; note\nx = y\n");
  const aws::profile_files files = aws::load_profile_files(getenv());
  ASSERT_TRUE(files.in_credentials);
  EXPECT_EQ(files.credentials.at("aws_session_token"), token);
  EXPECT_EQ(files.credentials.at("x"), "y");
}

TEST(AwsProfileFiles, SubPropertyReadsIndentedLines) {
  EXPECT_EQ(aws::sub_property("endpoint_url = http://a:1\nmax_attempts = 3", "endpoint_url"),
            "http://a:1");
  EXPECT_EQ(aws::sub_property("max_attempts = 3", "endpoint_url"), "");
}

}  // namespace
