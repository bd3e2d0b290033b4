#include "console/trigger.hpp"

#include "console/trigger_reference.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

using namespace funcie::console;

namespace {

trigger t(std::string source, std::string detail) {
  return {std::move(source), std::move(detail)};
}

bool has_control(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return true;
  }
  return false;
}

// Events as the services send them (trimmed where the rest does not matter).

constexpr std::string_view rest_api_event = R"json({
  "resource": "/orders/{id}",
  "path": "/orders/7",
  "httpMethod": "GET",
  "headers": {"Accept": "application/json", "Host": "abc123.execute-api.eu-west-1.amazonaws.com"},
  "multiValueHeaders": {"Accept": ["application/json"]},
  "queryStringParameters": null,
  "pathParameters": {"id": "7"},
  "stageVariables": null,
  "requestContext": {
    "accountId": "123456789012",
    "apiId": "abc123",
    "httpMethod": "GET",
    "path": "/prod/orders/7",
    "protocol": "HTTP/1.1",
    "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    "resourceId": "123456",
    "resourcePath": "/orders/{id}",
    "stage": "prod",
    "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.0"}
  },
  "body": null,
  "isBase64Encoded": false
})json";

constexpr std::string_view http_api_event = R"json({
  "version": "2.0",
  "routeKey": "GET /orders/{id}",
  "rawPath": "/orders/7",
  "rawQueryString": "expand=items",
  "headers": {"accept": "application/json"},
  "queryStringParameters": {"expand": "items"},
  "requestContext": {
    "accountId": "123456789012",
    "apiId": "r3pmxmplak",
    "domainName": "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
    "domainPrefix": "r3pmxmplak",
    "http": {
      "method": "GET",
      "path": "/orders/7",
      "protocol": "HTTP/1.1",
      "sourceIp": "205.255.255.176",
      "userAgent": "curl/7.64.1"
    },
    "requestId": "JKJaXmPLvHcESHA=",
    "routeKey": "GET /orders/{id}",
    "stage": "$default",
    "time": "10/Mar/2020:05:16:23 +0000",
    "timeEpoch": 1583817383220
  },
  "pathParameters": {"id": "7"},
  "isBase64Encoded": false
})json";

constexpr std::string_view function_url_event = R"json({
  "version": "2.0",
  "routeKey": "$default",
  "rawPath": "/my/path",
  "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
  "cookies": ["cookie1", "cookie2"],
  "headers": {"header1": "value1", "header2": "value1,value2"},
  "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
  "requestContext": {
    "accountId": "123456789012",
    "apiId": "abcdefghijklmnopqrstuvwxyz0123",
    "authentication": null,
    "authorizer": {"iam": {"accessKey": "AKIA...", "accountId": "111122223333"}},
    "domainName": "abcdefghijklmnopqrstuvwxyz0123.lambda-url.us-west-2.on.aws",
    "domainPrefix": "abcdefghijklmnopqrstuvwxyz0123",
    "http": {
      "method": "POST",
      "path": "/my/path",
      "protocol": "HTTP/1.1",
      "sourceIp": "123.123.123.123",
      "userAgent": "agent"
    },
    "requestId": "id",
    "routeKey": "$default",
    "stage": "$default",
    "time": "12/Mar/2020:19:03:58 +0000",
    "timeEpoch": 1583348638390
  },
  "body": "Hello from client!",
  "pathParameters": null,
  "isBase64Encoded": false,
  "stageVariables": null
})json";

constexpr std::string_view alb_event = R"json({
  "requestContext": {
    "elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/lambda-279XGJDqGZ5rsrHC2Fjr/49e9d65c45c6791a"}
  },
  "httpMethod": "POST",
  "path": "/lambda",
  "queryStringParameters": {"query": "1234ABCD"},
  "headers": {"host": "lambda-alb-123578498.us-east-1.elb.amazonaws.com"},
  "body": "",
  "isBase64Encoded": false
})json";

constexpr std::string_view websocket_event = R"json({
  "requestContext": {
    "routeKey": "sendmessage",
    "messageId": "GXLKJfX4FiACG1w=",
    "eventType": "MESSAGE",
    "extendedRequestId": "GXLKJHbkFiAFwjQ=",
    "requestTime": "04/Jan/2021:10:21:49 +0000",
    "messageDirection": "IN",
    "stage": "production",
    "connectedAt": 1609755709209,
    "requestTimeEpoch": 1609755709209,
    "requestId": "GXLKJHbkFiAFwjQ=",
    "domainName": "ws.example.com",
    "connectionId": "GXLKJfX4FiACG1w=",
    "apiId": "abcd1234"
  },
  "body": "{\"action\":\"sendmessage\",\"message\":\"hi\"}",
  "isBase64Encoded": false
})json";

constexpr std::string_view s3_event = R"json({
  "Records": [
    {
      "eventVersion": "2.1",
      "eventSource": "aws:s3",
      "awsRegion": "us-east-1",
      "eventTime": "2019-09-03T19:37:27.192Z",
      "eventName": "ObjectCreated:Put",
      "userIdentity": {"principalId": "AWS:AIDAINPONIXQXHT3IKHL2"},
      "requestParameters": {"sourceIPAddress": "205.255.255.255"},
      "responseElements": {"x-amz-request-id": "D82B88E5F771F645"},
      "s3": {
        "s3SchemaVersion": "1.0",
        "configurationId": "828aa6fc-f7b5-4305-8584-487c791949c1",
        "bucket": {
          "name": "my-bucket",
          "ownerIdentity": {"principalId": "A3I5XTEXAMAI3E"},
          "arn": "arn:aws:s3:::my-bucket"
        },
        "object": {
          "key": "a.txt",
          "size": 1305107,
          "eTag": "b21b84d653bb07b05b1e6b33684dc11b",
          "sequencer": "0C0F6F405D6ED209E1"
        }
      }
    }
  ]
})json";

constexpr std::string_view sqs_event = R"json({
  "Records": [
    {
      "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
      "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
      "body": "test",
      "attributes": {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1545082649183",
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": "1545082649185"
      },
      "messageAttributes": {},
      "md5OfBody": "098f6bcd4621d373cade4e832627b4f6",
      "eventSource": "aws:sqs",
      "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
      "awsRegion": "us-east-2"
    },
    {
      "messageId": "2e1424d4-f796-459a-8184-9c92662be6da",
      "receiptHandle": "AQEBzWwaftRI0KuVm4tP+/7q1rGgNqicHq...",
      "body": "test",
      "attributes": {"ApproximateReceiveCount": "1"},
      "messageAttributes": {},
      "md5OfBody": "098f6bcd4621d373cade4e832627b4f6",
      "eventSource": "aws:sqs",
      "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
      "awsRegion": "us-east-2"
    },
    {
      "messageId": "3e1424d4-f796-459a-8184-9c92662be6db",
      "receiptHandle": "AQEBzWwaftRI0KuVm4tP+/7q1rGgNqicHr...",
      "body": "{\"order\": 7}",
      "attributes": {"ApproximateReceiveCount": "2"},
      "messageAttributes": {},
      "md5OfBody": "5f4dcc3b5aa765d61d8327deb882cf99",
      "eventSource": "aws:sqs",
      "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
      "awsRegion": "us-east-2"
    }
  ]
})json";

constexpr std::string_view sns_event = R"json({
  "Records": [
    {
      "EventVersion": "1.0",
      "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:sns-lambda:21be56ed-a058-49f5-8c98-aedd2564c486",
      "EventSource": "aws:sns",
      "Sns": {
        "SignatureVersion": "1",
        "Timestamp": "2019-01-02T12:45:07.000Z",
        "Signature": "tcc6faL2yUC6dgZdmrwh1Y4cGa/ebXEkAi6RibDsvpi+tE/1+82j...65r==",
        "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-ac565b8b1a6c5d002d285f9598aa1d9b.pem",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "Message": "Hello from SNS!",
        "MessageAttributes": {
          "Test": {"Type": "String", "Value": "TestString"}
        },
        "Type": "Notification",
        "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&amp;SubscriptionArn=arn:aws:sns:us-east-1:123456789012:test-lambda:21be56ed-a058-49f5-8c98-aedd2564c486",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:sns-lambda",
        "Subject": "TestInvoke"
      }
    }
  ]
})json";

constexpr std::string_view dynamodb_event = R"json({
  "Records": [
    {
      "eventID": "1",
      "eventVersion": "1.0",
      "dynamodb": {
        "Keys": {"Id": {"N": "101"}},
        "NewImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        "SequenceNumber": "111",
        "SizeBytes": 26
      },
      "awsRegion": "us-west-2",
      "eventName": "INSERT",
      "eventSourceARN": "arn:aws:dynamodb:us-west-2:123456789012:table/orders/stream/2015-06-27T00:48:05.899",
      "eventSource": "aws:dynamodb"
    },
    {
      "eventID": "2",
      "eventVersion": "1.0",
      "dynamodb": {
        "OldImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
        "SequenceNumber": "222",
        "Keys": {"Id": {"N": "101"}},
        "SizeBytes": 59,
        "NewImage": {"Message": {"S": "This item has changed"}, "Id": {"N": "101"}},
        "StreamViewType": "NEW_AND_OLD_IMAGES"
      },
      "awsRegion": "us-west-2",
      "eventName": "MODIFY",
      "eventSourceARN": "arn:aws:dynamodb:us-west-2:123456789012:table/orders/stream/2015-06-27T00:48:05.899",
      "eventSource": "aws:dynamodb"
    },
    {
      "eventID": "3",
      "eventVersion": "1.0",
      "dynamodb": {"Keys": {"Id": {"N": "102"}}, "SequenceNumber": "333", "SizeBytes": 38},
      "awsRegion": "us-west-2",
      "eventName": "INSERT",
      "eventSourceARN": "arn:aws:dynamodb:us-west-2:123456789012:table/orders/stream/2015-06-27T00:48:05.899",
      "eventSource": "aws:dynamodb"
    }
  ]
})json";

constexpr std::string_view kinesis_event = R"json({
  "Records": [
    {
      "kinesis": {
        "kinesisSchemaVersion": "1.0",
        "partitionKey": "1",
        "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
        "data": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
        "approximateArrivalTimestamp": 1545084650.987
      },
      "eventSource": "aws:kinesis",
      "eventVersion": "1.0",
      "eventID": "shardId-000000000006:49590338271490256608559692538361571095921575989136588898",
      "eventName": "aws:kinesis:record",
      "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
      "awsRegion": "us-east-2",
      "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"
    }
  ]
})json";

constexpr std::string_view eventbridge_event = R"json({
  "version": "0",
  "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
  "detail-type": "OrderPlaced",
  "source": "com.shop",
  "account": "111122223333",
  "time": "2017-12-22T18:43:48Z",
  "region": "us-west-1",
  "resources": [],
  "detail": {"orderId": 7, "total": 12.5}
})json";

constexpr std::string_view scheduled_event = R"json({
  "version": "0",
  "account": "123456789012",
  "region": "us-east-2",
  "detail": {},
  "detail-type": "Scheduled Event",
  "source": "aws.events",
  "time": "2019-03-01T01:23:45Z",
  "id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
  "resources": ["arn:aws:events:us-east-2:123456789012:rule/my-schedule"]
})json";

constexpr std::string_view step_functions_context_event = R"json({
  "Execution": {
    "Id": "arn:aws:states:us-east-1:123456789012:execution:OrderFlow:e1a2b3",
    "Input": {"orderId": 7},
    "Name": "e1a2b3",
    "RoleArn": "arn:aws:iam::123456789012:role/StepFunctions",
    "StartTime": "2019-03-26T20:14:13.192Z"
  },
  "State": {"EnteredTime": "2019-03-26T20:14:13.192Z", "Name": "ChargeCard", "RetryCount": 0},
  "StateMachine": {"Id": "arn:aws:states:us-east-1:123456789012:stateMachine:OrderFlow", "Name": "OrderFlow"},
  "Task": {"Token": "h7XRiCdLtd/83p1E0dMccoxlzFhglsdkzpK9mBVKZsp7d9yrT1W"}
})json";

constexpr std::string_view step_functions_token_event = R"json({
  "orderId": 7,
  "taskToken": "AAAAKgAAAAIAAAAAAAAAAQ9ZXh0A1B2sJ3Cy4x3dmuWGXOUuHDeVrI="
})json";

constexpr std::string_view cloudwatch_logs_event = R"json({
  "awslogs": {
    "data": "H4sIAAAAAAAAAHWPwQqCQBCGX0Xm7EFtK+smZBEUgXoLCdMhFtKV3akI8d0bLYmibvPPN3wz00CJxmQnTO41whwWQRIctmEcB6sQbFC3CjW3XW8kxpOpP+OC22d1Wml1qZkQGtoMsScxaczKN3plG8zlaHIta5KqWsozoTYw3/djzwhpLwivWFGHGpAFe7DL68JlBUk+l7KSN7tCOEJ4M3/qOI49vMHj+zCKdlFqLaU2ZHV2a4Ct/an0/ivdX8oYc1UVX860fQDQiMdxRQEAAA=="
  }
})json";

}  // namespace

TEST(Trigger, ApiGatewayRestApi) {
  EXPECT_EQ(guess_trigger(rest_api_event), t("API Gateway v1", "GET /orders/7"));
}

TEST(Trigger, ApiGatewayHttpApi) {
  EXPECT_EQ(guess_trigger(http_api_event), t("API Gateway v2", "GET /orders/7"));
}

TEST(Trigger, FunctionUrl) {
  EXPECT_EQ(guess_trigger(function_url_event), t("Function URL", "POST /my/path"));
}

TEST(Trigger, HttpApiWithoutRawPathUsesTheContextPath) {
  EXPECT_EQ(guess_trigger(R"({"version":"2.0","requestContext":{"http":{"method":"DELETE",
                              "path":"/carts/1"}}})"),
            t("API Gateway v2", "DELETE /carts/1"));
}

TEST(Trigger, RestApiWithOnlyAResource) {
  EXPECT_EQ(guess_trigger(R"({"httpMethod":"POST","resource":"/orders","requestContext":{}})"),
            t("API Gateway v1", "POST /orders"));
}

TEST(Trigger, LoadBalancer) {
  EXPECT_EQ(guess_trigger(alb_event), t("ALB", "POST /lambda"));
}

TEST(Trigger, WebSocket) {
  EXPECT_EQ(guess_trigger(websocket_event), t("API Gateway WebSocket", "MESSAGE sendmessage"));
}

TEST(Trigger, S3) {
  EXPECT_EQ(guess_trigger(s3_event), t("S3", "ObjectCreated:Put my-bucket/a.txt"));
}

TEST(Trigger, S3KeysAreUrlDecodedAndMoreRecordsCounted) {
  constexpr std::string_view event = R"json({"Records": [
    {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
     "s3": {"bucket": {"name": "photos"}, "object": {"key": "2024/my+holiday%21.jpg"}}},
    {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
     "s3": {"bucket": {"name": "photos"}, "object": {"key": "b.jpg"}}},
    {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
     "s3": {"bucket": {"name": "photos"}, "object": {"key": "c.jpg"}}}
  ]})json";
  EXPECT_EQ(guess_trigger(event),
            t("S3", "ObjectRemoved:Delete photos/2024/my holiday!.jpg (+2 more)"));
}

TEST(Trigger, S3LongKeyIsCutButTheCountStays) {
  const std::string event =
      R"({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",)"
      R"("s3":{"bucket":{"name":"b"},"object":{"key":")" +
      std::string(500, 'k') + R"("}}},{"eventSource":"aws:s3"}]})";
  const trigger got = guess_trigger(event);
  EXPECT_EQ(got.source, "S3");
  EXPECT_EQ(display_width(got.detail), max_detail_chars);
  EXPECT_TRUE(got.detail.starts_with("ObjectCreated:Put b/kkk"));
  EXPECT_TRUE(got.detail.ends_with("k… (+1 more)")) << got.detail;
}

TEST(Trigger, S3KeyThatDecodesToAnEscapeIsEscaped) {
  const trigger got =
      guess_trigger(R"({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",)"
                    R"("s3":{"bucket":{"name":"b"},"object":{"key":"%1b%5b2J%ff"}}}]})");
  EXPECT_EQ(got, t("S3", R"(ObjectCreated:Put b/\x1b[2J\xff)"));
}

TEST(Trigger, Sqs) {
  EXPECT_EQ(guess_trigger(sqs_event), t("SQS", "3 records"));
  EXPECT_EQ(guess_trigger(R"({"Records":[{"eventSource":"aws:sqs","body":"x"}]})"),
            t("SQS", "1 record"));
}

TEST(Trigger, Sns) {
  EXPECT_EQ(guess_trigger(sns_event), t("SNS", "TestInvoke"));
  // Without a subject: the topic's name.
  EXPECT_EQ(guess_trigger(R"({"Records":[{"EventSource":"aws:sns","Sns":{"Subject":null,)"
                          R"("TopicArn":"arn:aws:sns:eu-west-1:123456789012:orders"}}]})"),
            t("SNS", "orders"));
  EXPECT_EQ(guess_trigger(R"({"Records":[{"EventSource":"aws:sns","Sns":{}}]})"), t("SNS", ""));
}

TEST(Trigger, DynamoDbCountsEventNames) {
  EXPECT_EQ(guess_trigger(dynamodb_event), t("DynamoDB", "2 INSERT, 1 MODIFY"));
  EXPECT_EQ(guess_trigger(R"({"Records":[{"eventSource":"aws:dynamodb","eventName":"REMOVE"},
                              {"eventSource":"aws:dynamodb","eventName":"MODIFY"},
                              {"eventSource":"aws:dynamodb","eventName":"INSERT"},
                              {"eventSource":"aws:dynamodb","eventName":"REMOVE"}]})"),
            t("DynamoDB", "1 INSERT, 1 MODIFY, 2 REMOVE"));
  EXPECT_EQ(guess_trigger(R"({"Records":[{"eventSource":"aws:dynamodb"},{}]})"),
            t("DynamoDB", "2 records"));
}

TEST(Trigger, Kinesis) {
  EXPECT_EQ(guess_trigger(kinesis_event), t("Kinesis", "1 record"));
}

TEST(Trigger, EventBridge) {
  EXPECT_EQ(guess_trigger(eventbridge_event), t("EventBridge", "OrderPlaced from com.shop"));
  EXPECT_EQ(guess_trigger(scheduled_event), t("EventBridge", "Scheduled Event from aws.events"));
}

TEST(Trigger, StepFunctionsIsAGuess) {
  EXPECT_EQ(guess_trigger(step_functions_context_event),
            t("Step Functions", "ChargeCard in OrderFlow"));
  EXPECT_EQ(guess_trigger(step_functions_token_event), t("Step Functions", ""));
  EXPECT_EQ(guess_trigger(R"({"TaskToken":"abc","input":{}})"), t("Step Functions", ""));
  EXPECT_EQ(guess_trigger(R"({"Execution":{"Name":"run-7"}})"), t("Step Functions", "run-7"));
  // A field merely named "State" is not the context object.
  EXPECT_EQ(guess_trigger(R"({"State":"CA","City":"Fresno"})"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"State":{"code":"CA"}})"), t("direct", ""));
}

TEST(Trigger, CloudWatchLogs) {
  EXPECT_EQ(guess_trigger(cloudwatch_logs_event), t("CloudWatch Logs", ""));
}

TEST(Trigger, DirectInvocations) {
  EXPECT_EQ(guess_trigger(R"({"orderId": 7, "items": [1, 2]})"), t("direct", ""));
  EXPECT_EQ(guess_trigger("{}"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"("hello")"), t("direct", "string"));
  EXPECT_EQ(guess_trigger("42"), t("direct", "number"));
  EXPECT_EQ(guess_trigger("-1.5e3"), t("direct", "number"));
  EXPECT_EQ(guess_trigger(" true "), t("direct", "boolean"));
  EXPECT_EQ(guess_trigger("null"), t("direct", "null"));
  EXPECT_EQ(guess_trigger("[1,2,3]"), t("direct", "array of 3"));
  EXPECT_EQ(guess_trigger("[]"), t("direct", "empty array"));
}

TEST(Trigger, NotJsonIsDirectWithItsSize) {
  EXPECT_EQ(guess_trigger(""), t("direct", "empty"));
  EXPECT_EQ(guess_trigger("x"), t("direct", "1 byte"));
  EXPECT_EQ(guess_trigger("hello world"), t("direct", "11 bytes"));
  EXPECT_EQ(guess_trigger(R"({"httpMethod": "GET",)"), t("direct", "21 bytes"));
  EXPECT_EQ(guess_trigger("{} {}"), t("direct", "5 bytes"));
  EXPECT_EQ(guess_trigger(std::string_view("\0\x01\xff\xfe", 4)), t("direct", "4 bytes"));
  // Invalid UTF-8 inside a string is not JSON.
  EXPECT_EQ(guess_trigger("\"\xc3\x28\""), t("direct", "4 bytes"));
  // Deeper than the parser goes: not JSON as far as we are concerned, and no crash.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(guess_trigger(deep), t("direct", "200000 bytes"));
}

TEST(Trigger, MalformedShapesFallBackToDirect) {
  EXPECT_EQ(guess_trigger(R"({"Records": {"eventSource": "aws:sqs"}})"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"Records": []})"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"Records": ["aws:sqs"]})"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"Records": [{"eventSource": 7}]})"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"Records": [{"eventSource": "aws:ses"}]})"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"Records": [null, {"eventSource": "aws:sqs"}]})"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"httpMethod": "GET", "path": "/x"})"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"httpMethod": 7, "path": "/x", "requestContext": {}})"),
            t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"requestContext": {"http": {"method": null}}})"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"requestContext": "x", "httpMethod": "GET", "path": "/"})"),
            t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"detail-type": "X", "source": "y"})"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"detail-type": 1, "source": "y", "detail": {}})"), t("direct", ""));
  EXPECT_EQ(guess_trigger(R"({"awslogs": {"data": 1}})"), t("direct", ""));
}

TEST(Trigger, PartialShapesSayWhatTheyCan) {
  EXPECT_EQ(guess_trigger(R"({"Records":[{"eventSource":"aws:s3"}]})"), t("S3", ""));
  EXPECT_EQ(guess_trigger(R"({"Records":[{"eventSource":"aws:s3","s3":[]}]})"), t("S3", ""));
  EXPECT_EQ(
      guess_trigger(R"({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Copy"}]})"),
      t("S3", "ObjectCreated:Copy"));
  EXPECT_EQ(guess_trigger(R"({"detail-type":"","source":"","detail":null})"), t("EventBridge", ""));
  EXPECT_EQ(guess_trigger(R"({"detail-type":"","source":"x","detail":1})"),
            t("EventBridge", "from x"));
  EXPECT_EQ(guess_trigger(R"({"requestContext":{"http":{"method":"GET"}}})"),
            t("API Gateway v2", "GET"));
}

TEST(Trigger, HugeStringsAreCut) {
  const std::string path = "/" + std::string(100000, 'a');
  const trigger got = guess_trigger(R"({"version":"2.0","rawPath":")" + path +
                                    R"(","requestContext":{"http":{"method":"GET"}}})");
  EXPECT_EQ(got.source, "API Gateway v2");
  EXPECT_EQ(display_width(got.detail), max_detail_chars);
  EXPECT_TRUE(got.detail.starts_with("GET /aaa"));
  EXPECT_NE(got.detail.find("a…a"), std::string::npos) << got.detail;  // a path loses its middle

  // Cut by characters, never inside one.
  std::string subject;
  for (int i = 0; i < 100; ++i) subject += "é";
  const trigger sns = guess_trigger(R"({"Records":[{"EventSource":"aws:sns","Sns":{"Subject":")" +
                                    subject + R"("}}]})");
  EXPECT_EQ(display_width(sns.detail), max_detail_chars);
  EXPECT_EQ(sns.detail.size(), 59 * 2 + std::string("…").size());
}

TEST(Trigger, EventTextCannotCarryTerminalEscapes) {
  const trigger got = guess_trigger(
      R"({"version":"2.0","rawPath":"/\u001b]0;owned\u0007\u001b[2J\r\n\u009b31m\u202e","requestContext":{"http":{"method":"GET\t"}}})");
  EXPECT_EQ(got.detail, R"(GET\t /\x1b]0;owned\x07\x1b[2J\r\n\u009b31m\u202e)");
  EXPECT_FALSE(has_control(got.detail));
  EXPECT_FALSE(has_control(
      guess_trigger(R"({"detail-type":"\u001b[31mred","source":"\u0000","detail":{}})").detail));
}

TEST(ResponseStatus, ReadsStatusCode) {
  EXPECT_EQ(response_status(R"({"statusCode": 200, "headers": {}, "body": "{}"})"), 200);
  EXPECT_EQ(response_status(R"({"statusCode": 404})"), 404);
  EXPECT_EQ(response_status(R"({"statusCode": "502", "body": ""})"), 502);
  EXPECT_EQ(response_status(R"({"statusCode": 201.0})"), 201);
  EXPECT_EQ(response_status(R"({"cookies": [], "isBase64Encoded": false, "statusCode": 301})"),
            301);
}

TEST(ResponseStatus, ZeroWhenThereIsNone) {
  EXPECT_EQ(response_status(""), 0);
  EXPECT_EQ(response_status("200"), 0);
  EXPECT_EQ(response_status(R"({"ok": true})"), 0);
  EXPECT_EQ(response_status(R"({"statusCode": "abc"})"), 0);
  EXPECT_EQ(response_status(R"({"statusCode": "2000"})"), 0);
  EXPECT_EQ(response_status(R"({"statusCode": " 200"})"), 0);
  EXPECT_EQ(response_status(R"({"statusCode": 99})"), 0);
  EXPECT_EQ(response_status(R"({"statusCode": 600})"), 0);
  EXPECT_EQ(response_status(R"({"statusCode": -200})"), 0);
  EXPECT_EQ(response_status(R"({"statusCode": 200.5})"), 0);
  EXPECT_EQ(response_status(R"({"statusCode": 1e300})"), 0);
  EXPECT_EQ(response_status(R"({"statusCode": 18446744073709551615})"), 0);
  EXPECT_EQ(response_status(R"({"statusCode": null})"), 0);
  EXPECT_EQ(response_status(R"([{"statusCode": 200}])"), 0);
  EXPECT_EQ(response_status(R"({"statusCode": 200)"), 0);
  EXPECT_EQ(response_status("\xff\xfe"), 0);
}

TEST(SummarizeError, NodeAndPythonErrors) {
  EXPECT_EQ(summarize_error(R"json({"errorType":"TypeError","errorMessage":"x is undefined",
                                "trace":["TypeError: x is undefined","    at Runtime.handler (/var/task/index.js:3:9)"]})json"),
            (error_summary{"TypeError", "x is undefined"}));
  EXPECT_EQ(
      summarize_error(R"({"errorMessage": "division by zero", "errorType": "ZeroDivisionError",
                                "requestId": "", "stackTrace": ["  File \"/var/task/app.py\", line 2\n"]})"),
      (error_summary{"ZeroDivisionError", "division by zero"}));
  EXPECT_EQ(summarize_error(R"({"errorType":"Runtime.ExitError"})"),
            (error_summary{"Runtime.ExitError", ""}));
  EXPECT_EQ(
      summarize_error(
          R"({"errorMessage":"2024-01-01T00:00:00Z 3f2a Task timed out after 3.00 seconds"})"),
      (error_summary{"", "2024-01-01T00:00:00Z 3f2a Task timed out after 3.00 seconds"}));
}

TEST(SummarizeError, FirstLineOnlyCutAndPrintable) {
  EXPECT_EQ(summarize_error(R"({"errorType":"Error","errorMessage":"\n  first line \nsecond"})"),
            (error_summary{"Error", "first line"}));
  const error_summary long_one =
      summarize_error(R"({"errorType":"E","errorMessage":")" + std::string(5000, 'm') + R"("})");
  EXPECT_EQ(display_width(long_one.message), 100u);
  EXPECT_TRUE(long_one.message.ends_with("m…"));
  EXPECT_EQ(summarize_error(R"({"errorType":"\u001b[31mBad","errorMessage":"a\u0007b\u001bc"})"),
            (error_summary{R"(\x1b[31mBad)", R"(a\x07b\x1bc)"}));
}

TEST(SummarizeError, EmptyWhenNotAnErrorBody) {
  EXPECT_EQ(summarize_error(""), error_summary{});
  EXPECT_EQ(summarize_error("not json"), error_summary{});
  EXPECT_EQ(summarize_error(R"({"statusCode":500})"), error_summary{});
  EXPECT_EQ(summarize_error(R"({"errorType":7,"errorMessage":{"a":1}})"), error_summary{});
  EXPECT_EQ(summarize_error(R"(["errorType"])"), error_summary{});
  EXPECT_EQ(summarize_error(R"("errorType")"), error_summary{});
}

TEST(ErrorTrace, NodeAndPythonTracesOneLineEach) {
  EXPECT_EQ(error_trace(R"json({"errorType":"TypeError","errorMessage":"x is undefined",
      "trace":["TypeError: x is undefined","    at Runtime.handler (/var/task/index.js:3:9)",""]})json"),
            (std::vector<std::string>{"    at Runtime.handler (/var/task/index.js:3:9)"}));
  EXPECT_EQ(error_trace(R"({"errorMessage": "division by zero", "errorType": "ZeroDivisionError",
      "stackTrace": ["  File \"/var/task/app.py\", line 2, in handler\n    return 1 / 0\n"]})"),
            (std::vector<std::string>{"  File \"/var/task/app.py\", line 2, in handler",
                                      "    return 1 / 0"}));
  EXPECT_EQ(error_trace(R"({"errorType":"E","errorMessage":"m","stackTrace":"a\nb"})"),
            (std::vector<std::string>{"a", "b"}));
}

TEST(ErrorTrace, BoundedPrintableAndEmptyWhenNone) {
  std::string many = R"({"errorType":"E","trace":[)";
  for (int i = 0; i < 50; ++i)
    many += (i ? "," : "") + std::string("\"at f") + std::to_string(i) + "\"";
  many += "]}";
  const auto lines = error_trace(many, 5);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines.back(), "at f4");
  EXPECT_EQ(error_trace(R"({"errorType":"E","trace":["\u001b[2Jx"]})"),
            (std::vector<std::string>{R"(\x1b[2Jx)"}));
  EXPECT_TRUE(error_trace(R"({"errorType":"E","errorMessage":"m"})").empty());
  EXPECT_TRUE(error_trace("not json").empty());
  EXPECT_TRUE(error_trace(R"({"trace":[1,{"a":2}]})").empty());
}

TEST(ShortenMiddle, KeepsBothEnds) {
  EXPECT_EQ(shorten_middle("/orders/7", 20), "/orders/7");
  EXPECT_EQ(shorten_middle("abcdefghij", 5), "ab…ij");
  EXPECT_EQ(display_width(shorten_middle("GET /" + std::string(80, 'p') + "/end", 36)), 36u);
  EXPECT_TRUE(shorten_middle("GET /" + std::string(80, 'p') + "/end", 36).ends_with("p/end"));
  EXPECT_EQ(shorten_middle("ééééééé", 5), "éé…éé");
}

TEST(WrapWords, BreaksAtSpacesOnly) {
  EXPECT_EQ(wrap_words("save a watched file, press r or kill -USR1 4242 to run it again", 24),
            (std::vector<std::string>{"save a watched file,", "press r or kill -USR1",
                                      "4242 to run it again"}));
  EXPECT_EQ(wrap_words("", 10), (std::vector<std::string>{""}));
  const auto long_word = wrap_words("a " + std::string(30, 'x') + " b", 10);
  ASSERT_EQ(long_word.size(), 3u);
  EXPECT_EQ(display_width(long_word[1]), 10u);
  for (const auto& line : wrap_words(std::string(500, 'w') + " w w w", 20)) {
    EXPECT_LE(display_width(line), 20u) << line;
  }
}

TEST(PrettyPayload, JsonIsIndentedByTwo) {
  EXPECT_EQ(pretty_payload(R"({"a":1,"b":[true,null,"x"],"c":{},"d":[],"e":{"f":-2.5}})"),
            "{\n"
            "  \"a\": 1,\n"
            "  \"b\": [\n"
            "    true,\n"
            "    null,\n"
            "    \"x\"\n"
            "  ],\n"
            "  \"c\": {},\n"
            "  \"d\": [],\n"
            "  \"e\": {\n"
            "    \"f\": -2.5\n"
            "  }\n"
            "}");
  EXPECT_EQ(pretty_payload("  42 "), "42");
  EXPECT_EQ(pretty_payload(R"("text")"), R"("text")");
  EXPECT_EQ(pretty_payload("18446744073709551615"), "18446744073709551615");
  EXPECT_EQ(pretty_payload("[1e2]"), "[\n  100\n]");
}

TEST(PrettyPayload, NumbersReadBackAsTheyWere) {
  // Fractions as short as they can be while reading back the same; integers as integers.
  EXPECT_EQ(pretty_payload("[0.1,12.5,-0.25,1e21,3.0e-7,0.30000000000000004,123456789012]"),
            "[\n  0.1,\n  12.5,\n  -0.25,\n  1e+21,\n  3e-07,\n  0.30000000000000004,\n"
            "  123456789012\n]");
}

TEST(PrettyPayload, JsonStringsStayEscapedAndSafe) {
  EXPECT_EQ(pretty_payload(R"({"k\"ey":"a\nb\u001b[2J\u0000\u007f\u009b\u202e\\ é"})"),
            "{\n  \"k\\\"ey\": \"a\\nb\\u001b[2J\\u0000\\u007f\\u009b\\u202e\\\\ é\"\n}");
}

TEST(PrettyPayload, TextAsIs) {
  EXPECT_EQ(pretty_payload("hello\n\tworld é"), "hello\n\tworld é");
  EXPECT_EQ(pretty_payload("line 1\r\nline 2\r\n"), "line 1\nline 2\n");
  EXPECT_EQ(pretty_payload(""), "");
  // Bidi overrides in text are shown, not obeyed.
  EXPECT_EQ(pretty_payload("abc\u202Edef"), R"(abc\u202edef)");
}

TEST(PrettyPayload, BinaryIsCounted) {
  EXPECT_EQ(pretty_payload(std::string_view("\x89PNG\r\n\x1a\n\0\0", 10)),
            "<10 bytes of binary data>");
  EXPECT_EQ(pretty_payload("text with \x1b[31m colour"), "<22 bytes of binary data>");
  EXPECT_EQ(pretty_payload("lone \r return"), "<13 bytes of binary data>");
  EXPECT_EQ(pretty_payload("\xc2\x9b"), "<2 bytes of binary data>");
  EXPECT_EQ(pretty_payload("\xff"), "<1 byte of binary data>");
  EXPECT_EQ(pretty_payload("\xe2\x82"), "<2 bytes of binary data>");  // cut UTF-8
}

TEST(PrettyPayload, CutAtMaxBytes) {
  // Within the limit: whole.
  EXPECT_EQ(pretty_payload("abcdef", 6), "abcdef");
  // No line end in reach: cut at the byte.
  EXPECT_EQ(pretty_payload("abcdefghij", 4), "abcd\n… (6 more bytes)");
  // A line end in the last half: cut there, the line end counted as cut.
  EXPECT_EQ(pretty_payload("[1,2,3,4,5]", 12), "[\n  1,\n  2,\n… (16 more bytes)");
  // Never inside a character: "é" is two bytes.
  EXPECT_EQ(pretty_payload("aéb", 2), "a\n… (3 more bytes)");
  EXPECT_EQ(pretty_payload("abc", 0), "… (3 more bytes)");
  const std::string big = pretty_payload(std::string(100000, 'x'));
  EXPECT_EQ(big, std::string(4096, 'x') + "\n… (95904 more bytes)");
}

TEST(Printable, EscapesWhatATerminalWouldObey) {
  EXPECT_EQ(printable("plain é ✓ 日本"), "plain é ✓ 日本");
  EXPECT_EQ(printable("a\x1b[2Jb"), R"(a\x1b[2Jb)");
  EXPECT_EQ(printable("t\tn\nr\r"), R"(t\tn\nr\r)");
  EXPECT_EQ(printable("t\tn\nr\r", keep::tabs), "t\tn\\nr\\r");
  EXPECT_EQ(printable("t\tn\nr\r", keep::tabs_and_newlines), "t\tn\nr\\r");
  EXPECT_EQ(printable(std::string_view("\0\x7f", 2)), R"(\x00\x7f)");
  EXPECT_EQ(printable("\xc2\x9b"
                      "31m"),
            R"(\u009b31m)");
  EXPECT_EQ(printable("\u202Eevil\u2066\u2028"), R"(\u202eevil\u2066\u2028)");
  // Not UTF-8: overlong, surrogate, past U+10FFFF, truncated, stray continuation.
  EXPECT_EQ(printable("\xc0\xaf"), R"(\xc0\xaf)");
  EXPECT_EQ(printable("\xed\xa0\x80"), R"(\xed\xa0\x80)");
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), R"(\xf4\x90\x80\x80)");
  EXPECT_EQ(printable("a\xe2\x82"), R"(a\xe2\x82)");
  EXPECT_EQ(printable("\x80z"), R"(\x80z)");
  EXPECT_EQ(printable("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");
}

TEST(StripEscapeSequences, RemovesWhatProgramsPrintForColour) {
  EXPECT_EQ(strip_escape_sequences("\x1b[1;31merror\x1b[0m done\x1b[m"), "error done");
  EXPECT_EQ(strip_escape_sequences("\x1b(B\x1b[mreset"), "reset");
  EXPECT_EQ(strip_escape_sequences("\x1b]0;title\x07text"), "text");
  EXPECT_EQ(strip_escape_sequences("\x1b]8;;https://x\x1b\\link\x1b]8;;\x1b\\"), "link");
  EXPECT_EQ(strip_escape_sequences("\x1b"
                                   "cafter reset"),
            "after reset");
  EXPECT_EQ(strip_escape_sequences("\x1bPq#0;2;0;0;0\x1b\\sixel"), "sixel");
  // Incomplete: the ESC stays, for printable() to escape.
  EXPECT_EQ(strip_escape_sequences("\x1b[31"), "\x1b[31");
  EXPECT_EQ(strip_escape_sequences("\x1b]0;no end"), "\x1b]0;no end");
  EXPECT_EQ(strip_escape_sequences("end\x1b"), "end\x1b");
  EXPECT_EQ(printable(strip_escape_sequences("\x1b\x1b[31m[31m")), R"(\x1b[31m)");
}

TEST(Shorten, CutsByCharacters) {
  EXPECT_EQ(shorten("abcdef", 6), "abcdef");
  EXPECT_EQ(shorten("abcdefg", 6), "abcde…");
  EXPECT_EQ(shorten("ééééé", 3), "éé…");
  EXPECT_EQ(shorten("abc", 1), "…");
  EXPECT_EQ(shorten("abc", 0), "");
  EXPECT_EQ(display_width("日本語"), 3u);
  EXPECT_EQ(display_width("a\xff"), 2u);
}

// ---------------------------------------------------------------------------------------
// Large events: guess_trigger and response_status keep only what they read of the JSON
// (console/json_prune.hpp) and must answer exactly as from the whole parsed document.

namespace {

constexpr std::size_t six_mb = 6 * 1024 * 1024;

struct sample {
  const char* name;
  std::string_view event;
};

const std::vector<sample>& samples() {
  static const std::vector<sample> all = {
      {"API Gateway v1", rest_api_event},
      {"API Gateway v2", http_api_event},
      {"Function URL", function_url_event},
      {"ALB", alb_event},
      {"API Gateway WebSocket", websocket_event},
      {"S3", s3_event},
      {"SQS", sqs_event},
      {"SNS", sns_event},
      {"DynamoDB", dynamodb_event},
      {"Kinesis", kinesis_event},
      {"EventBridge", eventbridge_event},
      {"EventBridge schedule", scheduled_event},
      {"Step Functions context", step_functions_context_event},
      {"Step Functions token", step_functions_token_event},
      {"CloudWatch Logs", cloudwatch_logs_event},
  };
  return all;
}

/// `"name": {...}` of about `bytes` bytes that no guess reads: a long string with escapes
/// and text beyond ASCII, then an array of nested values, some shaped like the members the
/// guesses do read (a wrong pruner would find them).
std::string padding_member(std::string_view name, std::size_t bytes) {
  std::string s = "\"" + std::string(name) + R"(": {"blob": ")";
  while (s.size() < bytes / 2) s += R"(lorem \"ipsum\" \\ \u00e9 \ud83d\ude00 é 日本 \n\t )";
  s += R"(", "list": [)";
  while (s.size() < bytes) {
    s += R"({"Records": [{"eventSource": "aws:sqs"}], "httpMethod": "PUT", "n": [1, -2.5e3, )"
         R"(18446744073709551615, true, false, null, "x", {}, []]}, )";
  }
  s += R"("end"]})";
  return s;
}

/// `event` with `member` added as the first member of its top-level object and, when it has
/// records, another one of `record_bytes` in its first record.
std::string enlarged(std::string_view event, std::size_t bytes, std::size_t record_bytes) {
  std::string big(event);
  if (const auto records = big.find("\"Records\""); records != std::string::npos) {
    const auto first = big.find('{', records);
    big.insert(first + 1, padding_member("bigRecordPad", record_bytes) + ",");
    bytes -= std::min(bytes, record_bytes);
  }
  big.insert(big.find('{') + 1, padding_member("bigPad", bytes) + ",");
  return big;
}

/// A 6 MB API Gateway v2 event and its response, as the tunnel benchmark's "big" case
/// forwards: one long body string.
std::string big_body() {
  std::string body;
  body.reserve(six_mb);
  std::uint32_t x = 12345;
  constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  while (body.size() < six_mb - 2048) {
    x = x * 1103515245u + 12345u;
    body.push_back(alphabet[(x >> 16) & 63]);
  }
  return body;
}

}  // namespace

TEST(TriggerLarge, SixMegabyteEventsGiveTheSameTriggerAsSmallOnes) {
  for (const auto& [name, event] : samples()) {
    const trigger small = guess_trigger(event);
    EXPECT_EQ(small.source, std::string_view(name).substr(0, small.source.size())) << name;
    const std::string big = enlarged(event, six_mb, 1024 * 1024);
    ASSERT_GE(big.size(), six_mb) << name;
    EXPECT_EQ(guess_trigger(big), small) << name;
    EXPECT_EQ(reference::guess_trigger(big), small) << name;
  }
}

TEST(TriggerLarge, SixMegabytesOfSqsRecordsAreCounted) {
  std::string event = R"({"Records": [)";
  const std::string body(600 * 1024, 'b');
  for (int i = 0; i < 10; ++i) {
    if (i != 0) event += ",";
    event += R"({"messageId": ")" + std::to_string(i) + R"(", "body": ")" + body +
             R"(", "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"})";
  }
  event += "]}";
  EXPECT_EQ(guess_trigger(event), t("SQS", "10 records"));
  EXPECT_EQ(reference::guess_trigger(event), t("SQS", "10 records"));
}

TEST(TriggerLarge, HugeValuesTheGuessReadsAreStillRead) {
  // A 6 MB path is read (and cut), as before.
  const std::string path = "/" + std::string(six_mb, 'p');
  const std::string event =
      R"({"rawPath":")" + path + R"(","requestContext":{"http":{"method":"GET"}}})";
  const trigger got = guess_trigger(event);
  EXPECT_EQ(got, reference::guess_trigger(event));
  EXPECT_EQ(got.source, "API Gateway v2");
  EXPECT_EQ(display_width(got.detail), max_detail_chars);

  // A 6 MB array at the top level is counted.
  std::string array = "[";
  while (array.size() < six_mb) array += "1,\"x\",{\"a\":[]},";
  array += "null]";
  EXPECT_EQ(guess_trigger(array), reference::guess_trigger(array));
  EXPECT_TRUE(guess_trigger(array).detail.starts_with("array of ")) << guess_trigger(array).detail;
}

TEST(TriggerLarge, MalformedAnywhereInASixMegabyteEventIsNotJson) {
  static_assert(noexcept(guess_trigger(""))&& noexcept(response_status("")));
  const std::string good = enlarged(http_api_event, six_mb, 0);
  ASSERT_EQ(guess_trigger(good).source, "API Gateway v2");
  const std::string not_json = std::to_string(good.size()) + " bytes";

  // Cut short, something after the value, invalid UTF-8 or a raw control character deep in
  // a string no guess reads: the whole parse refuses these, and so must the pruned one.
  std::vector<std::string> broken;
  broken.push_back(good.substr(0, good.size() - 1));
  broken.push_back(good.substr(0, good.size() - 1) + "]");
  broken.push_back(good);
  broken.back()[good.size() / 3] = '\xff';
  broken.push_back(good);
  broken.back()[good.size() / 3] = '\x01';
  broken.push_back(good);
  broken.back()[good.size() * 3 / 4] = '}';
  for (const std::string& bad : broken) {
    const trigger got = guess_trigger(bad);
    EXPECT_EQ(got, reference::guess_trigger(bad));
    EXPECT_EQ(got.source, "direct");
    EXPECT_EQ(got.detail, std::to_string(bad.size()) + " bytes");
    EXPECT_EQ(response_status(bad), 0);
  }
  std::string with_tail = good + " x";
  EXPECT_EQ(guess_trigger(with_tail), t("direct", std::to_string(with_tail.size()) + " bytes"));

  // Deep: 6 MB of brackets, and nesting at the parser's limit (256) and one past it.
  const std::string deep = std::string(six_mb / 2, '[') + std::string(six_mb / 2, ']');
  EXPECT_EQ(guess_trigger(deep), t("direct", std::to_string(six_mb) + " bytes"));
  EXPECT_EQ(response_status(deep), 0);
  for (const std::size_t depth : {255, 256, 257}) {
    const std::string nested = R"({"statusCode": 200, "requestContext": )" +
                               std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
    EXPECT_EQ(guess_trigger(nested), reference::guess_trigger(nested)) << depth;
    EXPECT_EQ(response_status(nested), reference::response_status(nested)) << depth;
  }
}

TEST(TriggerLarge, SameAnswersAsTheWholeParseOnOddShapes) {
  const std::vector<std::string> odd = {
      // Duplicate members: whichever the whole parse keeps.
      R"({"httpMethod": "GET", "httpMethod": "POST", "path": "/a", "requestContext": {}})",
      R"({"requestContext": 1, "requestContext": {"http": {"method": "GET"}}})",
      R"({"requestContext": {"http": {"method": "GET"}}, "requestContext": 1})",
      R"({"Records": [{"eventSource": "aws:sqs"}], "Records": "x"})",
      R"({"statusCode": 200, "statusCode": "404"})",
      // Member names written with escapes, or longer than any rule's.
      R"({"\u0072awPath": "/esc", "requestContext": {"h\u0074tp": {"method": "GET"}}})",
      R"({")" + std::string(100, 'k') + R"(": 1, "statusCode": 201})",
      // Wanted names at the wrong depth, wanted values of the wrong kind.
      R"({"a": {"httpMethod": "GET", "path": "/", "requestContext": {}}})",
      R"({"Records": [{"eventSource": ["aws:sqs"]}, {"eventSource": "aws:sqs"}]})",
      R"({"Records": [{"eventSource": "aws:dynamodb", "eventName": {"x": 1}},)"
      R"({"eventName": "INSERT"}, 7, {"eventName": "REMOVE"}]})",
      R"({"Execution": {"Name": 1, "Id": "x"}, "State": {"Name": "S"}})",
      R"({"statusCode": {"statusCode": 200}})",
      R"({"statusCode": [200]})",
      "[]",
      "[[], {}, [1, [2, [3]]]]",
      R"("\ud800")",
      "  {}  ",
      "1e400",
      "-0",
  };
  for (const std::string& text : odd) {
    EXPECT_EQ(guess_trigger(text), reference::guess_trigger(text)) << text;
    EXPECT_EQ(response_status(text), reference::response_status(text)) << text;
  }
}

TEST(TriggerLarge, SameAnswersAsTheWholeParseOnMutatedEvents) {
  // Each sample changed a few bytes at a time: structure characters, escapes and bytes
  // beyond ASCII put in, taken out, or doubled. A fixed seed, so a failure repeats.
  constexpr std::string_view pieces[] = {"{",
                                         "}",
                                         "[",
                                         "]",
                                         "\"",
                                         ",",
                                         ":",
                                         "\\",
                                         " ",
                                         "0",
                                         "\xff",
                                         "\xc3",
                                         "\"statusCode\":200,",
                                         "\"Records\":[",
                                         "{\"eventSource\":\"aws:s3\"}"};
  std::uint64_t state = 0x9e3779b97f4a7c15u;
  const auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  std::size_t compared = 0;
  for (const auto& [name, event] : samples()) {
    for (int round = 0; round < 300; ++round) {
      std::string text(event);
      for (int edits = 1 + static_cast<int>(next() % 3); edits > 0 && !text.empty(); --edits) {
        const std::size_t at = next() % text.size();
        switch (next() % 3) {
          case 0:
            text.erase(at, 1 + next() % 4);
            break;
          case 1:
            text.insert(at, pieces[next() % std::size(pieces)]);
            break;
          default:
            text.insert(at, text.substr(next() % text.size(), next() % 40));
        }
      }
      ASSERT_EQ(guess_trigger(text), reference::guess_trigger(text)) << name << ": " << text;
      ASSERT_EQ(response_status(text), reference::response_status(text)) << name << ": " << text;
      ++compared;
    }
  }
  EXPECT_EQ(compared, samples().size() * 300);
}

TEST(TriggerLarge, SixMegabyteRoundTripFigures) {
  const std::string body = big_body();
  std::string request(http_api_event);
  request.insert(request.rfind('}'), R"(, "body": ")" + body + R"(")");
  const std::string response =
      R"({"statusCode": 201, "headers": {"content-type": "application/json"}, "body": ")" + body +
      R"(", "isBase64Encoded": true})";
  ASSERT_EQ(guess_trigger(request), t("API Gateway v2", "GET /orders/7"));
  ASSERT_EQ(response_status(response), 201);

  // Milliseconds for one trigger and one status, the median of a few; the first call of each
  // way separately (fresh memory: the whole parse allocates 6 MB for the body each time).
  using clock = std::chrono::steady_clock;
  const auto time = [&](auto&& guess, auto&& status) {
    std::vector<double> ms;
    for (int i = 0; i < 7; ++i) {
      const auto start = clock::now();
      const trigger got = guess(request);
      const int code = status(response);
      ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - start).count());
      EXPECT_EQ(got.source, "API Gateway v2");
      EXPECT_EQ(code, 201);
    }
    const double first = ms.front();
    std::sort(ms.begin(), ms.end());
    return std::pair{first, ms[ms.size() / 2]};
  };
  const auto pruned = time([](std::string_view e) { return guess_trigger(e); },
                           [](std::string_view b) { return response_status(b); });
  const auto whole = time([](std::string_view e) { return reference::guess_trigger(e); },
                          [](std::string_view b) { return reference::response_status(b); });
  std::printf(
      "[ figures ] 6 MB API Gateway v2 event + response, guess_trigger + response_status: "
      "%.2f ms median (first %.2f ms); parsing the whole JSON: %.2f ms median (first "
      "%.2f ms)\n",
      pruned.second, pruned.first, whole.second, whole.first);
}
