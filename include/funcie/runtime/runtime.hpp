// The C++ handler API for a Lambda function, in the style of aws-lambda-cpp: write a handler,
// call run_handler from main, ship the binary as `bootstrap`. Only standard types appear here.
//
//   int main() {
//     funcie::runtime::run_handler([](const funcie::runtime::invocation_request& request) {
//       return funcie::runtime::invocation_response::success(request.payload);
//     });
//   }
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace funcie::runtime {

/// One invocation as the handler sees it: the event and its context.
struct invocation_request {
  /// The event, byte for byte as the caller sent it (usually JSON).
  std::string payload;
  /// Lambda's id of this invocation (Lambda-Runtime-Aws-Request-Id).
  std::string request_id;
  /// X-Ray tracing header (Lambda-Runtime-Trace-Id); empty when tracing is off. run_handler
  /// also puts it in the environment variable _X_AMZN_TRACE_ID while the handler runs.
  std::string xray_trace_id;
  /// JSON text of the client context a mobile SDK caller sent; empty when absent.
  std::string client_context;
  /// JSON text of the caller's Amazon Cognito identity; empty when absent.
  std::string cognito_identity;
  /// The ARN the caller invoked, with its version or alias qualifier if it used one.
  std::string function_arn;
  /// Tenant of a multi-tenant function (Lambda-Runtime-Aws-Tenant-Id); empty when absent.
  std::string tenant_id;
  /// When Lambda stops this invocation.
  std::chrono::system_clock::time_point deadline;

  /// Time left until `deadline`, negative once it has passed.
  std::chrono::milliseconds get_time_remaining() const;
};

/// What a handler returns: a success payload or a function error.
class invocation_response {
 public:
  /// A successful result; `payload` reaches the caller byte for byte with `content_type`.
  static invocation_response success(std::string payload,
                                     std::string content_type = "application/json");

  /// A function error. The caller receives {"errorMessage": error_message, "errorType":
  /// error_type, "stackTrace": stack_trace} (one string per frame, as Lambda's own runtimes
  /// report them) and the invocation counts as failed (Unhandled).
  static invocation_response failure(std::string error_message, std::string error_type,
                                     std::vector<std::string> stack_trace = {});

  /// True for success(), false for failure().
  bool is_success() const noexcept { return success_; }
  /// The success payload; empty for a failure.
  const std::string& get_payload() const noexcept { return payload_; }
  /// The success payload's content type; empty for a failure.
  const std::string& get_content_type() const noexcept { return content_type_; }
  /// The error type of a failure (e.g. "InvalidEvent"); empty for a success.
  const std::string& get_error_type() const noexcept { return error_type_; }
  /// The error message of a failure; empty for a success.
  const std::string& get_error_message() const noexcept { return error_message_; }
  /// The stack trace of a failure, one frame per string; empty for a success.
  const std::vector<std::string>& get_stack_trace() const noexcept { return stack_trace_; }

 private:
  friend struct response_access;  // lets run_handler post the payload without copying it
  invocation_response() = default;

  bool success_ = false;
  std::string payload_;
  std::string content_type_;
  std::string error_type_;
  std::string error_message_;
  std::vector<std::string> stack_trace_;
};

/// A function's handler. It runs on the thread that called run_handler, one invocation at a
/// time. An exception it throws becomes a function error (see run_handler).
using handler_function = std::function<invocation_response(const invocation_request&)>;

/// Knobs of run_handler; the defaults are what a deployed function wants.
struct run_options {
  /// Return after this many invocations; 0 runs until the Runtime API goes away. For tests
  /// and benchmarks.
  std::size_t max_invocations = 0;
  /// The Runtime API's host:port; empty reads the environment variable AWS_LAMBDA_RUNTIME_API.
  std::string runtime_api;
};

/// The runtime loop: fetches each invocation from the Runtime API, calls `handler`, and posts
/// its result.
///
/// - The handler's success payload is posted with its content type; a failure() is posted as
///   a function error.
/// - An exception escaping the handler becomes a function error whose errorType is the
///   demangled dynamic type of the exception (e.g. "std::runtime_error") and whose
///   errorMessage is what(); an exception not derived from std::exception gives errorType
///   "UnknownException". The loop goes on with the next invocation.
/// - A success payload larger than the Runtime API accepts (6 MiB + 100 bytes) is posted as
///   the function error "Function.ResponseSizeTooLarge" instead.
/// - A lost connection is reopened, with a short retry when the Runtime API does not accept
///   at once.
///
/// Returns, without throwing, when Lambda wants the runtime to exit: the Runtime API answers
/// with a server error (5xx), cannot be reached any more, or sends bytes that are not the
/// protocol; then, or after `max_invocations`, it returns 0, an exit code for main. Returns
/// 1 at once when AWS_LAMBDA_RUNTIME_API is not set (and options.runtime_api is empty).
/// Each of these but max_invocations prints one line to stderr saying why.
int run_handler(const handler_function& handler, const run_options& options);

/// run_handler with default options: runs until the Runtime API goes away.
int run_handler(const handler_function& handler);

/// Tells Lambda that the function failed to initialize (POST /runtime/init/error), for
/// example a missing setting, before run_handler is called. Lambda then stops this
/// execution environment. Never throws: a failure to report is printed to stderr.
void report_init_error(std::string error_type, std::string error_message);

}  // namespace funcie::runtime
