// The Lambda Runtime API (version 2018-06-01) as data: paths, header names, limits, the
// invocation context, and the error body. Pure functions only, so both sides of the API
// (client and server) share one definition and the fuzzers can reach every parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace funcie::runtime_api {

/// Thrown by every parser in this header when outside bytes do not follow the protocol.
/// The message says what was wrong, never echoes secrets, and is safe to log.
class protocol_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr std::string_view version = "2018-06-01";
/// The environment variable that tells a runtime where its Runtime API listens (host:port).
inline constexpr std::string_view runtime_api_env = "AWS_LAMBDA_RUNTIME_API";

/// Lambda's limit for a synchronous event and response (6 MiB).
inline constexpr std::size_t max_payload_bytes = 6 * 1024 * 1024;
/// What the Runtime API accepts in one POST before answering 413 (6 MiB + 100 bytes).
inline constexpr std::size_t max_runtime_post_bytes = max_payload_bytes + 100;

/// Header names, as Lambda spells them (HTTP header names compare case-insensitively).
namespace header {
inline constexpr std::string_view request_id = "Lambda-Runtime-Aws-Request-Id";
inline constexpr std::string_view deadline_ms = "Lambda-Runtime-Deadline-Ms";
inline constexpr std::string_view function_arn = "Lambda-Runtime-Invoked-Function-Arn";
inline constexpr std::string_view trace_id = "Lambda-Runtime-Trace-Id";
inline constexpr std::string_view client_context = "Lambda-Runtime-Client-Context";
inline constexpr std::string_view cognito_identity = "Lambda-Runtime-Cognito-Identity";
inline constexpr std::string_view tenant_id = "Lambda-Runtime-Aws-Tenant-Id";
/// Sent by a runtime with POST .../error and .../init/error.
inline constexpr std::string_view function_error_type = "Lambda-Runtime-Function-Error-Type";
/// "streaming" on a POST .../response whose body is streamed (chunked); a mid-stream error
/// then comes in the trailers function_error_type and function_error_body (base64 JSON).
inline constexpr std::string_view response_mode = "Lambda-Runtime-Function-Response-Mode";
inline constexpr std::string_view function_error_body = "Lambda-Runtime-Function-Error-Body";
}  // namespace header

inline constexpr std::string_view error_content_type = "application/vnd.aws.lambda.error+json";

/// Everything Lambda tells a runtime about one invocation besides the event itself.
struct invocation_context {
  std::string request_id;
  std::int64_t deadline_ms = 0;  ///< Unix time in milliseconds when the invocation times out.
  std::string function_arn;      ///< The ARN the caller invoked (may carry a qualifier).
  std::string trace_id;          ///< X-Ray header value; empty when tracing is off.
  std::string client_context;    ///< JSON text from a mobile SDK caller; empty when absent.
  std::string cognito_identity;  ///< JSON text; empty when absent.
  std::string tenant_id;         ///< Tenant of a multi-tenant function; empty when absent.

  bool operator==(const invocation_context&) const = default;
};

/// One invocation: its context and the event bytes, untouched.
struct invocation {
  invocation_context context;
  std::string payload;
  /// Fields of the /next answer that `context` does not hold (ones Lambda adds and funcie
  /// does not know), names and values as received, in order; framing fields (Content-Length,
  /// Transfer-Encoding, Connection) and a Content-Type of application/json are left out.
  /// `funcie wrap` passes them on to CMD's /next; they do not travel through a tunnel.
  std::vector<std::pair<std::string, std::string>> other_headers;
};

/// Whether a /next answer's field is one `invocation` does not hold otherwise (see
/// invocation::other_headers).
bool is_other_next_header(std::string_view name, std::string_view value);

/// A function error as Lambda reports it: {"errorMessage", "errorType", "stackTrace"}.
struct function_error {
  std::string error_type;
  std::string error_message;
  std::vector<std::string> stack_trace;

  bool operator==(const function_error&) const = default;
};

/// Looks a header up by name (case-insensitive); nullopt when absent.
using header_lookup = std::function<std::optional<std::string_view>(std::string_view name)>;

/// Reads the context of a GET .../invocation/next response. Requires a request id and a
/// deadline that is a non-negative integer; throws protocol_error otherwise.
invocation_context parse_invocation_headers(const header_lookup& lookup);

/// The header name/value pairs a /next response carries for `context` (optional ones only
/// when set), in the order Lambda sends them.
std::vector<std::pair<std::string_view, std::string_view>> invocation_headers(
    const invocation_context& context, std::string& deadline_buffer);

/// A request id is safe to use in a path, a header and a log line: 1..128 characters of
/// [A-Za-z0-9-_.:].
bool is_valid_request_id(std::string_view id);

/// The routes of the Runtime API a runtime may call.
enum class route_kind { next, response, error, init_error };

struct route {
  route_kind kind;
  std::string request_id;  ///< Set for response and error.
};

/// Maps a request line to a route. nullopt when the method or path is not part of the
/// Runtime API; throws protocol_error when the path is ours but malformed (bad request id).
std::optional<route> parse_route(std::string_view method, std::string_view target);

/// The path of a route, for a client: "/2018-06-01/runtime/invocation/<id>/response" etc.
std::string route_path(route_kind kind, std::string_view request_id = {});

/// `in` with every byte that is not part of valid UTF-8 replaced by U+FFFD: JSON text must
/// be UTF-8, and error types and messages come from outside.
std::string valid_utf8(std::string_view in);

/// Serializes an error body as Lambda's runtimes do (always valid JSON).
std::string format_error(const function_error& error);

/// Reads an error body posted by a runtime. Lenient as Lambda is: a body that is not a
/// JSON error object still yields an error, typed by `type_header` (or "Unhandled") with
/// no message. Never throws on bad bytes.
function_error parse_error(std::string_view body, std::string_view type_header);

/// The JSON body of an error answer from the Runtime API itself: {"errorMessage","errorType"}.
std::string format_api_error(std::string_view error_type, std::string_view message);

}  // namespace funcie::runtime_api
