// An echo function: returns the event bytes unchanged. Small JSON events that are exactly one
// of these objects are test hooks instead:
//   {"throw": "<message>"}  throws std::runtime_error(<message>)  -> function error
//   {"context": true}       returns the invocation context and Lambda environment as JSON
//   {"exit": N}             ends the process with status N in the middle of the invocation
//   {"sleep_ms": N}         sleeps N ms, then echoes
//   {"log": "<text>"}       writes <text> to stdout and "<text> (on stderr)" to stderr, echoes
//   {"where": true}         returns {"where": LABEL}, LABEL being the first argument
//                           ("echo" without one): tells which copy of the function answered
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "funcie/runtime/runtime.hpp"

namespace {

using funcie::runtime::invocation_request;
using funcie::runtime::invocation_response;

// Hooks are tiny objects; anything bigger (or not an object) is echoed without parsing, so
// benchmarks measure the runtime rather than a JSON parser.
constexpr std::size_t max_hook_bytes = 256;

std::string label = "echo";

boost::json::value env_value(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? boost::json::value(value) : boost::json::value(nullptr);
}

std::string describe_context(const invocation_request& request) {
  boost::json::object env;
  for (const char* name :
       {"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME", "_X_AMZN_TRACE_ID", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"}) {
    env[name] = env_value(name);
  }
  const auto deadline_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(request.deadline.time_since_epoch());
  const boost::json::object context{
      {"request_id", request.request_id},
      {"function_arn", request.function_arn},
      {"xray_trace_id", request.xray_trace_id},
      {"client_context", request.client_context},
      {"cognito_identity", request.cognito_identity},
      {"tenant_id", request.tenant_id},
      {"deadline_ms", deadline_ms.count()},
      {"remaining_ms", request.get_time_remaining().count()},
      {"env", std::move(env)},
  };
  return boost::json::serialize(context);
}

invocation_response handle(const invocation_request& request) {
  const std::string& event = request.payload;
  if (event.size() > max_hook_bytes || !event.starts_with('{')) {
    return invocation_response::success(event);
  }
  boost::system::error_code ec;
  const boost::json::value parsed = boost::json::parse(event, ec);
  const auto* hook = ec ? nullptr : parsed.if_object();
  if (hook == nullptr || hook->size() != 1) return invocation_response::success(event);

  const auto& [key, value] = *hook->begin();
  if (key == "throw" && value.is_string()) {
    throw std::runtime_error(std::string(value.get_string()));
  }
  if (key == "context" && value.is_bool() && value.get_bool()) {
    return invocation_response::success(describe_context(request));
  }
  if (key == "exit" && value.is_int64()) {
    std::_Exit(static_cast<int>(value.get_int64()));
  }
  if (key == "where" && value.is_bool() && value.get_bool()) {
    return invocation_response::success(
        boost::json::serialize(boost::json::object{{"where", label}}));
  }
  if (key == "log" && value.is_string()) {
    std::printf("%s\n", std::string(value.get_string()).c_str());
    std::fflush(stdout);
    std::fprintf(stderr, "%s (on stderr)\n", std::string(value.get_string()).c_str());
    std::fflush(stderr);
  }
  if (key == "sleep_ms" && value.is_int64()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(value.get_int64()));
  }
  return invocation_response::success(event);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) label = argv[1];
  funcie::runtime::run_handler(handle);
}
