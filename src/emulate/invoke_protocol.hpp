// The slice of the Lambda Invoke API (2015-03-31) that `funcie emulate` serves, as pure
// functions over request bytes, so that the fuzzers reach every one of them.
#pragma once

#include "runtime_api/protocol.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

/// The operations of the Lambda API that `funcie emulate` serves.
enum class operation {
  invoke,                       ///< POST /2015-03-31/functions/NAME/invocations
  invoke_with_response_stream,  ///< POST /2021-11-15/functions/NAME/response-streaming-invocations
  get_function,                 ///< GET /2015-03-31/functions/NAME
  get_function_configuration,   ///< GET /2015-03-31/functions/NAME/configuration
  list_functions,               ///< GET /2015-03-31/functions/
};

struct api_route {
  operation op;
  function_ref function;  ///< Empty for list_functions.
};

/// Maps a request line to an operation. nullopt when it is none of them; throws
/// protocol_error when it is one but the function name or qualifier is malformed.
std::optional<api_route> parse_api_route(std::string_view method, std::string_view target);

/// X-Amz-Log-Type: true for "Tail", false for empty or "None"; throws protocol_error
/// otherwise.
bool parse_log_type(std::string_view value);

/// One message of AWS's event stream encoding (application/vnd.amazon.eventstream): the
/// prelude (total and headers length, CRC32), string headers, payload, CRC32 of the whole.
/// InvokeWithResponseStream sends PayloadChunk and InvokeComplete events in it.
std::string encode_event_message(
    const std::vector<std::pair<std::string_view, std::string_view>>& headers,
    std::string_view payload);

/// CRC-32 (IEEE 802.3, as zlib computes it) of `bytes`, continuing from `crc`.
std::uint32_t crc32(std::string_view bytes, std::uint32_t crc = 0);

/// True when `bytes` is one complete JSON text (RFC 8259), checked without building a tree.
bool is_json(std::string_view bytes);

enum class invocation_type { request_response, event, dry_run };

/// X-Amz-Invocation-Type; empty means RequestResponse. Throws protocol_error otherwise.
invocation_type parse_invocation_type(std::string_view value);

/// X-Amz-Client-Context is base64 of a JSON object; returns the JSON text. Throws
/// protocol_error when it is not base64, not JSON, or longer than Lambda's limit: "up to
/// 3,583 bytes of base64-encoded data" (the Invoke API reference), the encoded text counted.
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
