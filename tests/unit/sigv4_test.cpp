// SigV4 against signatures AWS published: a wrong canonical form is a 403 from every AWS
// call. Each expected value below was copied from the source named beside it, never from
// our own output. tests/integration/sigv4_smithy.test.mjs compares with
// @smithy/signature-v4 on random requests.
#include "aws/sigv4.hpp"
#include "aws/credentials.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace aws = funcie::aws;

namespace {

// The credentials and time of AWS's SigV4 test suite (aws-c-auth
// tests/aws-signing-test-suite/v4/*/context.json).
aws::credentials suite_credentials(std::string session_token = {}) {
  aws::credentials c;
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  c.session_token = std::move(session_token);
  return c;
}

std::chrono::system_clock::time_point suite_time() {
  // 2015-08-30T12:36:00Z
  return std::chrono::system_clock::from_time_t(1440938160);
}

aws::signing_input suite_request(std::string method, std::string path, std::string query = {}) {
  aws::signing_input in;
  in.method = std::move(method);
  in.host = "example.amazonaws.com";
  in.path = std::move(path);
  in.query = std::move(query);
  in.region = "us-east-1";
  in.service = "service";
  in.time = suite_time();
  return in;
}

std::string suite_authorization(const std::string& signed_headers, const std::string& signature) {
  return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
         "SignedHeaders=" +
         signed_headers + ", Signature=" + signature;
}

}  // namespace

TEST(Sigv4, EmptyPayloadHashIsTheSha256OfNothing) {
  EXPECT_EQ(aws::sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sigv4, UriEncodeKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(aws::uri_encode("AZaz09-_.~", false), "AZaz09-_.~");
  EXPECT_EQ(aws::uri_encode("a b/c*d+e=f&g%h", false), "a%20b%2Fc%2Ad%2Be%3Df%26g%25h");
  EXPECT_EQ(aws::uri_encode("/a b/", true), "/a%20b/");
  EXPECT_EQ(aws::uri_encode("\xe1\x88\xb4", false), "%E1%88%B4");
}

// AWS's documented example (docs.aws.amazon.com "Create a canonical request for Signature
// Version 4" / "Examples of the complete Signature Version 4 signing process"): IAM
// ListUsers, canonical request hash f536975d…, signature 5d672d79….
TEST(Sigv4, IamListUsersExampleFromAwsDocs) {
  aws::signing_input in;
  in.method = "GET";
  in.host = "iam.amazonaws.com";
  in.path = "/";
  in.query = "Action=ListUsers&Version=2010-05-08";
  in.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  in.region = "us-east-1";
  in.service = "iam";
  in.time = suite_time();
  const auto s = aws::sign(in, suite_credentials());
  EXPECT_EQ(s.canonical_request,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
            "content-type:application/x-www-form-urlencoded; charset=utf-8\n"
            "host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "content-type;host;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(aws::sha256_hex(s.canonical_request),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n"
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
  EXPECT_EQ(s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date, "
            "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
  EXPECT_EQ(s.amz_date, "20150830T123600Z");
  EXPECT_EQ(s.security_token, "");
}

// The rest: awslabs/aws-c-auth tests/aws-signing-test-suite/v4/<case>/header-signed-request.txt
// (AWS's SigV4 test suite; the "-normalized" cases are the ones for every service but S3).

TEST(Sigv4, SuiteGetVanillaByRelativeRelativeNormalized) {
  // get-relative-relative-normalized: GET /example1/example2/../.. signs as GET / does
  // (get-vanilla's signature).
  const auto s = aws::sign(suite_request("GET", "/example1/example2/../.."), suite_credentials());
  EXPECT_EQ(
      s.authorization,
      suite_authorization("host;x-amz-date",
                          "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
  const auto vanilla = aws::sign(suite_request("GET", "/"), suite_credentials());
  EXPECT_EQ(vanilla.authorization, s.authorization);
}

TEST(Sigv4, SuiteGetVanillaQueryOrderKeyCase) {
  const auto s =
      aws::sign(suite_request("GET", "/", "Param2=value2&Param1=value1"), suite_credentials());
  EXPECT_EQ(
      s.authorization,
      suite_authorization("host;x-amz-date",
                          "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
}

TEST(Sigv4, SuiteGetVanillaQueryUnreserved) {
  const std::string unreserved =
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const auto s =
      aws::sign(suite_request("GET", "/", unreserved + "=" + unreserved), suite_credentials());
  EXPECT_EQ(
      s.authorization,
      suite_authorization("host;x-amz-date",
                          "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"));
}

TEST(Sigv4, SuiteGetVanillaUtf8Query) {
  const auto s = aws::sign(suite_request("GET", "/", "\xe1\x88\xb4=bar"), suite_credentials());
  EXPECT_EQ(
      s.authorization,
      suite_authorization("host;x-amz-date",
                          "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"));
  // The same parameter already percent-encoded signs alike.
  const auto encoded = aws::sign(suite_request("GET", "/", "%E1%88%B4=bar"), suite_credentials());
  EXPECT_EQ(encoded.authorization, s.authorization);
}

TEST(Sigv4, SuiteGetUtf8Path) {
  const auto s = aws::sign(suite_request("GET", "/\xe1\x88\xb4"), suite_credentials());
  EXPECT_EQ(
      s.authorization,
      suite_authorization("host;x-amz-date",
                          "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"));
}

TEST(Sigv4, SuiteGetSpaceNormalized) {
  const auto s = aws::sign(suite_request("GET", "/example space/"), suite_credentials());
  EXPECT_EQ(
      s.authorization,
      suite_authorization("host;x-amz-date",
                          "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"));
}

TEST(Sigv4, SuiteGetSlashesNormalized) {
  const auto s = aws::sign(suite_request("GET", "//example//"), suite_credentials());
  EXPECT_EQ(
      s.authorization,
      suite_authorization("host;x-amz-date",
                          "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"));
}

TEST(Sigv4, SuiteGetHeaderValueTrim) {
  auto in = suite_request("GET", "/");
  in.headers = {{"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}};
  const auto s = aws::sign(in, suite_credentials());
  EXPECT_EQ(
      s.authorization,
      suite_authorization("host;my-header1;my-header2;x-amz-date",
                          "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"));
}

TEST(Sigv4, SuitePostVanillaQuery) {
  const auto s = aws::sign(suite_request("POST", "/", "Param1=value1"), suite_credentials());
  EXPECT_EQ(
      s.authorization,
      suite_authorization("host;x-amz-date",
                          "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"));
}

TEST(Sigv4, SuitePostXWwwFormUrlencoded) {
  auto in = suite_request("POST", "/");
  in.payload = "Param1=value1";
  in.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                {"Content-Length", "13"},
                {"x-amz-content-sha256", aws::sha256_hex("Param1=value1")}};
  const auto s = aws::sign(in, suite_credentials());
  EXPECT_EQ(aws::sha256_hex("Param1=value1"),
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  EXPECT_EQ(
      s.authorization,
      suite_authorization("content-length;content-type;host;x-amz-content-sha256;x-amz-date",
                          "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"));
}

TEST(Sigv4, SuiteGetVanillaWithSessionTokenSignsTheToken) {
  const std::string token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
  const auto s = aws::sign(suite_request("GET", "/"), suite_credentials(token));
  EXPECT_EQ(
      s.authorization,
      suite_authorization("host;x-amz-date;x-amz-security-token",
                          "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"));
  EXPECT_EQ(s.security_token, token);
}

TEST(Sigv4, HostWithPortIsSignedAsSent) {
  auto in = suite_request("POST", "/");
  in.host = "127.0.0.1:4566";
  const auto s = aws::sign(in, suite_credentials());
  EXPECT_NE(s.canonical_request.find("\nhost:127.0.0.1:4566\n"), std::string::npos);
}

TEST(Sigv4, RefusesMissingKeyRegionOrService) {
  auto in = suite_request("GET", "/");
  EXPECT_THROW(aws::sign(in, aws::credentials{}), std::invalid_argument);
  in.region.clear();
  EXPECT_THROW(aws::sign(in, suite_credentials()), std::invalid_argument);
  in = suite_request("GET", "/");
  in.service.clear();
  EXPECT_THROW(aws::sign(in, suite_credentials()), std::invalid_argument);
}

TEST(Sigv4, NoMessageShowsTheSecretKey) {
  auto in = suite_request("GET", "/");
  in.region.clear();
  try {
    aws::sign(in, suite_credentials());
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_EQ(std::string(e.what()).find("wJalrXUtnFEMI"), std::string::npos);
  }
}
