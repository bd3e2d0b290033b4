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

TEST(InvokeProtocol, ClientContextLimitIsOnTheBase64Text) {
  // AWS: "up to 3,583 bytes of base64-encoded data". 2,685 bytes of JSON encode to 3,580.
  const std::string fits = R"({"custom":{"p":")" + std::string(2685 - 20, 'a') + R"("}})";
  std::string encoded;
  {
    static constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned buffer = 0;
    int bits = 0;
    for (unsigned char c : fits) {
      buffer = (buffer << 8) | c;
      bits += 8;
      while (bits >= 6) {
        bits -= 6;
        encoded.push_back(alphabet[(buffer >> bits) & 63U]);
      }
    }
    if (bits > 0) encoded.push_back(alphabet[(buffer << (6 - bits)) & 63U]);
    while (encoded.size() % 4 != 0) encoded.push_back('=');
  }
  ASSERT_LE(encoded.size(), 3583U);
  EXPECT_EQ(decode_client_context(encoded), fits);
  EXPECT_THROW(decode_client_context(encoded + "eyJhIjoxfQ=="), protocol_error);
}

TEST(InvokeProtocol, RoutesTheOperationsToolsCall) {
  auto stream = parse_api_route("POST", "/2021-11-15/functions/fn/response-streaming-invocations");
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->op, operation::invoke_with_response_stream);
  EXPECT_EQ(stream->function.name, "fn");
  auto get = parse_api_route("GET", "/2015-03-31/functions/fn?Qualifier=%24LATEST");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->op, operation::get_function);
  EXPECT_EQ(get->function.qualifier, "$LATEST");
  auto config = parse_api_route("GET", "/2015-03-31/functions/fn/configuration");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->op, operation::get_function_configuration);
  auto list = parse_api_route("GET", "/2015-03-31/functions/?MaxItems=50");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->op, operation::list_functions);
  EXPECT_EQ(parse_api_route("POST", "/2015-03-31/functions/fn/invocations")->op, operation::invoke);
  EXPECT_FALSE(parse_api_route("GET", "/2015-03-31/functions/fn/invocations"));
  EXPECT_FALSE(parse_api_route("DELETE", "/2015-03-31/functions/fn"));
  EXPECT_THROW(parse_api_route("GET", "/2015-03-31/functions/bad%2"), protocol_error);
  EXPECT_TRUE(parse_log_type("Tail"));
  EXPECT_FALSE(parse_log_type("None"));
  EXPECT_FALSE(parse_log_type(""));
  EXPECT_THROW(parse_log_type("tail"), protocol_error);
}

TEST(InvokeProtocol, EventStreamMessagesAreFramedWithTheirCrcs) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926U);  // the CRC-32 check value
  const std::string message =
      encode_event_message({{":event-type", "PayloadChunk"}}, std::string("hi\0", 3));
  auto u32 = [&](std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(message[at + i]);
    return v;
  };
  const std::size_t headers = 1 + 11 + 1 + 2 + 12;
  EXPECT_EQ(u32(0), message.size());
  EXPECT_EQ(message.size(), 12 + headers + 3 + 4);
  EXPECT_EQ(u32(4), headers);
  EXPECT_EQ(u32(8), crc32(std::string_view(message).substr(0, 8)));
  EXPECT_EQ(message.substr(12, headers),
            std::string("\x0b:event-type\x07\x00\x0cPayloadChunk", headers));
  EXPECT_EQ(message.substr(12 + headers, 3), std::string("hi\0", 3));
  EXPECT_EQ(u32(message.size() - 4),
            crc32(std::string_view(message).substr(0, message.size() - 4)));
}
