#include "tunnel/envelope.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tn = funcie::tunnel;
namespace rt = funcie::runtime_api;

namespace {

const std::string id = "0123456789abcdef0123456789abcdef";
const std::string consumer = "fedcba9876543210fedcba9876543210";

tn::request full_request() {
  tn::request r;
  r.id = id;
  r.app = "orders-api";
  r.sent_ms = 1763900000123;
  r.context = {"8476a536-e9f4-11e8-9739-2dfe598c3fcd",
               1763900003123,
               "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:live",
               "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
               R"({"client":{"installation_id":"x"},"custom":{"a":"b"}})",
               R"({"cognitoIdentityId":"eu-west-1:1","cognitoIdentityPoolId":"p"})",
               "tenant-7"};
  r.function = {"orders-api",
                "42",
                512,
                "eu-west-1",
                "/aws/lambda/orders-api",
                "2026/11/23/[42]0123456789abcdef0123456789abcdef",
                "index.handler"};
  r.payload = R"({"body":"hi"})";
  return r;
}

std::string binary_payload(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + 7) % 256);
  return s;
}

}  // namespace

TEST(Envelope, RequestRoundTripsEveryField) {
  const auto r = full_request();
  const auto bytes = tn::encode(r);
  EXPECT_TRUE(bytes.starts_with("funcie/1 request\n{"));
  EXPECT_EQ(tn::peek_kind(bytes), tn::message_kind::request);
  EXPECT_EQ(tn::decode_request(bytes), r);
}

TEST(Envelope, PayloadIsCarriedRawNotReencoded) {
  auto r = full_request();
  r.payload = binary_payload(rt::max_payload_bytes);  // 6 MiB with NUL, CR, LF, 0xFF bytes
  const auto bytes = tn::encode(r);
  // The payload is the tail of the message, byte for byte: no base64, no JSON escaping.
  ASSERT_GT(bytes.size(), r.payload.size());
  EXPECT_EQ(bytes.size() - r.payload.size(), bytes.find('\n', bytes.find('\n') + 1) + 1);
  EXPECT_EQ(std::string_view(bytes).substr(bytes.size() - r.payload.size()), r.payload);
  EXPECT_EQ(tn::decode_request(bytes).payload, r.payload);
}

TEST(Envelope, PartsAreTheEncodedBytesWithTheBodyNotCopied) {
  auto r = full_request();
  r.payload = binary_payload(rt::max_payload_bytes);
  const auto parts = tn::encode_parts(r);
  // A writer sends head then body: Redis stores exactly what encode() makes.
  EXPECT_EQ(parts.head + std::string(parts.body), tn::encode(r));
  EXPECT_EQ(parts.joined(), tn::encode(r));
  EXPECT_EQ(parts.size(), tn::encode(r).size());
  EXPECT_EQ(parts.body.data(), r.payload.data());  // a view of the request's own payload
  EXPECT_TRUE(parts.head.ends_with("\n"));

  tn::response answer{
      id, "orders-api",         consumer, tn::response::outcome::success, "text/plain",
      "", binary_payload(70000)};
  const auto response_parts = tn::encode_parts(answer);
  EXPECT_EQ(response_parts.joined(), tn::encode(answer));
  EXPECT_EQ(response_parts.body.data(), answer.body.data());
  EXPECT_EQ(tn::decode_response(response_parts.joined()), answer);
}

TEST(Envelope, ResponsesRoundTripSuccessAndError) {
  tn::response ok{id, "orders-api",        consumer, tn::response::outcome::success, "text/plain",
                  "", binary_payload(1000)};
  EXPECT_EQ(tn::decode_response(tn::encode(ok)), ok);
  tn::response err{id,
                   "orders-api",
                   consumer,
                   tn::response::outcome::error,
                   "",
                   "TypeError",
                   R"({"errorMessage":"x is undefined","errorType":"TypeError","stackTrace":[]})"};
  EXPECT_EQ(tn::decode_response(tn::encode(err)), err);
}

TEST(Envelope, StreamedPiecesRoundTripAndOldReadersSeeWholeResponses) {
  tn::request req = full_request();
  req.stream = true;
  EXPECT_EQ(tn::decode_request(tn::encode(req)), req);
  EXPECT_FALSE(tn::decode_request(tn::encode(full_request())).stream);

  tn::response first{id,         "orders-api", consumer,           tn::response::outcome::success,
                     "text/csv", "",           binary_payload(100)};
  first.piece = 0;
  first.more = true;
  EXPECT_EQ(tn::decode_response(tn::encode(first)), first);
  tn::response last{id,
                    "orders-api",
                    consumer,
                    tn::response::outcome::error,
                    "",
                    "TypeError",
                    R"({"errorMessage":"broke","errorType":"TypeError"})"};
  last.piece = 7;
  last.more = false;
  const auto decoded = tn::decode_response(tn::encode(last));
  EXPECT_EQ(decoded, last);
  EXPECT_TRUE(decoded.is_piece());

  // A whole response (no "piece") is what a consumer of protocol 1.0 sends.
  tn::response whole{id, "orders-api", consumer, tn::response::outcome::success, "", "", "x"};
  EXPECT_FALSE(tn::decode_response(tn::encode(whole)).is_piece());
}

TEST(Envelope, PiecesAreChecked) {
  const std::string base =
      R"("id":"0123456789abcdef0123456789abcdef","app":"a","consumer":"fedcba9876543210fedcba9876543210")";
  auto response = [&](const std::string& fields) {
    return tn::decode_response("funcie/1 response\n{" + base + fields + "}\n");
  };
  EXPECT_THROW(response(R"(,"outcome":"success","piece":-1,"more":true)"), rt::protocol_error);
  EXPECT_THROW(response(R"(,"outcome":"success","piece":"0","more":true)"), rt::protocol_error);
  EXPECT_THROW(response(R"(,"outcome":"success","piece":0,"more":"yes")"), rt::protocol_error);
  EXPECT_THROW(response(R"(,"outcome":"success","more":true)"), rt::protocol_error);
  EXPECT_THROW(response(R"(,"outcome":"error","piece":0,"more":true)"), rt::protocol_error);
  EXPECT_EQ(response(R"(,"outcome":"error","piece":3,"more":false)").piece, 3);
}

TEST(Envelope, NoticeRoundTripsAndIsSmall) {
  tn::notice n{id, "orders-api"};
  const auto bytes = tn::encode(n);
  EXPECT_LT(bytes.size(), 100u);
  EXPECT_EQ(tn::decode_notice(bytes), n);
}

TEST(Envelope, AbsentOptionalFieldsDecodeAsEmpty) {
  const std::string bytes =
      "funcie/1 request\n"
      R"({"id":"0123456789abcdef0123456789abcdef","app":"a","context":{"request_id":"r-1"}})"
      "\n{}";
  const auto r = tn::decode_request(bytes);
  EXPECT_EQ(r.context.request_id, "r-1");
  EXPECT_EQ(r.context.deadline_ms, 0);
  EXPECT_EQ(r.function, tn::function_info{});
  EXPECT_EQ(r.payload, "{}");
}

TEST(Envelope, UnknownFieldsAreIgnoredForwardCompatibly) {
  const std::string bytes =
      "funcie/1 notice\n"
      R"({"id":"0123456789abcdef0123456789abcdef","app":"a","added_in_1_1":{"x":[1,2]}})"
      "\n";
  EXPECT_EQ(tn::decode_notice(bytes).app, "a");
}

TEST(Envelope, InvalidUtf8InFieldsIsReplacedSoTheHeaderStaysJson) {
  tn::response err{id, "a", consumer, tn::response::outcome::error, "", "Bad\xff\xfeType", "{}"};
  const auto back = tn::decode_response(tn::encode(err));
  EXPECT_EQ(back.error_type, "Bad\xEF\xBF\xBD\xEF\xBF\xBDType");
}

struct bad_case {
  const char* name;
  std::string bytes;
  const char* message_part;
};

class EnvelopeRejects : public testing::TestWithParam<bad_case> {};

TEST_P(EnvelopeRejects, WithAClearMessage) {
  const auto& c = GetParam();
  try {
    (void)tn::decode_request(c.bytes);
    FAIL() << "accepted: " << c.name;
  } catch (const rt::protocol_error& e) {
    EXPECT_NE(std::string(e.what()).find(c.message_part), std::string::npos)
        << c.name << ": " << e.what();
  }
}

const std::string good_header =
    R"({"id":"0123456789abcdef0123456789abcdef","app":"a","context":{"request_id":"r-1"}})";

INSTANTIATE_TEST_SUITE_P(
    Envelope, EnvelopeRejects,
    testing::Values(
        bad_case{"empty", "", "not a funcie envelope"},
        bad_case{"garbage", "hello world\n", "not a funcie envelope"},
        bad_case{"newer major", "funcie/2 request\n" + good_header + "\n", "version 2"},
        bad_case{"other kind", "funcie/1 notice\n" + good_header + "\n", "expected a request"},
        bad_case{"unknown kind", "funcie/1 gossip\n{}\n", "kind is unknown"},
        bad_case{"no header end", "funcie/1 request\n{\"id\":1", "not terminated"},
        bad_case{"header not json", "funcie/1 request\n{nope}\n", "not valid JSON"},
        bad_case{"header not object", "funcie/1 request\n[1]\n", "not a JSON object"},
        bad_case{"no id", "funcie/1 request\n{\"app\":\"a\"}\n", "no \"id\""},
        bad_case{"bad id", "funcie/1 request\n{\"id\":\"XYZ\",\"app\":\"a\"}\n", "32 lowercase"},
        bad_case{
            "bad app",
            "funcie/1 request\n{\"id\":\"0123456789abcdef0123456789abcdef\",\"app\":\"a}b\"}\n",
            "app name"},
        bad_case{"no request id",
                 "funcie/1 request\n{\"id\":\"0123456789abcdef0123456789abcdef\",\"app\":\"a\"}\n",
                 "no \"request_id\""},
        bad_case{"deadline wrong type",
                 "funcie/1 request\n{\"id\":\"0123456789abcdef0123456789abcdef\",\"app\":\"a\","
                 "\"context\":{\"request_id\":\"r\",\"deadline_ms\":\"soon\"}}\n",
                 "not an integer"},
        bad_case{"negative deadline",
                 "funcie/1 request\n{\"id\":\"0123456789abcdef0123456789abcdef\",\"app\":\"a\","
                 "\"context\":{\"request_id\":\"r\",\"deadline_ms\":-5}}\n",
                 "out of range"},
        bad_case{"request id with slash",
                 "funcie/1 request\n{\"id\":\"0123456789abcdef0123456789abcdef\",\"app\":\"a\","
                 "\"context\":{\"request_id\":\"../next\"}}\n",
                 "request id"},
        bad_case{
            "too big",
            "funcie/1 request\n" + good_header + "\n" + std::string(rt::max_payload_bytes + 1, 'x'),
            "6 MiB"}),
    [](const auto& test_info) {
      std::string n = test_info.param.name;
      for (auto& ch : n) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return n;
    });

TEST(Envelope, ResponseChecksConsumerAndOutcome) {
  const std::string base = R"("id":"0123456789abcdef0123456789abcdef","app":"a")";
  EXPECT_THROW(tn::decode_response("funcie/1 response\n{" + base +
                                   R"(,"outcome":"success"})"
                                   "\n"),
               rt::protocol_error);
  EXPECT_THROW(
      tn::decode_response("funcie/1 response\n{" + base +
                          R"(,"consumer":"fedcba9876543210fedcba9876543210","outcome":"maybe"})"
                          "\n"),
      rt::protocol_error);
}

TEST(Envelope, AppNamesAndIds) {
  EXPECT_TRUE(tn::is_valid_app("my-function_v2.prod"));
  EXPECT_TRUE(tn::is_valid_app(std::string(64, 'a')));
  EXPECT_FALSE(tn::is_valid_app(std::string(65, 'a')));
  EXPECT_FALSE(tn::is_valid_app(""));
  EXPECT_FALSE(tn::is_valid_app("a{b}"));  // would break the Redis hash tag
  EXPECT_FALSE(tn::is_valid_app("a:b"));
  EXPECT_FALSE(tn::is_valid_app("a b"));
  EXPECT_TRUE(tn::is_valid_id(id));
  EXPECT_FALSE(tn::is_valid_id("0123456789ABCDEF0123456789ABCDEF"));
  EXPECT_FALSE(tn::is_valid_id(id + "0"));
}
