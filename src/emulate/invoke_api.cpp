#include "emulate/invoke_api.hpp"

#include "emulate/invoke_protocol.hpp"
#include "util/ids.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <chrono>

namespace funcie::emulate {

namespace asio = boost::asio;

namespace {

http::response service_failure(const service_error& error) {
  auto res = http::make_response(error.status, format_service_error(error), "application/json");
  res.set("x-amzn-ErrorType", error.type);
  res.set("x-amzn-RequestId", util::new_request_id());
  return res;
}

void log_outcome(const std::string& request_id, std::chrono::steady_clock::time_point start,
                 const outcome& result) {
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
  if (result.function_error) {
    spdlog::info("REPORT RequestId: {}  Duration: {:.2f} ms  Error: {}", request_id, ms.count(),
                 result.error_type);
  } else {
    spdlog::info("REPORT RequestId: {}  Duration: {:.2f} ms", request_id, ms.count());
  }
}

asio::awaitable<outcome> run(emulator& target, runtime_api::invocation inv) {
  try {
    co_return co_await target.invoke(std::move(inv));
  } catch (const process::spawn_error& e) {
    runtime_api::function_error error{"Runtime.InvalidEntrypoint", e.what(), {}};
    co_return outcome{true, runtime_api::format_error(error), "application/json", error.error_type};
  }
}

}  // namespace

invoke_api::invoke_api(asio::any_io_executor executor, emulator& target,
                       const asio::ip::tcp::endpoint& endpoint)
    : executor_(executor), emulator_(target) {
  http::handlers handlers{
      [this](http::request& req) { return handle(req); },
      [](const http::request_header&) {
        return service_failure({413, "RequestTooLargeException",
                                fmt::format("Request must be smaller than {} bytes for the "
                                            "InvokeFunction operation",
                                            max_invoke_request_bytes)});
      }};
  server_ = std::make_unique<http::server>(
      executor, endpoint, http::server_options{max_invoke_request_bytes, 16 * 1024},
      std::move(handlers));
  server_->start();
}

std::uint16_t invoke_api::port() const {
  return server_->port();
}

void invoke_api::stop() {
  server_->stop();
}

asio::awaitable<http::response> invoke_api::handle(http::request& req) {
  const auto& config = emulator_.config();
  std::optional<function_ref> ref;
  try {
    ref = parse_invoke_target(std::string_view(req.target()));
  } catch (const protocol_error& e) {
    co_return service_failure({400, "ValidationException", e.what()});
  }
  if (!ref || req.method() != boost::beast::http::verb::post) {
    co_return service_failure(
        {404, "UnknownOperationException",
         fmt::format("{} {} is not an operation funcie emulate serves; invoke with POST "
                     "/2015-03-31/functions/{}/invocations",
                     std::string_view(req.method_string()), std::string_view(req.target()),
                     config.name)});
  }
  bool same_function = ref->name == config.name &&
                       (ref->region.empty() || ref->region == config.region) &&
                       (ref->account.empty() || ref->account == config.account) &&
                       (ref->qualifier.empty() || ref->qualifier == "$LATEST");
  if (!same_function) {
    auto arn = fmt::format("arn:aws:lambda:{}:{}:function:{}",
                           ref->region.empty() ? config.region : ref->region,
                           ref->account.empty() ? config.account : ref->account, ref->name);
    if (!ref->qualifier.empty()) arn += ":" + ref->qualifier;
    co_return service_failure({404, "ResourceNotFoundException", "Function not found: " + arn});
  }

  runtime_api::invocation inv;
  invocation_type type;
  try {
    type = parse_invocation_type(http::header_value(req, "X-Amz-Invocation-Type"));
    if (auto context = http::header_value(req, "X-Amz-Client-Context"); !context.empty()) {
      inv.context.client_context = decode_client_context(context);
    }
  } catch (const protocol_error& e) {
    co_return service_failure({400, "InvalidParameterValueException", e.what()});
  }
  // Lambda passes "{}" when the caller sends no payload.
  inv.payload = req.body().empty() ? std::string("{}") : std::move(req.body());
  if (!is_json(inv.payload)) {
    co_return service_failure({400, "InvalidRequestContentException",
                               "Could not parse request body into json: the payload is not one "
                               "valid JSON value"});
  }
  if (type == invocation_type::dry_run) co_return http::make_response(204, "", "");

  inv.context.request_id = util::new_request_id();
  inv.context.function_arn = config.arn();
  if (!ref->qualifier.empty()) inv.context.function_arn += ":" + ref->qualifier;
  auto trace = http::header_value(req, "X-Amzn-Trace-Id");
  inv.context.trace_id = trace.empty() ? util::new_trace_id() : std::string(trace);
  auto request_id = inv.context.request_id;
  auto start = std::chrono::steady_clock::now();

  if (type == invocation_type::event) {
    asio::co_spawn(
        executor_,
        [&target = emulator_, inv = std::move(inv), request_id,
         start]() mutable -> asio::awaitable<void> {
          try {
            auto result = co_await run(target, std::move(inv));
            log_outcome(request_id, start, result);
          } catch (const std::exception& e) {
            spdlog::warn("event invocation {} ended without a result: {}", request_id, e.what());
          }
        },
        asio::detached);
    auto res = http::make_response(202, "", "");
    res.set("x-amzn-RequestId", request_id);
    co_return res;
  }

  auto result = co_await run(emulator_, std::move(inv));
  log_outcome(request_id, start, result);
  // Invoke answers JSON whatever content type the runtime posted, as Lambda does.
  auto res = http::make_response(200, std::move(result.body), "application/json");
  res.set("x-amzn-RequestId", request_id);
  res.set("X-Amz-Executed-Version", "$LATEST");
  if (result.function_error) res.set("X-Amz-Function-Error", "Unhandled");
  co_return res;
}

}  // namespace funcie::emulate
