#include "aws/sqs_json.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <random>
#include <string>
#include <vector>

namespace sj = funcie::aws::sqs_json;
namespace json = boost::json;
using kind = sj::error_info::kind;

namespace {

const std::string queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/funcie-requests";

json::object parsed(const std::string& body) {
  return json::parse(body).as_object();
}

std::string str(const json::object& o, std::string_view key) {
  return std::string(o.at(key).as_string());
}

std::vector<std::string> strings(const json::value& v) {
  std::vector<std::string> out;
  for (const auto& s : v.as_array()) out.emplace_back(s.as_string());
  return out;
}

// A ReceiveMessage answer as the SQS API reference shows one.
constexpr std::string_view aws_receive = R"({
  "Messages": [
    {
      "Attributes": {
        "SenderId": "AIDASSYFHUBOBT7F4XT75",
        "ApproximateFirstReceiveTimestamp": "1677112433437",
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1677112427387"
      },
      "Body": "This is a test message",
      "MD5OfBody": "fafb00f5732ab283681e124bf8747ed1",
      "MessageId": "219f8380-5770-4cc2-8c3e-5c715e145f5e",
      "ReceiptHandle": "AQEBaZ+j5qUoOAoxlmrCQPkBm9njMWXqemmIG6shMHCO6fV20JrQYg/AiZ8JELwLwOu5U61W+aIX5Qzu7GGofxJuvzymr4Ph53RiR0mudj4InLSgpSspYeaRDteBye5tV/txbZDdNZxsi+qqZA9xPnmtfOW8jQlr3bo3Tv+VY9/SWdwGUD+7b/ezIT6cAj4SQlNwu4Hwxj6y0U8o7+T+JUSxq66Y6H6NYH1g0fvvcpNFKW3mBGYkV5VaCzxVLU08lzmBEE5Gd3OT/nD4hjGd3OAL1h4/3aRUwb+Qa3Yx8c9qOZJGbqH49vTB1ZmKyUrNYbmf7O/UfGzMrqCnPQ+6VzfYCn4C8V7qFt5i0PjYmQVfd1oQ9bS4Sm5Nn+Q2tWjuxz9ryFGWMEKqsxXSiXKYlIHyh6nUg=="
    }
  ]
})";

}  // namespace

// --- requests -------------------------------------------------------------------------------

TEST(SqsJson, TargetNamesTheOperation) {
  EXPECT_EQ(sj::target("SendMessage"), "AmazonSQS.SendMessage");
  EXPECT_EQ(sj::content_type, "application/x-amz-json-1.0");
}

TEST(SqsJson, SendMessageBodyEscapesOddQueueUrlsAndBodies) {
  // A local server's URL with characters JSON must escape, sent exactly as given.
  const std::string odd_url = "http://localhost:9324/000000000000/q\"u\\e\x01ue\t\xE2\x80\xA8/é";
  const std::string body = "funcie-sqs/1 offer\n{\"app\":\"a\"}\n{\"k\":\"\\u0000\"}\r\n";
  const auto request = parsed(sj::send_message(odd_url, body));
  EXPECT_EQ(str(request, "QueueUrl"), odd_url);
  EXPECT_EQ(str(request, "MessageBody"), body);
  EXPECT_EQ(request.size(), 2u);
}

TEST(SqsJson, SendMessageCarriesAOneMebibyteBody) {
  std::string body(1024 * 1024, 'x');
  for (std::size_t i = 0; i < body.size(); i += 97) body[i] = '"';
  const auto request = parsed(sj::send_message(queue_url, body));
  EXPECT_EQ(str(request, "MessageBody"), body);
}

TEST(SqsJson, ReceiveMessageAsksForTheAttributesByBothNames) {
  const auto request = parsed(sj::receive_message(queue_url, 10, 20, 30));
  EXPECT_EQ(str(request, "QueueUrl"), queue_url);
  EXPECT_EQ(request.at("MaxNumberOfMessages").as_int64(), 10);
  EXPECT_EQ(request.at("WaitTimeSeconds").as_int64(), 20);
  EXPECT_EQ(request.at("VisibilityTimeout").as_int64(), 30);
  const std::vector<std::string> names{"SentTimestamp", "ApproximateReceiveCount"};
  EXPECT_EQ(strings(request.at("MessageSystemAttributeNames")), names);
  EXPECT_EQ(strings(request.at("AttributeNames")), names);
}

TEST(SqsJson, ReceiveMessageLeavesTheQueuesVisibilityTimeoutWhenNegative) {
  const auto request = parsed(sj::receive_message(queue_url, 1, 0, -1));
  EXPECT_FALSE(request.contains("VisibilityTimeout"));
  EXPECT_EQ(request.at("MaxNumberOfMessages").as_int64(), 1);
  EXPECT_EQ(request.at("WaitTimeSeconds").as_int64(), 0);
}

TEST(SqsJson, DeleteAndChangeVisibilityNameTheReceiptHandle) {
  const std::string handle = "AQEB+/=\"handle\\";
  const auto del = parsed(sj::delete_message(queue_url, handle));
  EXPECT_EQ(str(del, "QueueUrl"), queue_url);
  EXPECT_EQ(str(del, "ReceiptHandle"), handle);
  const auto change = parsed(sj::change_message_visibility(queue_url, handle, 0));
  EXPECT_EQ(str(change, "ReceiptHandle"), handle);
  EXPECT_EQ(change.at("VisibilityTimeout").as_int64(), 0);
}

TEST(SqsJson, GetQueueUrlSendsTheOwnerOnlyWhenGiven) {
  const auto plain = parsed(sj::get_queue_url("funcie-requests", ""));
  EXPECT_EQ(str(plain, "QueueName"), "funcie-requests");
  EXPECT_FALSE(plain.contains("QueueOwnerAWSAccountId"));
  const auto owned = parsed(sj::get_queue_url("funcie-requests", "123456789012"));
  EXPECT_EQ(str(owned, "QueueOwnerAWSAccountId"), "123456789012");
}

TEST(SqsJson, GetQueueAttributesListsTheNames) {
  const auto request = parsed(sj::get_queue_attributes(queue_url, {"MaximumMessageSize", "All"}));
  EXPECT_EQ(str(request, "QueueUrl"), queue_url);
  EXPECT_EQ(strings(request.at("AttributeNames")),
            (std::vector<std::string>{"MaximumMessageSize", "All"}));
}

// --- responses ------------------------------------------------------------------------------

TEST(SqsJson, ParsesTheReferencesReceiveMessageAnswer) {
  const auto messages = sj::parse_receive_message(aws_receive);
  ASSERT_EQ(messages.size(), 1u);
  const auto& m = messages[0];
  EXPECT_EQ(m.message_id, "219f8380-5770-4cc2-8c3e-5c715e145f5e");
  EXPECT_TRUE(m.receipt_handle.starts_with("AQEBaZ+j5qUoOAoxlm"));
  EXPECT_EQ(m.body, "This is a test message");
  EXPECT_EQ(m.sent_timestamp_ms, 1677112427387);
  EXPECT_EQ(m.receive_count, 1);
}

TEST(SqsJson, AnEmptyReceiveIsNoMessages) {
  EXPECT_TRUE(sj::parse_receive_message("").empty());
  EXPECT_TRUE(sj::parse_receive_message(" \r\n").empty());
  EXPECT_TRUE(sj::parse_receive_message("{}").empty());
  EXPECT_TRUE(sj::parse_receive_message(R"({"Messages":[]})").empty());
  EXPECT_TRUE(sj::parse_receive_message(R"({"Messages":null})").empty());
}

TEST(SqsJson, ReceivedMessagesWithoutAttributesOrDigestAreKept) {
  const auto messages = sj::parse_receive_message(
      R"({"Messages":[{"MessageId":"a","ReceiptHandle":"h1","Body":"x"},)"
      R"({"MessageId":"b","ReceiptHandle":"h2","Body":"hello","MD5OfBody":"5D41402ABC4B2A76B9719D911017C592",)"
      R"("Attributes":{"SentTimestamp":1700000000000,"ApproximateReceiveCount":"3"}}]})");
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].sent_timestamp_ms, 0);
  EXPECT_EQ(messages[0].receive_count, 0);
  EXPECT_EQ(messages[1].body, "hello");  // an upper-case digest is the same digest
  EXPECT_EQ(messages[1].sent_timestamp_ms, 1700000000000);
  EXPECT_EQ(messages[1].receive_count, 3);
}

TEST(SqsJson, ABodyThatDoesNotMatchItsMd5IsCorrupted) {
  std::string corrupted(aws_receive);
  corrupted.replace(corrupted.find("a test"), 6, "a tesT");
  try {
    (void)sj::parse_receive_message(corrupted);
    FAIL() << "no parse_error";
  } catch (const sj::parse_error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupted in transit"), std::string::npos);
  }
}

TEST(SqsJson, MalformedReceiveAnswersAreParseErrors) {
  for (
      const char* body : {
          "not json",
          "[]",
          R"({"Messages":{}})",
          R"({"Messages":[1]})",
          R"({"Messages":[{"ReceiptHandle":"h"}]})",
          R"({"Messages":[{"MessageId":"a"}]})",
          R"({"Messages":[{"MessageId":"a","ReceiptHandle":""}]})",
          R"({"Messages":[{"MessageId":"a","ReceiptHandle":"h","Body":7}]})",
          R"({"Messages":[{"MessageId":"a","ReceiptHandle":"h","Attributes":[]}]})",
          R"({"Messages":[{"MessageId":"a","ReceiptHandle":"h","Attributes":{"SentTimestamp":"-1"}}]})",
          R"({"Messages":[{"MessageId":"a","ReceiptHandle":"h","Attributes":{"SentTimestamp":"12x"}}]})",
          R"({"Messages":[{"MessageId":"a","ReceiptHandle":"h","Attributes":{"SentTimestamp":{}}}]})",
      }) {
    EXPECT_THROW((void)sj::parse_receive_message(body), sj::parse_error) << body;
  }
}

TEST(SqsJson, ParseErrorsNeverQuoteTheBody) {
  try {
    (void)sj::parse_get_queue_url(R"({"QueueUrl": secret-token})");
    FAIL() << "no parse_error";
  } catch (const sj::parse_error& e) {
    EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos) << e.what();
  }
}

TEST(SqsJson, ParsesSendMessageAndChecksItsDigest) {
  const std::string answer =
      R"({"MD5OfMessageBody":"5d41402abc4b2a76b9719d911017c592","MessageId":"d6790f8d-d575-4f01-bc51-40122EXAMPLE"})";
  EXPECT_EQ(sj::parse_send_message(answer), "d6790f8d-d575-4f01-bc51-40122EXAMPLE");
  EXPECT_EQ(sj::parse_send_message(answer, "hello"), "d6790f8d-d575-4f01-bc51-40122EXAMPLE");
  EXPECT_THROW((void)sj::parse_send_message(answer, "hellO"), sj::parse_error);
  EXPECT_EQ(sj::parse_send_message(R"({"MessageId":"m"})", "anything"), "m");
  EXPECT_THROW((void)sj::parse_send_message(""), sj::parse_error);
  EXPECT_THROW((void)sj::parse_send_message(R"({"MessageId":1})"), sj::parse_error);
}

TEST(SqsJson, ParsesGetQueueUrl) {
  EXPECT_EQ(sj::parse_get_queue_url(
                R"({"QueueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/MyQueue"})"),
            "https://sqs.us-east-1.amazonaws.com/111122223333/MyQueue");
  EXPECT_THROW((void)sj::parse_get_queue_url("{}"), sj::parse_error);
  EXPECT_THROW((void)sj::parse_get_queue_url(R"({"QueueUrl":""})"), sj::parse_error);
}

TEST(SqsJson, ParsesGetQueueAttributes) {
  const auto attrs = sj::parse_get_queue_attributes(R"({"Attributes":{
      "QueueArn":"arn:aws:sqs:us-east-1:555555555555:MyQueue",
      "ApproximateNumberOfMessages":"0",
      "MaximumMessageSize":"262144",
      "VisibilityTimeout":30,
      "FifoQueue":false}})");
  EXPECT_EQ(attrs.at("QueueArn"), "arn:aws:sqs:us-east-1:555555555555:MyQueue");
  EXPECT_EQ(attrs.at("MaximumMessageSize"), "262144");
  EXPECT_EQ(attrs.at("VisibilityTimeout"), "30");  // some servers answer numbers
  EXPECT_EQ(attrs.at("FifoQueue"), "false");
  EXPECT_TRUE(sj::parse_get_queue_attributes("{}").empty());
  EXPECT_THROW((void)sj::parse_get_queue_attributes(R"({"Attributes":{"A":[]}})"), sj::parse_error);
}

// --- errors ---------------------------------------------------------------------------------

TEST(SqsJson, ReadsTheReferencesErrorAnswer) {
  const auto e = sj::parse_error_response(
      400,
      R"({"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "The specified queue does not exist."})",
      "AWS.SimpleQueueService.NonExistentQueue;Sender");
  EXPECT_EQ(e.type, kind::queue_missing);
  EXPECT_EQ(e.code, "AWS.SimpleQueueService.NonExistentQueue");
  EXPECT_EQ(e.message, "The specified queue does not exist.");
  EXPECT_FALSE(e.retryable());
}

TEST(SqsJson, TakesTheTypeAfterTheHashAndEitherMessageField) {
  const auto coral = sj::parse_error_response(
      400,
      R"({"__type":"com.amazon.coral.service#AccessDeniedException","Message":"User: arn:aws:iam::1:user/x is not authorized"})",
      "");
  EXPECT_EQ(coral.type, kind::access_denied);
  EXPECT_EQ(coral.code, "AccessDeniedException");
  EXPECT_EQ(coral.message, "User: arn:aws:iam::1:user/x is not authorized");
  const auto bare = sj::parse_error_response(400, R"({"__type":"QueueDoesNotExist"})", "");
  EXPECT_EQ(bare.type, kind::queue_missing);
  EXPECT_EQ(bare.code, "QueueDoesNotExist");
  EXPECT_EQ(bare.message, "");
  const auto suffixed = sj::parse_error_response(
      400, R"({"__type":"com.amazon.coral.validate#ValidationException:http://internal/"})", "");
  EXPECT_EQ(suffixed.type, kind::invalid);
  EXPECT_EQ(suffixed.code, "ValidationException");
}

TEST(SqsJson, TheQueryErrorHeaderWins) {
  const auto e =
      sj::parse_error_response(400, R"({"__type":"com.amazonaws.sqs#InvalidParameterValue"})",
                               "AWS.SimpleQueueService.NonExistentQueue;Sender");
  EXPECT_EQ(e.type, kind::queue_missing);
  EXPECT_EQ(e.code, "AWS.SimpleQueueService.NonExistentQueue");
  // An unknown header code still names the error; the kind then comes from __type.
  const auto unknown = sj::parse_error_response(
      400, R"({"__type":"com.amazonaws.sqs#RequestThrottled"})", "SomethingNew;Sender");
  EXPECT_EQ(unknown.code, "SomethingNew");
  EXPECT_EQ(unknown.type, kind::throttled);
  EXPECT_TRUE(unknown.retryable());
}

TEST(SqsJson, MapsEveryKnownCode) {
  const std::vector<std::pair<std::string, kind>> cases{
      {"QueueDoesNotExist", kind::queue_missing},
      {"AWS.SimpleQueueService.NonExistentQueue", kind::queue_missing},
      {"AccessDenied", kind::access_denied},
      {"AccessDeniedException", kind::access_denied},
      {"InvalidClientTokenId", kind::access_denied},
      {"SignatureDoesNotMatch", kind::access_denied},
      {"UnrecognizedClient", kind::access_denied},
      {"UnrecognizedClientException", kind::access_denied},
      {"ExpiredToken", kind::access_denied},
      {"MissingAuthenticationToken", kind::access_denied},
      {"InvalidSecurity", kind::access_denied},
      {"KMS.AccessDeniedException", kind::access_denied},
      {"KmsAccessDenied", kind::access_denied},
      {"ThrottlingException", kind::throttled},
      {"Throttling", kind::throttled},
      {"RequestThrottled", kind::throttled},
      {"KmsThrottled", kind::throttled},
      {"KMS.ThrottlingException", kind::throttled},
      {"InternalError", kind::server},
      {"InternalFailure", kind::server},
      {"ServiceUnavailable", kind::server},
      {"InvalidParameterValue", kind::invalid},
      {"MissingParameter", kind::invalid},
      {"InvalidMessageContents", kind::invalid},
      {"ReceiptHandleIsInvalid", kind::invalid},
      {"UnsupportedOperation", kind::invalid},
      {"AWS.SimpleQueueService.UnsupportedOperation", kind::invalid},
      {"AWS.SimpleQueueService.MessageNotInflight", kind::invalid},
      {"OverLimit", kind::invalid},
      {"KmsDisabled", kind::invalid},
      {"SomethingNew", kind::other},
  };
  for (const auto& [code, expected] : cases) {
    const auto by_type =
        sj::parse_error_response(400, R"({"__type":"com.amazonaws.sqs#)" + code + R"("})", "");
    EXPECT_EQ(by_type.type, expected) << code;
    EXPECT_EQ(by_type.code, code);
    const auto by_header = sj::parse_error_response(400, "", code + ";Sender");
    EXPECT_EQ(by_header.type, expected) << code;
    EXPECT_EQ(by_header.code, code);
  }
  EXPECT_FALSE(sj::parse_error_response(400, "", "OverLimit;Sender").retryable());
  EXPECT_TRUE(sj::parse_error_response(400, "", "KmsThrottled;Sender").retryable());
  EXPECT_TRUE(sj::parse_error_response(500, "", "InternalError;Receiver").retryable());
}

TEST(SqsJson, TheStatusDecidesWhenTheCodeIsUnknown) {
  EXPECT_EQ(sj::parse_error_response(429, "", "").type, kind::throttled);
  EXPECT_EQ(sj::parse_error_response(500, "<html>oops</html>", "").type, kind::server);
  EXPECT_EQ(sj::parse_error_response(503, "", "").type, kind::server);
  EXPECT_EQ(sj::parse_error_response(403, "", "").type, kind::access_denied);
  EXPECT_EQ(sj::parse_error_response(400, "{}", "").type, kind::other);
  EXPECT_EQ(sj::parse_error_response(404, "not json", "").type, kind::other);
  // A known code beats the status.
  EXPECT_EQ(sj::parse_error_response(500, R"({"__type":"InvalidParameterValue"})", "").type,
            kind::invalid);
  EXPECT_EQ(sj::parse_error_response(403, R"({"__type":"QueueDoesNotExist"})", "").type,
            kind::queue_missing);
}

TEST(SqsJson, ReadsTheQueryProtocolsXmlErrors) {
  const auto e = sj::parse_error_response(
      400,
      "<ErrorResponse><Error><Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue"
      "</Code><Message>The specified queue does not exist.</Message></Error></ErrorResponse>",
      "");
  EXPECT_EQ(e.type, kind::queue_missing);
  EXPECT_EQ(e.code, "AWS.SimpleQueueService.NonExistentQueue");
  EXPECT_EQ(e.message, "The specified queue does not exist.");
}

TEST(SqsJson, TheMessageIsPrintableAndCut) {
  const auto e = sj::parse_error_response(
      400, R"({"__type":"X","message":"\u001b[31mred\u001b[0m\nsecond line\u0007"})", "");
  for (char c : e.message) {
    EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 || c == 0x7F) << e.message;
  }
  EXPECT_NE(e.message.find("red"), std::string::npos);
  std::string long_message;
  for (int i = 0; i < 200; ++i) long_message += "é";  // 2 bytes each
  long_message += "x";
  const auto cut = sj::parse_error_response(
      400, R"({"__type":"X","message":")" + long_message + "xé" + R"("})", "");
  EXPECT_EQ(cut.message.size(), 300u);
  EXPECT_EQ(cut.message, long_message.substr(0, 300));
  const auto odd = sj::parse_error_response(400, "{\"message\":\"\xC3\"}", "");
  EXPECT_EQ(odd.message, "");  // invalid UTF-8 in JSON: not JSON, no message
  const auto odd_header = sj::parse_error_response(400, "", "Bad\x1b[2JCode;Sender");
  EXPECT_EQ(odd_header.code.find('\x1b'), std::string::npos);
}

TEST(SqsJson, HostileBytesNeverThrow) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> size(0, 700);
  const std::string prefixes[] = {"", R"({"__type":")", R"({"message":")", "<Code>", "<Message>"};
  for (int i = 0; i < 2000; ++i) {
    std::string body = prefixes[i % 5];
    const int n = size(rng);
    for (int k = 0; k < n; ++k) body.push_back(static_cast<char>(byte(rng)));
    if (i % 3 == 0) body += "\"}</Code></Message>";
    const std::string header = body.substr(0, body.size() / 3);
    sj::error_info e;
    EXPECT_NO_THROW(e = sj::parse_error_response(static_cast<unsigned>(i % 700), body, header));
    EXPECT_LE(e.message.size(), 300u);
    EXPECT_LE(e.code.size(), 100u);
    for (char c : e.message + e.code) {
      ASSERT_FALSE(static_cast<unsigned char>(c) < 0x20 || c == 0x7F);
    }
  }
}
