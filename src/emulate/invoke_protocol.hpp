// The slice of the Lambda Invoke API (2015-03-31) that `funcie emulate` serves, as pure
// functions over request bytes, so that the fuzzers reach every one of them.
#pragma once

#include <funcie/runtime_api/protocol.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace funcie::emulate {

using runtime_api::protocol_error;

/// The function a caller names in the path: a name, a name with ":qualifier", a partial ARN
/// "ACCOUNT:function:NAME" or a full ARN "arn:aws:lambda:REGION:ACCOUNT:function:NAME[:Q]".
struct function_ref {
  std::string name;
  std::string qualifier;  ///< From the name or ?Qualifier=; empty means $LATEST.
  std::string region;     ///< Only when the caller gave a full ARN.
  std::string account;    ///< Only when the caller gave an ARN.
};

/// Parses "/2015-03-31/functions/{FunctionName}/invocations[?Qualifier=Q]" (FunctionName
/// percent-encoded). nullopt when the path is not the Invoke route; throws protocol_error
/// when it is, but the function name or qualifier is malformed.
std::optional<function_ref> parse_invoke_target(std::string_view target);

/// True when `bytes` is one complete JSON text (RFC 8259), checked without building a tree.
bool is_json(std::string_view bytes);

enum class invocation_type { request_response, event, dry_run };

/// X-Amz-Invocation-Type; empty means RequestResponse. Throws protocol_error otherwise.
invocation_type parse_invocation_type(std::string_view value);

/// X-Amz-Client-Context is base64 of a JSON object; returns the JSON text. Throws
/// protocol_error when it is not base64, not JSON, or longer than Lambda's 3583 bytes.
std::string decode_client_context(std::string_view base64);

/// An error of the Lambda service itself (not of the function), as AWS's REST-JSON
/// protocol sends it: status, `x-amzn-ErrorType` header and {"Type","message"} body.
struct service_error {
  unsigned status;
  std::string type;  ///< e.g. "ResourceNotFoundException"
  std::string message;
};

std::string format_service_error(const service_error& error);

}  // namespace funcie::emulate
