#include "emulate/invoke_protocol.hpp"

#include <gtest/gtest.h>

using namespace funcie::emulate;

TEST(InvokeProtocol, AcceptsEveryFormOfFunctionName) {
  auto plain = parse_invoke_target("/2015-03-31/functions/my-fn/invocations");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->name, "my-fn");
  EXPECT_EQ(plain->qualifier, "");

  auto arn = parse_invoke_target(
      "/2015-03-31/functions/"
      "arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Amy-fn%3Aprod/"
      "invocations");
  ASSERT_TRUE(arn);
  EXPECT_EQ(arn->name, "my-fn");
  EXPECT_EQ(arn->qualifier, "prod");
  EXPECT_EQ(arn->region, "eu-west-1");
  EXPECT_EQ(arn->account, "123456789012");

  auto partial = parse_invoke_target("/2015-03-31/functions/123456789012:function:f/invocations");
  ASSERT_TRUE(partial);
  EXPECT_EQ(partial->name, "f");
  EXPECT_EQ(partial->account, "123456789012");

  auto with_query = parse_invoke_target("/2015-03-31/functions/f/invocations?Qualifier=%24LATEST");
  ASSERT_TRUE(with_query);
  EXPECT_EQ(with_query->qualifier, "$LATEST");
  auto colon = parse_invoke_target("/2015-03-31/functions/f:7/invocations");
  ASSERT_TRUE(colon);
  EXPECT_EQ(colon->qualifier, "7");
}

TEST(InvokeProtocol, OtherPathsAreNotTheInvokeRoute) {
  EXPECT_FALSE(parse_invoke_target("/"));
  EXPECT_FALSE(parse_invoke_target("/2015-03-31/functions/f"));
  EXPECT_FALSE(parse_invoke_target("/2015-03-31/functions//invocations"));
  EXPECT_FALSE(parse_invoke_target("/2015-03-31/functions/a/b/invocations"));
  EXPECT_FALSE(parse_invoke_target("/2015-03-31/functions/invocations"));
}

TEST(InvokeProtocol, MalformedNamesAreRefusedWithAReason) {
  for (const char* bad :
       {"/2015-03-31/functions/bad%20name/invocations", "/2015-03-31/functions/%zz/invocations",
        "/2015-03-31/functions/abc%4/invocations", "/2015-03-31/functions/a:b:c/invocations",
        "/2015-03-31/functions/arn:aws:s3:r:a:function:f/invocations",
        "/2015-03-31/functions/f:1/invocations?Qualifier=2",
        "/2015-03-31/functions/f/invocations?Qualifier=a%20b"}) {
    EXPECT_THROW(parse_invoke_target(bad), protocol_error) << bad;
  }
  std::string long_name(65, 'a');
  EXPECT_THROW(parse_invoke_target("/2015-03-31/functions/" + long_name + "/invocations"),
               protocol_error);
}

TEST(InvokeProtocol, JsonCheckAgreesWithTheStandard) {
  for (const char* good :
       {"{}", "[]", "\"s\"", "1", "-0.5e3", "true", "null", " {\"a\": [1, {}]} ", "\"\\u00e9\""}) {
    EXPECT_TRUE(is_json(good)) << good;
  }
  for (const char* bad : {"", "{", "{}}", "{'a':1}", "01", "nul", "[1,]", "{} {}", "\"\\x\""}) {
    EXPECT_FALSE(is_json(bad)) << bad;
  }
  std::string big = "\"" + std::string(6 * 1024 * 1024, 'x') + "\"";
  EXPECT_TRUE(is_json(big));
}

TEST(InvokeProtocol, InvocationTypes) {
  EXPECT_EQ(parse_invocation_type(""), invocation_type::request_response);
  EXPECT_EQ(parse_invocation_type("RequestResponse"), invocation_type::request_response);
  EXPECT_EQ(parse_invocation_type("Event"), invocation_type::event);
  EXPECT_EQ(parse_invocation_type("DryRun"), invocation_type::dry_run);
  EXPECT_THROW(parse_invocation_type("event"), protocol_error);
}

TEST(InvokeProtocol, ClientContextIsBase64OfJson) {
  EXPECT_EQ(decode_client_context("eyJjdXN0b20iOnsiYSI6MX19"), R"({"custom":{"a":1}})");
  EXPECT_THROW(decode_client_context("not base64!"), protocol_error);
  EXPECT_THROW(decode_client_context("bm90IGpzb24="), protocol_error);  // "not json"
}

TEST(InvokeProtocol, ServiceErrorsUseAwsShape) {
  EXPECT_EQ(format_service_error({404, "ResourceNotFoundException", "Function not found: x"}),
            R"({"Type":"User","message":"Function not found: x"})");
}
