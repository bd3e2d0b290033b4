// The tunnel's envelope: what the forwarder (cloud side) and the consumer (local side) say
// to each other, the same on every backend. Version 1; docs/PROTOCOL.md is the reference.
// Pure functions only: the fuzzers link this alone.
//
// Wire form of every message:
//   "funcie/1 <kind>\n"   kind: request | response | notice
//   <header: one JSON object, no raw newline>"\n"
//   <body: raw bytes, untouched (the event, the response payload or the error JSON)>
#pragma once

#include "runtime_api/protocol.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace funcie::tunnel {

/// The major version this build speaks. A message with another major is refused.
inline constexpr int protocol_version = 1;
/// Largest header accepted (the JSON line); bodies are bounded by Lambda's limits.
inline constexpr std::size_t max_header_bytes = 64 * 1024;
/// Largest body accepted: a response may be up to what the Runtime API accepts.
inline constexpr std::size_t max_body_bytes = runtime_api::max_runtime_post_bytes;

/// An app name: 1..64 characters of [A-Za-z0-9-_.] (every Lambda function name is one).
/// It becomes part of broker key names, so nothing else is allowed.
bool is_valid_app(std::string_view app);
/// An envelope id or consumer session id: 32 lowercase hex digits.
bool is_valid_id(std::string_view id);

/// The function as it runs in the cloud: what the consumer restores as the handler's
/// environment (AWS_LAMBDA_FUNCTION_NAME, _VERSION, _MEMORY_SIZE, AWS_REGION,
/// AWS_LAMBDA_LOG_GROUP_NAME, AWS_LAMBDA_LOG_STREAM_NAME, _HANDLER). Empty/0 when unknown.
struct function_info {
  std::string name;
  std::string version;
  unsigned memory_mb = 0;
  std::string region;
  std::string log_group;
  std::string log_stream;
  std::string handler;  ///< _HANDLER: what a managed runtime loads ("index.handler").

  bool operator==(const function_info&) const = default;
};

/// The function's AWS credentials (its role's), sent only when the function opts in with
/// FUNCIE_FORWARD_CREDENTIALS=1; a consumer uses them only with --forward-credentials.
struct aws_credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;

  bool empty() const { return access_key_id.empty(); }
  bool operator==(const aws_credentials&) const = default;
};

/// Forwarder -> consumer: one invocation to run.
struct request {
  std::string id;            ///< Unique per forwarded attempt (not the Lambda request id, which
                             ///< Lambda reuses when it retries an async invocation).
  std::string app;           ///< The tunnel this was sent on; a consumer drops foreign ones.
  std::int64_t sent_ms = 0;  ///< Forwarder's Unix time in ms when sent (for logs only).
  /// Forwarder's Unix time in ms after which it stops waiting and answers the caller itself
  /// (the deadline minus its margin); 0 when unknown. A consumer holding a failed result
  /// (--hold) answers before it.
  std::int64_t answer_by_ms = 0;
  runtime_api::invocation_context context;
  function_info function;
  aws_credentials credentials;  ///< Empty unless the function opted in.
  std::string payload;          ///< The event, byte for byte.
  /// The forwarder takes a streamed response as numbered pieces (protocol 1.1,
  /// docs/PROTOCOL.md "Streamed responses"). Absent (false): one whole response only.
  bool stream = false;

  bool operator==(const request&) const = default;
};

/// Consumer -> forwarder: the outcome of one request.
struct response {
  enum class outcome { success, error };
  std::string id;  ///< The request's id.
  std::string app;
  std::string consumer;  ///< Session id of the consumer that ran it.
  outcome result = outcome::success;
  std::string content_type;  ///< Of a success payload; may be empty.
  std::string error_type;    ///< Of an error (e.g. "TypeError", "Funcie.ConsumerLeft").
  /// A success payload byte for byte, or the error as Lambda's JSON error object; of a
  /// piece: its bytes of the stream, or (the last piece of a failed stream) the error.
  std::string body;
  /// -1: a whole response. 0, 1, 2...: a piece of a streamed response, in order; only sent
  /// for a request with `stream` set.
  std::int64_t piece = -1;
  /// Of a piece: more pieces follow. The last piece (more == false) carries the outcome.
  bool more = false;

  bool is_piece() const { return piece >= 0; }
  bool operator==(const response&) const = default;
};

/// A small announcement that a request is waiting (Redis pub/sub carries these, so that a
/// 6 MB event never passes through a subscriber's output buffer).
struct notice {
  std::string id;
  std::string app;

  bool operator==(const notice&) const = default;
};

enum class message_kind { request, response, notice };

std::string encode(const request& message);
std::string encode(const response& message);

/// An envelope as two pieces, for a writer that sends them one after the other without
/// joining them (no copy of a 6 MB body): `head` + `body` are the bytes encode() returns.
/// `body` is a view of the message's own payload or body, which must outlive it.
struct encoded_parts {
  std::string head;  ///< The first line and the header line, each ending in '\n'.
  std::string_view body;
  std::size_t size() const { return head.size() + body.size(); }
  std::string joined() const;
};
encoded_parts encode_parts(const request& message);
encoded_parts encode_parts(const response& message);
std::string encode(const notice& message);

/// The kind named in the first line; throws runtime_api::protocol_error when the bytes do
/// not start like an envelope or carry another major version.
message_kind peek_kind(std::string_view bytes);

/// Each decoder checks everything (kind, version, sizes, field types, ids, app name,
/// request id, UTF-8 of the header) and throws runtime_api::protocol_error with a message
/// safe to log (it never quotes the body). Unknown header fields are ignored.
request decode_request(std::string_view bytes);
response decode_response(std::string_view bytes);
/// The same, taking the bytes: the payload (body) reuses their buffer instead of a copy.
request decode_request_owned(std::string&& bytes);
response decode_response_owned(std::string&& bytes);
notice decode_notice(std::string_view bytes);

}  // namespace funcie::tunnel
