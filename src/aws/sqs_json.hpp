// The bodies of SQS's AWS JSON 1.0 protocol: requests built, responses and errors parsed.
// Pure (no I/O) and fuzzed: responses are bytes from outside.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::aws::sqs_json {

/// A response body that is not what the protocol says (not JSON, a field of the wrong
/// type). The message never quotes the body.
class parse_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr std::string_view content_type = "application/x-amz-json-1.0";
/// X-Amz-Target of an operation: "AmazonSQS.SendMessage".
std::string target(std::string_view operation);

struct received_message {
  std::string message_id;
  std::string receipt_handle;
  std::string body;
  std::int64_t sent_timestamp_ms = 0;  ///< Attribute SentTimestamp, 0 when absent
  std::int64_t receive_count = 0;      ///< Attribute ApproximateReceiveCount, 0 when absent
};

// Request bodies (JSON text). Strings are escaped; the queue URL is sent as given.
std::string send_message(std::string_view queue_url, std::string_view body);
/// visibility_timeout < 0: the queue's default. Asks for SentTimestamp and
/// ApproximateReceiveCount.
std::string receive_message(std::string_view queue_url, int max_messages, int wait_seconds,
                            int visibility_timeout);
std::string delete_message(std::string_view queue_url, std::string_view receipt_handle);
std::string change_message_visibility(std::string_view queue_url, std::string_view receipt_handle,
                                      int seconds);
/// owner_account may be empty.
std::string get_queue_url(std::string_view queue_name, std::string_view owner_account);
std::string get_queue_attributes(std::string_view queue_url, const std::vector<std::string>& names);
/// Entry i of a batch gets the Id "i" (its index in `bodies` / `receipt_handles`); 1..10
/// entries.
std::string send_message_batch(std::string_view queue_url, const std::vector<std::string>& bodies);
std::string delete_message_batch(std::string_view queue_url,
                                 const std::vector<std::string>& receipt_handles);
/// Entry i: receipt_handles[i] hidden for seconds[i] (the two of the same length).
std::string change_message_visibility_batch(std::string_view queue_url,
                                            const std::vector<std::string>& receipt_handles,
                                            const std::vector<int>& seconds);
std::string tag_queue(std::string_view queue_url, const std::map<std::string, std::string>& tags);
std::string list_queue_tags(std::string_view queue_url);
std::string untag_queue(std::string_view queue_url, const std::vector<std::string>& keys);

// Response bodies. An empty body is what some servers send for an empty receive: it parses
// as no messages. Throw parse_error.
std::string parse_send_message(std::string_view body);  ///< MessageId
/// MessageId, after checking the MD5OfMessageBody SQS answers (when it does) against the body
/// that was sent: a mismatch is a parse_error (corrupted in transit).
std::string parse_send_message(std::string_view body, std::string_view sent_body);
/// Each message's MD5OfBody, when there, is checked against its body: a mismatch is a
/// parse_error (corrupted in transit).
std::vector<received_message> parse_receive_message(std::string_view body);
std::string parse_get_queue_url(std::string_view body);  ///< QueueUrl
std::map<std::string, std::string> parse_get_queue_attributes(std::string_view body);
std::map<std::string, std::string> parse_list_queue_tags(std::string_view body);  ///< Tags

/// What a batch call did with each entry: `failed[i]` is empty when entry i succeeded, else
/// the server's code and message for it. An entry the answer names neither way counts as
/// failed ("not in the answer"); an Id the request did not have is a parse_error.
struct batch_result {
  std::vector<std::string> failed;
  bool all_ok() const;
};
/// `sent_bodies`: checks each successful entry's MD5OfMessageBody, as for SendMessage.
batch_result parse_send_message_batch(std::string_view body,
                                      const std::vector<std::string>& sent_bodies);
batch_result parse_delete_message_batch(std::string_view body, std::size_t entries);
batch_result parse_change_message_visibility_batch(std::string_view body, std::size_t entries);

/// What a failed call says about itself.
struct error_info {
  enum class kind {
    queue_missing,  ///< QueueDoesNotExist, AWS.SimpleQueueService.NonExistentQueue
    access_denied,  ///< AccessDenied(Exception), InvalidClientTokenId, SignatureDoesNotMatch,
                    ///< UnrecognizedClient, ExpiredToken, MissingAuthenticationToken
    throttled,      ///< ThrottlingException, RequestThrottled, Throttling, 429, KMS.Throttling...
    invalid,        ///< the request was refused: InvalidParameterValue, ReceiptHandleIsInvalid...
    server,         ///< 5xx, InternalError, ServiceUnavailable
    other,
  };
  kind type = kind::other;
  std::string code;     ///< "QueueDoesNotExist" (the part of __type after '#'), or the
                        ///< x-amzn-query-error code when it is there
  std::string message;  ///< The server's message, made printable and cut at 300 bytes
  bool retryable() const { return type == kind::throttled || type == kind::server; }
};

/// From an answer with a status other than 200: the JSON body's `__type` and `message`
/// (or `Message`), and the `x-amzn-query-error` header ("Code;Sender"). Never throws.
error_info parse_error_response(unsigned status, std::string_view body,
                                std::string_view query_error_header);

}  // namespace funcie::aws::sqs_json
