// AWS Signature Version 4 for requests with a body in memory (SQS's JSON protocol and
// the metadata endpoints need nothing more). Pure: no I/O, no clock; the caller gives the
// time. Checked against AWS's published test vectors and @smithy/signature-v4.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace funcie::aws {

struct credentials;

struct signing_input {
  std::string method;  ///< "POST"
  std::string host;  ///< The Host header's value: "sqs.eu-west-1.amazonaws.com" or "127.0.0.1:4566"
  /// The request target's path as sent ("/" for SQS). sign() normalizes it (empty, "." and
  /// ".." segments) and URI-encodes each segment, as AWS SDKs do for every service but S3:
  /// "/a b" signs as "/a%20b", and "/a%20b" as "/a%2520b".
  std::string path;
  /// The query string as sent, without '?'; may be empty. Parameters are decoded and
  /// encoded again, so "a b" and "a%20b" sign alike; '+' is a plus, not a space.
  std::string query;
  /// Headers to sign besides host and x-amz-date (content-type, x-amz-target...). Names in
  /// any case; values are trimmed and inner runs of spaces collapsed as SigV4 says.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view payload;
  std::string region;   ///< "eu-west-1"
  std::string service;  ///< "sqs"
  std::chrono::system_clock::time_point time;
};

struct signature {
  std::string authorization;   ///< The Authorization header's value
  std::string amz_date;        ///< X-Amz-Date: "20150830T123600Z"
  std::string security_token;  ///< X-Amz-Security-Token, empty without a session token
  // Intermediate results, for tests and debugging (never logged: they are not secret, but
  // the signing key is and is not kept).
  std::string canonical_request;
  std::string string_to_sign;
};

/// Signs `input` with `creds`. Throws std::invalid_argument for an empty key, region or
/// service.
signature sign(const signing_input& input, const credentials& creds);

/// Lowercase hex SHA-256 of bytes (the payload hash of SigV4).
std::string sha256_hex(std::string_view bytes);

/// SigV4's URI encoding: unreserved characters kept, everything else %XX (uppercase);
/// '/' kept when `keep_slash`.
std::string uri_encode(std::string_view text, bool keep_slash);

}  // namespace funcie::aws
