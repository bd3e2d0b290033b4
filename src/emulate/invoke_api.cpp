#include "emulate/invoke_api.hpp"

#include "emulate/invoke_protocol.hpp"
#include "util/base64.hpp"
#include "util/ids.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cmath>
#include <variant>

namespace funcie::emulate {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

namespace {

// Lambda's tail of the execution log (LogType Tail): the last 4 KB.
constexpr std::size_t log_tail_bytes = 4 * 1024;

http::response service_failure(const service_error& error) {
  auto res = http::make_response(error.status, format_service_error(error), "application/json");
  res.set("x-amzn-ErrorType", error.type);
  res.set("x-amzn-RequestId", util::new_request_id());
  return res;
}

service_error too_large_error() {
  return {413, "RequestEntityTooLargeException",
          fmt::format("Request must be smaller than {} bytes for the InvokeFunction operation",
                      max_invoke_request_bytes)};
}

double elapsed_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

std::string report_line(const std::string& request_id, double ms, unsigned memory_mb) {
  return fmt::format(
      "REPORT RequestId: {}\tDuration: {:.2f} ms\tBilled Duration: {} ms\tMemory "
      "Size: {} MB\t",
      request_id, ms, static_cast<long>(std::ceil(ms)), memory_mb);
}

void log_outcome(const std::string& request_id, double ms, const outcome& result) {
  if (result.function_error) {
    spdlog::info("REPORT RequestId: {}  Duration: {:.2f} ms  Error: {}", request_id, ms,
                 result.error_type);
  } else {
    spdlog::info("REPORT RequestId: {}  Duration: {:.2f} ms", request_id, ms);
  }
}

// log_outcome once the handler in progress has given its answer to the server: the caller's
// answer is written first, the REPORT line (a write to a terminal or a file) right after it.
void log_outcome_after(const asio::any_io_executor& executor, std::string request_id, double ms,
                       const outcome& result) {
  asio::post(executor, [request_id = std::move(request_id), ms, failed = result.function_error,
                        type = result.error_type] {
    outcome seen;
    seen.function_error = failed;
    seen.error_type = type;
    log_outcome(request_id, ms, seen);
  });
}

// The base64 of the last 4 KB of the invocation's log, as Lambda frames it.
std::string log_result(const std::string& request_id, double ms, const outcome& result,
                       unsigned memory_mb) {
  std::string log = fmt::format("START RequestId: {} Version: $LATEST\n", request_id);
  log += result.log;
  log += fmt::format("END RequestId: {}\n", request_id);
  log += report_line(request_id, ms, memory_mb);
  log += '\n';
  if (log.size() > log_tail_bytes) log.erase(0, log.size() - log_tail_bytes);
  return util::to_base64(log);
}

asio::awaitable<outcome> run(emulator& target, runtime_api::invocation inv,
                             const stream_sink* sink = nullptr) {
  try {
    co_return co_await target.invoke(std::move(inv), 0, sink);
  } catch (const process::spawn_error& e) {
    runtime_api::function_error error{"Runtime.InvalidEntrypoint", e.what(), {}};
    co_return outcome{
        true, runtime_api::format_error(error), "application/json", error.error_type, false, {}};
  }
}

// FunctionConfiguration as GetFunctionConfiguration, GetFunction and ListFunctions give it.
boost::json::object configuration(const function_config& config) {
  boost::json::object variables;
  for (const auto& [key, value] : config.environment) variables[key] = value;
  boost::json::object out;
  out["FunctionName"] = config.name;
  out["FunctionArn"] = config.arn();
  out["Runtime"] = config.runtime;
  out["Role"] = fmt::format("arn:aws:iam::{}:role/funcie-emulate", config.account);
  out["Handler"] = config.handler;
  out["CodeSize"] = 0;
  out["Description"] = "";
  out["Timeout"] = static_cast<std::int64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(config.timeout).count());
  out["MemorySize"] = config.memory_mb;
  out["LastModified"] = config.last_modified;
  out["CodeSha256"] = "";
  out["Version"] = "$LATEST";
  out["Environment"] = boost::json::object{{"Variables", std::move(variables)}};
  out["TracingConfig"] = boost::json::object{{"Mode", "PassThrough"}};
  out["State"] = "Active";
  out["LastUpdateStatus"] = "Successful";
  out["PackageType"] = "Zip";
  out["Architectures"] = boost::json::array{"x86_64"};
  out["EphemeralStorage"] = boost::json::object{{"Size", 512}};
  return out;
}

http::response json_response(const boost::json::object& body) {
  auto res = http::make_response(200, boost::json::serialize(body), "application/json");
  res.set("x-amzn-RequestId", util::new_request_id());
  return res;
}

// An HTTP chunk of `bytes`.
std::string http_chunk(std::string_view bytes) {
  return fmt::format("{:x}\r\n{}\r\n", bytes.size(), bytes);
}

std::string payload_chunk(std::string_view bytes) {
  return encode_event_message({{":event-type", "PayloadChunk"},
                               {":content-type", "application/octet-stream"},
                               {":message-type", "event"}},
                              bytes);
}

}  // namespace

invoke_api::invoke_api(asio::any_io_executor executor, emulator& target,
                       const asio::ip::tcp::endpoint& endpoint)
    : executor_(executor), emulator_(target) {
  http::handlers handlers{
      [this](http::request& req) { return handle(req); },
      [](const http::request_header&) { return service_failure(too_large_error()); },
      [](const http::request_header& req) {
        try {
          auto route = parse_api_route(std::string_view(req.method_string()),
                                       std::string_view(req.target()));
          return route && route->op == operation::invoke_with_response_stream;
        } catch (const protocol_error&) {
          return false;
        }
      },
      [this](http::streamed_request& in) { return invoke_streaming(in); },
      {}};
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

std::optional<http::response> invoke_api::not_this_function(const function_ref& ref) const {
  const auto& config = emulator_.config();
  const bool same_function = ref.name == config.name &&
                             (ref.region.empty() || ref.region == config.region) &&
                             (ref.account.empty() || ref.account == config.account) &&
                             (ref.qualifier.empty() || ref.qualifier == "$LATEST");
  if (same_function) return std::nullopt;
  auto arn = fmt::format("arn:aws:lambda:{}:{}:function:{}",
                         ref.region.empty() ? config.region : ref.region,
                         ref.account.empty() ? config.account : ref.account, ref.name);
  if (!ref.qualifier.empty()) arn += ":" + ref.qualifier;
  return service_failure({404, "ResourceNotFoundException", "Function not found: " + arn});
}

std::variant<http::response, invoke_api::prepared> invoke_api::prepare(
    const http::request_header& req, const function_ref& ref, std::string body) const {
  const auto& config = emulator_.config();
  if (auto missing = not_this_function(ref)) return std::move(*missing);
  prepared p;
  try {
    p.type = parse_invocation_type(http::header_value(req, "X-Amz-Invocation-Type"));
    p.tail = parse_log_type(http::header_value(req, "X-Amz-Log-Type"));
    if (auto context = http::header_value(req, "X-Amz-Client-Context"); !context.empty()) {
      p.inv.context.client_context = decode_client_context(context);
    }
  } catch (const protocol_error& e) {
    return service_failure({400, "InvalidParameterValueException", e.what()});
  }
  // Lambda passes "{}" when the caller sends no payload.
  p.inv.payload = body.empty() ? std::string("{}") : std::move(body);
  if (!is_json(p.inv.payload)) {
    return service_failure({400, "InvalidRequestContentException",
                            "Could not parse request body into json: the payload is not one "
                            "valid JSON value"});
  }
  p.inv.context.request_id = util::new_request_id();
  p.inv.context.function_arn = config.arn();
  if (!ref.qualifier.empty()) p.inv.context.function_arn += ":" + ref.qualifier;
  auto trace = http::header_value(req, "X-Amzn-Trace-Id");
  p.inv.context.trace_id = trace.empty() ? util::new_trace_id() : std::string(trace);
  return p;
}

asio::awaitable<http::response> invoke_api::handle(http::request& req) {
  const auto& config = emulator_.config();
  std::optional<api_route> route;
  try {
    route = parse_api_route(std::string_view(req.method_string()), std::string_view(req.target()));
  } catch (const protocol_error& e) {
    co_return service_failure({400, "ValidationException", e.what()});
  }
  if (!route) {
    co_return service_failure(
        {404, "UnknownOperationException",
         fmt::format("{} {} is not an operation funcie emulate serves; it serves Invoke (POST "
                     "/2015-03-31/functions/{}/invocations), InvokeWithResponseStream, "
                     "GetFunction, GetFunctionConfiguration and ListFunctions",
                     std::string_view(req.method_string()), std::string_view(req.target()),
                     config.name)});
  }
  switch (route->op) {
    case operation::list_functions:
      co_return json_response(
          {{"Functions", boost::json::array{configuration(config)}}, {"NextMarker", nullptr}});
    case operation::get_function_configuration:
      if (auto missing = not_this_function(route->function)) co_return std::move(*missing);
      co_return json_response(configuration(config));
    case operation::get_function:
      if (auto missing = not_this_function(route->function)) co_return std::move(*missing);
      co_return json_response(
          {{"Configuration", configuration(config)},
           {"Code", boost::json::object{{"RepositoryType", "S3"}, {"Location", ""}}},
           {"Tags", boost::json::object{}}});
    case operation::invoke:
    case operation::invoke_with_response_stream:
      break;
  }

  auto prepared_or_error = prepare(req.base(), route->function, std::move(req.body()));
  if (auto* refused = std::get_if<http::response>(&prepared_or_error))
    co_return std::move(*refused);
  auto& p = std::get<prepared>(prepared_or_error);
  if (p.type == invocation_type::dry_run) co_return http::make_response(204, "", "");
  const auto request_id = p.inv.context.request_id;
  const auto start = std::chrono::steady_clock::now();

  if (p.type == invocation_type::event) {
    asio::co_spawn(
        executor_,
        [&target = emulator_, inv = std::move(p.inv), request_id,
         start]() mutable -> asio::awaitable<void> {
          try {
            auto result = co_await run(target, std::move(inv));
            log_outcome(request_id, elapsed_ms(start), result);
          } catch (const std::exception& e) {
            spdlog::warn("event invocation {} ended without a result: {}", request_id, e.what());
          }
        },
        asio::detached);
    auto res = http::make_response(202, "", "");
    res.set("x-amzn-RequestId", request_id);
    co_return res;
  }

  // A streaming function's bytes are gathered into one response: a buffered Invoke of it
  // answers as a whole, within the 6 MB limit (docs/emulate.md).
  auto result = co_await run(emulator_, std::move(p.inv));
  const double ms = elapsed_ms(start);
  log_outcome_after(executor_, request_id, ms, result);
  // Invoke answers JSON whatever content type the runtime posted, as Lambda does.
  auto res = http::make_response(200, std::move(result.body), "application/json");
  res.set("x-amzn-RequestId", request_id);
  res.set("X-Amz-Executed-Version", "$LATEST");
  if (result.function_error) res.set("X-Amz-Function-Error", "Unhandled");
  if (p.tail) res.set("X-Amz-Log-Result", log_result(request_id, ms, result, config.memory_mb));
  co_return res;
}

asio::awaitable<bool> invoke_api::invoke_streaming(http::streamed_request& in) {
  const auto& config = emulator_.config();
  const bool keep_alive = http::wants_keep_alive(in.header());
  auto answer = [&](http::response res) -> asio::awaitable<bool> {
    res.keep_alive(keep_alive && res.keep_alive() && in.done());
    co_await in.write(res);
    co_return res.keep_alive();
  };
  // The event, whole (the 6 MB request limit holds as for Invoke). One a little over it is
  // read to its end before the 413, so that the caller sees the answer rather than a reset.
  constexpr std::size_t drain_limit = 16 * 1024 * 1024;
  const auto length = in.header()[bhttp::field::content_length];
  if (!length.empty() && (length.size() >= 20 || std::stoull(std::string(length)) > drain_limit)) {
    http::response refused = service_failure(too_large_error());
    co_return co_await answer(std::move(refused));
  }
  co_await in.send_continue();
  std::string body;
  std::size_t received = 0;
  while (!in.done()) {
    const auto piece = co_await in.read();
    received += piece.body.size();
    if (received <= max_invoke_request_bytes) body.append(piece.body);
    if (received > drain_limit) break;
  }
  if (received > max_invoke_request_bytes) {
    std::string().swap(body);
    http::response refused = service_failure(too_large_error());
    co_return co_await answer(std::move(refused));
  }
  const auto route = parse_api_route(std::string_view(in.header().method_string()),
                                     std::string_view(in.header().target()));
  auto prepared_or_error = prepare(in.header(), route->function, std::move(body));
  if (auto* refused = std::get_if<http::response>(&prepared_or_error)) {
    co_return co_await answer(std::move(*refused));
  }
  auto& p = std::get<prepared>(prepared_or_error);
  if (p.type == invocation_type::dry_run) {
    http::response nothing = http::make_response(204, "", "");
    co_return co_await answer(std::move(nothing));
  }
  if (p.type == invocation_type::event) {
    http::response refused = service_failure(
        {400, "InvalidParameterValueException",
         "InvokeWithResponseStream takes InvocationType RequestResponse or DryRun"});
    co_return co_await answer(std::move(refused));
  }
  const auto request_id = p.inv.context.request_id;
  const auto start = std::chrono::steady_clock::now();

  // The head goes out when the runtime starts its stream (it names the content type), the
  // bytes as PayloadChunk events as they come. A caller that went away is not written to
  // any more, and the function runs on to its end, as on Lambda.
  bool started = false;
  bool caller_gone = false;
  auto send = [&](std::string bytes) -> asio::awaitable<void> {
    if (caller_gone) co_return;
    try {
      co_await in.write_raw(bytes);
    } catch (const std::exception& e) {
      spdlog::debug("{}: the caller of the stream went away: {}", request_id, e.what());
      caller_gone = true;
    }
  };
  auto start_stream = [&](std::string_view content_type) -> asio::awaitable<void> {
    started = true;
    std::string head = fmt::format(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nx-amzn-RequestId: {}\r\n"
        "X-Amz-Executed-Version: $LATEST\r\nTransfer-Encoding: chunked\r\n{}\r\n",
        content_type, request_id, keep_alive ? "" : "Connection: close\r\n");
    co_await send(std::move(head));
  };
  const stream_sink sink{.start = start_stream,
                         .bytes = [&](std::string_view bytes) -> asio::awaitable<void> {
                           std::string chunk = http_chunk(payload_chunk(bytes));
                           co_await send(std::move(chunk));
                         }};
  auto result = co_await run(emulator_, std::move(p.inv), &sink);
  const double ms = elapsed_ms(start);
  log_outcome(request_id, ms, result);
  if (!started) {
    const std::string content_type =
        result.content_type.empty() ? std::string("application/json") : result.content_type;
    co_await start_stream(content_type);
  }
  // A function that does not stream answers in one piece, as Lambda sends it.
  if (!result.streamed && !result.function_error && !result.body.empty()) {
    std::string whole = http_chunk(payload_chunk(result.body));
    co_await send(std::move(whole));
  }
  boost::json::object complete;
  if (result.function_error) {
    complete["ErrorCode"] = result.error_type;
    complete["ErrorDetails"] = result.body;
  }
  if (p.tail) complete["LogResult"] = log_result(request_id, ms, result, config.memory_mb);
  std::string complete_event =
      http_chunk(encode_event_message({{":event-type", "InvokeComplete"},
                                       {":content-type", "application/json"},
                                       {":message-type", "event"}},
                                      boost::json::serialize(complete)));
  co_await send(std::move(complete_event));
  std::string last_chunk = "0\r\n\r\n";
  co_await send(std::move(last_chunk));
  co_return keep_alive && !caller_gone;
}

}  // namespace funcie::emulate
