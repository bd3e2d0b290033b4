// The runtime loop of runtime.hpp on top of runtime::client: one io_context on the calling
// thread, the handler called synchronously between /next and the post of its result. The
// loop takes an optional hook (loop.hpp) that funcie::start uses to forward invocations.
#include <cxxabi.h>
#include <fmt/format.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <typeinfo>
#include <utility>

#include "funcie/runtime/runtime.hpp"
#include "runtime/client.hpp"
#include "runtime/loop.hpp"
#include "runtime_api/protocol.hpp"

namespace funcie::runtime {

namespace asio = boost::asio;

std::chrono::milliseconds invocation_request::get_time_remaining() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                               std::chrono::system_clock::now());
}

invocation_response invocation_response::success(std::string payload, std::string content_type) {
  invocation_response response;
  response.success_ = true;
  response.payload_ = std::move(payload);
  response.content_type_ = std::move(content_type);
  return response;
}

invocation_response invocation_response::failure(std::string error_message, std::string error_type,
                                                 std::vector<std::string> stack_trace) {
  invocation_response response;
  response.error_message_ = std::move(error_message);
  response.error_type_ = std::move(error_type);
  response.stack_trace_ = std::move(stack_trace);
  return response;
}

namespace {

constexpr const char* trace_env = "_X_AMZN_TRACE_ID";

void say(std::string_view line) {
  fmt::print(stderr, "funcie runtime: {}\n", line);
}

// "std::runtime_error" for the exception being handled; empty when there is none.
std::string current_exception_type() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (type == nullptr) return {};
  struct free_deleter {
    void operator()(char* p) const noexcept { std::free(p); }
  };
  int status = 0;
  const std::unique_ptr<char, free_deleter> name(
      abi::__cxa_demangle(type->name(), nullptr, nullptr, &status));
  return status == 0 && name ? std::string(name.get()) : std::string(type->name());
}

}  // namespace

// The handler never takes the process down: whatever it throws becomes a function error.
invocation_response call_handler(const handler_function& handler,
                                 const invocation_request& request) {
  try {
    return handler(request);
  } catch (const std::exception& e) {
    return invocation_response::failure(e.what(), current_exception_type());
  } catch (...) {
    const std::string type = current_exception_type();
    return invocation_response::failure(
        type.empty() ? "the handler threw an exception of unknown type"
                     : fmt::format("the handler threw an exception of type {}", type),
        "UnknownException");
  }
}

invocation_request to_request(runtime_api::invocation invocation) {
  auto& context = invocation.context;
  invocation_request request;
  request.payload = std::move(invocation.payload);
  request.request_id = std::move(context.request_id);
  request.xray_trace_id = std::move(context.trace_id);
  request.client_context = std::move(context.client_context);
  request.cognito_identity = std::move(context.cognito_identity);
  request.function_arn = std::move(context.function_arn);
  request.tenant_id = std::move(context.tenant_id);
  request.deadline = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::milliseconds(context.deadline_ms)));
  return request;
}

// glibc's setenv never frees a value it replaces, and a warm environment runs millions of
// invocations with a new trace id each: own the "NAME=value" entry and putenv it instead.
void set_trace_env(const std::string& trace_id) {
  static std::unique_ptr<char[]> entry;
  if (trace_id.empty()) {
    ::unsetenv(trace_env);
    entry.reset();
    return;
  }
  const std::string text = std::string(trace_env) + "=" + trace_id;
  auto next = std::make_unique<char[]>(text.size() + 1);
  std::memcpy(next.get(), text.c_str(), text.size() + 1);
  ::putenv(next.get());  // the environment now points at `next`; the old entry is unused
  entry = std::move(next);
}

// Moves the payload out of a response, so a 6 MiB result is posted without a copy.
struct response_access {
  static std::string take_payload(invocation_response& response) {
    return std::move(response.payload_);
  }
};

namespace {

// A function error for a result that is not a success or is too large to post as one.
runtime_api::function_error error_of(const invocation_response& response) {
  if (!response.is_success()) {
    return {.error_type = response.get_error_type(),
            .error_message = response.get_error_message(),
            .stack_trace = response.get_stack_trace()};
  }
  return {.error_type = "Function.ResponseSizeTooLarge",
          .error_message = fmt::format(
              "Response payload size ({} bytes) exceeded maximum allowed payload size ({} bytes).",
              response.get_payload().size(), runtime_api::max_runtime_post_bytes),
          .stack_trace = {}};
}

}  // namespace

runtime_api::result to_result(invocation_response response) {
  runtime_api::result result;
  if (response.is_success() &&
      response.get_payload().size() <= runtime_api::max_runtime_post_bytes) {
    result.outcome = runtime_api::result::kind::success;
    result.body = response_access::take_payload(response);
    result.content_type = response.get_content_type();
  } else {
    runtime_api::function_error error = error_of(response);
    result.outcome = runtime_api::result::kind::function_error;
    result.body = runtime_api::format_error(error);
    result.error_type = std::move(error.error_type);
  }
  return result;
}

// Arguments of co_await calls are named locals: GCC 12 destroys some temporaries in a
// co_await full-expression twice.
asio::awaitable<void> post_result(client& api, const std::string& request_id,
                                  runtime_api::result result) {
  if (result.relayed) co_return;  // the runtime's own post already reached the Runtime API
  try {
    if (result.pieces) {
      co_await api.post_streaming_response(request_id, result.content_type, *result.pieces);
    } else if (result.outcome == runtime_api::result::kind::success) {
      co_await api.post_response(request_id, std::move(result.body), result.content_type);
    } else {
      co_await api.post_error_body(request_id, std::move(result.body), result.error_type);
    }
  } catch (const client_error& e) {
    // The Runtime API refused this one result (say, the invocation already timed out): the
    // next invocation can still run. A 5xx or a lost connection means exit.
    if (e.code() != client_errc::http_status || e.http_status().value_or(500) >= 500) throw;
    say(fmt::format("result of {} not accepted: {}", request_id, e.what()));
  }
}

namespace {

asio::awaitable<void> serve(client& api, const handler_function& handler,
                            std::size_t max_invocations, invocation_hook hook) {
  for (std::size_t handled = 0; max_invocations == 0 || handled < max_invocations; ++handled) {
    runtime_api::invocation invocation = co_await api.next();
    // A result posted with the GET /next behind it is answered with that /next: its refusal
    // is told here, as post_result tells it otherwise.
    if (auto refused = api.take_refused_result()) {
      say(fmt::format("result not accepted: {}", refused->what()));
    }
    const std::string request_id = invocation.context.request_id;
    std::optional<runtime_api::result> result;
    if (hook) result = co_await hook(invocation);
    if (!result) {
      const invocation_request request = to_request(std::move(invocation));
      set_trace_env(request.xray_trace_id);
      result = to_result(call_handler(handler, request));
    }
    // The last one posts without a GET /next behind it: the runtime then ends.
    api.expect_next(max_invocations == 0 || handled + 1 < max_invocations);
    co_await post_result(api, request_id, std::move(*result));
  }
}

// Runs `work` on a fresh io_context on this thread; a client_error ends it with one line on
// stderr, anything else propagates.
template <typename Work>
void run_on_this_thread(const std::string& address, Work work) {
  asio::io_context io(1);
  std::optional<client> api;
  std::exception_ptr failure;
  try {
    api.emplace(io.get_executor(), address);
    asio::co_spawn(io, work(*api, io.get_executor()), [&failure, &api](std::exception_ptr e) {
      failure = std::move(e);
      api->stop_watchdog();  // done: nothing is left to bound
    });
    io.run();
    if (failure) std::rethrow_exception(failure);
  } catch (const client_error& e) {
    say(e.what());
  }
}

std::optional<std::string> runtime_api_address(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* address = std::getenv(std::string(runtime_api::runtime_api_env).c_str());
  if (address != nullptr && *address != '\0') return std::string(address);
  say(
      fmt::format("{} is not set, so there is no Lambda Runtime API to take invocations from; this "
                  "program runs as a Lambda function (a custom runtime's bootstrap)",
                  runtime_api::runtime_api_env));
  return std::nullopt;
}

}  // namespace

int run_loop(const handler_function& handler, const run_options& options,
             const hook_factory& make_hook) {
  const auto address = runtime_api_address(options.runtime_api);
  if (!address) return 1;
  run_on_this_thread(*address, [&](client& api, asio::any_io_executor executor) {
    invocation_hook hook = make_hook ? make_hook(std::move(executor)) : invocation_hook();
    return serve(api, handler, options.max_invocations, std::move(hook));
  });
  return 0;
}

int run_handler(const handler_function& handler, const run_options& options) {
  return run_loop(handler, options, {});
}

int run_handler(const handler_function& handler) {
  return run_handler(handler, run_options{});
}

void report_init_error(std::string error_type, std::string error_message) {
  const auto address = runtime_api_address({});
  if (!address) return;
  runtime_api::function_error error{.error_type = std::move(error_type),
                                    .error_message = std::move(error_message),
                                    .stack_trace = {}};
  try {
    run_on_this_thread(*address, [&error](client& api, const asio::any_io_executor&) {
      return api.post_init_error(error);
    });
  } catch (const std::exception& e) {
    say(fmt::format("could not report the init error: {}", e.what()));
  }
}

}  // namespace funcie::runtime
