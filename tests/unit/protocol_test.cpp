#include "runtime_api/protocol.hpp"

#include <gtest/gtest.h>

#include <map>

namespace rt = funcie::runtime_api;

namespace {

rt::header_lookup lookup_in(std::map<std::string, std::string, std::less<>> headers) {
  return [headers = std::move(headers)](std::string_view name) -> std::optional<std::string_view> {
    auto it = headers.find(name);
    if (it == headers.end()) return std::nullopt;
    return std::string_view(it->second);
  };
}

}  // namespace

TEST(RuntimeApiProtocol, ParsesEveryContextHeader) {
  auto context = rt::parse_invocation_headers(lookup_in({
      {"Lambda-Runtime-Aws-Request-Id", "8476a536-e9f4-11e8-9739-2dfe598c3fcd"},
      {"Lambda-Runtime-Deadline-Ms", "1542409706888"},
      {"Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-2:123456789012:function:f"},
      {"Lambda-Runtime-Trace-Id",
       "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419"},
      {"Lambda-Runtime-Client-Context", R"({"custom":{"a":1}})"},
      {"Lambda-Runtime-Cognito-Identity", R"({"cognitoIdentityId":"x"})"},
      {"Lambda-Runtime-Aws-Tenant-Id", "tenant-7"},
  }));
  EXPECT_EQ(context.request_id, "8476a536-e9f4-11e8-9739-2dfe598c3fcd");
  EXPECT_EQ(context.deadline_ms, 1542409706888);
  EXPECT_EQ(context.function_arn, "arn:aws:lambda:us-east-2:123456789012:function:f");
  EXPECT_EQ(context.trace_id, "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419");
  EXPECT_EQ(context.client_context, R"({"custom":{"a":1}})");
  EXPECT_EQ(context.cognito_identity, R"({"cognitoIdentityId":"x"})");
  EXPECT_EQ(context.tenant_id, "tenant-7");
}

TEST(RuntimeApiProtocol, HeadersRoundTripThroughTheServerSide) {
  rt::invocation_context sent{"id-1",
                              1700000000123,
                              "arn:aws:lambda:eu-west-1:1:function:g",
                              "Root=1-a-b",
                              "",
                              R"({"id":"c"})",
                              ""};
  std::string deadline;
  auto headers = rt::invocation_headers(sent, deadline);
  std::map<std::string, std::string, std::less<>> map;
  for (auto [name, value] : headers) map.emplace(std::string(name), std::string(value));
  EXPECT_EQ(map.count("Lambda-Runtime-Client-Context"), 0u) << "absent fields are not sent";
  EXPECT_EQ(rt::parse_invocation_headers(lookup_in(map)), sent);
}

TEST(RuntimeApiProtocol, RefusesMissingOrMalformedRequiredHeaders) {
  EXPECT_THROW(rt::parse_invocation_headers(lookup_in({{"Lambda-Runtime-Deadline-Ms", "1"}})),
               rt::protocol_error);
  EXPECT_THROW(rt::parse_invocation_headers(lookup_in({{"Lambda-Runtime-Aws-Request-Id", "a"}})),
               rt::protocol_error);
  for (const char* bad : {"", "-5", "12x", "1.5", "99999999999999999999999"}) {
    EXPECT_THROW(rt::parse_invocation_headers(lookup_in({{"Lambda-Runtime-Aws-Request-Id", "a"},
                                                         {"Lambda-Runtime-Deadline-Ms", bad}})),
                 rt::protocol_error)
        << bad;
  }
  EXPECT_THROW(rt::parse_invocation_headers(lookup_in({{"Lambda-Runtime-Aws-Request-Id", "a b\r\n"},
                                                       {"Lambda-Runtime-Deadline-Ms", "1"}})),
               rt::protocol_error);
}

TEST(RuntimeApiProtocol, RoutesTheFourRuntimeCalls) {
  auto next = rt::parse_route("GET", "/2018-06-01/runtime/invocation/next");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->kind, rt::route_kind::next);
  auto response = rt::parse_route("POST", "/2018-06-01/runtime/invocation/abc-1/response");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->kind, rt::route_kind::response);
  EXPECT_EQ(response->request_id, "abc-1");
  auto error = rt::parse_route("POST", "/2018-06-01/runtime/invocation/abc-1/error");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind, rt::route_kind::error);
  auto init = rt::parse_route("POST", "/2018-06-01/runtime/init/error");
  ASSERT_TRUE(init);
  EXPECT_EQ(init->kind, rt::route_kind::init_error);

  EXPECT_FALSE(rt::parse_route("POST", "/2018-06-01/runtime/invocation/next"));
  EXPECT_FALSE(rt::parse_route("GET", "/2018-06-01/runtime/invocation/a/response"));
  EXPECT_FALSE(rt::parse_route("POST", "/2018-06-01/runtime/invocation/a/other"));
  EXPECT_FALSE(rt::parse_route("GET", "/"));
  EXPECT_THROW(rt::parse_route("POST", "/2018-06-01/runtime/invocation/a%20b/response"),
               rt::protocol_error);
  EXPECT_THROW(rt::parse_route("POST", "/2018-06-01/runtime/invocation//response"),
               rt::protocol_error);
}

TEST(RuntimeApiProtocol, ClientPathsAreTheRoutesTheServerParses) {
  for (auto kind : {rt::route_kind::next, rt::route_kind::response, rt::route_kind::error,
                    rt::route_kind::init_error}) {
    auto method = kind == rt::route_kind::next ? "GET" : "POST";
    auto parsed = rt::parse_route(method, rt::route_path(kind, "req-9"));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->kind, kind);
  }
}

TEST(RuntimeApiProtocol, ErrorBodiesRoundTripAndBadOnesStillYieldAnError) {
  rt::function_error error{"TypeError", "x is \"undefined\"", {"at a", "at b"}};
  EXPECT_EQ(rt::parse_error(rt::format_error(error), ""), error);

  auto from_header = rt::parse_error("not json", "Custom.Type");
  EXPECT_EQ(from_header.error_type, "Custom.Type");
  EXPECT_EQ(from_header.error_message, "");
  EXPECT_EQ(rt::parse_error("[1,2]", "").error_type, "Unhandled");
  // Fields of the wrong type are ignored, not trusted.
  auto odd = rt::parse_error(R"({"errorType":7,"errorMessage":["x"],"stackTrace":"no"})", "H");
  EXPECT_EQ(odd.error_type, "H");
  EXPECT_TRUE(odd.stack_trace.empty());
}

TEST(RuntimeApiProtocol, ErrorBodiesAreValidJsonWhateverBytesTheyCarry) {
  // Found by fuzz_runtime_http_request: an error type holding byte 0xC9.
  rt::function_error error{"Bad\xC9Type", "cut \xE2\x82", {"ok \xE2\x82\xAC", "\xFF"}};
  auto parsed = rt::parse_error(rt::format_error(error), "fallback");
  EXPECT_EQ(parsed.error_type, "Bad\xEF\xBF\xBDType") << "must parse, not fall back";
  EXPECT_EQ(parsed.stack_trace.at(0), "ok \xE2\x82\xAC") << "valid UTF-8 is kept";
  EXPECT_EQ(rt::valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD") << "overlong encodings refused";
  EXPECT_EQ(rt::valid_utf8("\xED\xA0\x80").substr(0, 3), "\xEF\xBF\xBD") << "no surrogates";
}

TEST(RuntimeApiProtocol, OtherNextHeadersAreTheOnesTheContextDoesNotHold) {
  // What `funcie wrap` passes on to CMD as Lambda sent it: fields it does not know.
  EXPECT_TRUE(rt::is_other_next_header("Lambda-Runtime-Future-Field", "x"));
  EXPECT_TRUE(rt::is_other_next_header("Date", "Mon, 07 Dec 2026 10:00:00 GMT"));
  EXPECT_TRUE(rt::is_other_next_header("Content-Type", "application/x-other"));
  // Held by the context (any spelling), framing, or the server's own default.
  EXPECT_FALSE(rt::is_other_next_header("lambda-runtime-aws-request-id", "id"));
  EXPECT_FALSE(rt::is_other_next_header("Lambda-Runtime-Aws-Tenant-Id", "t"));
  EXPECT_FALSE(rt::is_other_next_header("Lambda-Runtime-Deadline-Ms", "1"));
  EXPECT_FALSE(rt::is_other_next_header("CONTENT-LENGTH", "2"));
  EXPECT_FALSE(rt::is_other_next_header("Transfer-Encoding", "chunked"));
  EXPECT_FALSE(rt::is_other_next_header("Connection", "keep-alive"));
  EXPECT_FALSE(rt::is_other_next_header("Content-Type", "application/json"));
}
