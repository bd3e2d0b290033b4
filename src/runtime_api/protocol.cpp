#include "runtime_api/protocol.hpp"
#include "runtime_api/pipelining.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace funcie::runtime_api {
namespace {

constexpr std::string_view invocation_prefix = "/2018-06-01/runtime/invocation/";

bool is_request_id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == ':';
}

std::optional<std::string_view> find(const header_lookup& lookup, std::string_view name) {
  auto value = lookup(name);
  if (value && value->empty()) return std::nullopt;
  return value;
}

}  // namespace

std::string valid_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    auto c = static_cast<unsigned char>(in[i]);
    std::size_t len = c < 0x80           ? 1
                      : (c >> 5) == 0x6  ? 2
                      : (c >> 4) == 0xE  ? 3
                      : (c >> 3) == 0x1E ? 4
                                         : 0;
    bool ok = len != 0 && i + len <= in.size();
    for (std::size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(in[i + k]) & 0xC0) == 0x80;
    }
    if (ok && len > 1) {
      auto c1 = static_cast<unsigned char>(in[i + 1]);
      if (len == 2) ok = c >= 0xC2;
      if (len == 3) ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
      if (len == 4) ok = c <= 0xF4 && !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

bool is_valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!is_request_id_char(c)) return false;
  }
  return true;
}

invocation_context parse_invocation_headers(const header_lookup& lookup) {
  invocation_context context;
  auto id = find(lookup, header::request_id);
  if (!id) throw protocol_error("the /next response has no Lambda-Runtime-Aws-Request-Id header");
  if (!is_valid_request_id(*id)) {
    throw protocol_error("the /next response has a malformed Lambda-Runtime-Aws-Request-Id");
  }
  context.request_id = std::string(*id);

  auto deadline = find(lookup, header::deadline_ms);
  if (!deadline)
    throw protocol_error("the /next response has no Lambda-Runtime-Deadline-Ms header");
  auto [end, ec] =
      std::from_chars(deadline->data(), deadline->data() + deadline->size(), context.deadline_ms);
  if (ec != std::errc{} || end != deadline->data() + deadline->size() || context.deadline_ms < 0) {
    throw protocol_error("Lambda-Runtime-Deadline-Ms is not a non-negative integer");
  }

  auto copy = [&](std::string_view name, std::string& into) {
    if (auto value = find(lookup, name)) into = std::string(*value);
  };
  copy(header::function_arn, context.function_arn);
  copy(header::trace_id, context.trace_id);
  copy(header::client_context, context.client_context);
  copy(header::cognito_identity, context.cognito_identity);
  copy(header::tenant_id, context.tenant_id);
  return context;
}

std::vector<std::pair<std::string_view, std::string_view>> invocation_headers(
    const invocation_context& context, std::string& deadline_buffer) {
  deadline_buffer = std::to_string(context.deadline_ms);
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  headers.reserve(7);
  headers.emplace_back(header::request_id, context.request_id);
  headers.emplace_back(header::deadline_ms, deadline_buffer);
  headers.emplace_back(header::function_arn, context.function_arn);
  if (!context.trace_id.empty()) headers.emplace_back(header::trace_id, context.trace_id);
  if (!context.client_context.empty()) {
    headers.emplace_back(header::client_context, context.client_context);
  }
  if (!context.cognito_identity.empty()) {
    headers.emplace_back(header::cognito_identity, context.cognito_identity);
  }
  if (!context.tenant_id.empty()) headers.emplace_back(header::tenant_id, context.tenant_id);
  return headers;
}

bool is_other_next_header(std::string_view name, std::string_view value) {
  auto is = [name](std::string_view known) {
    return name.size() == known.size() &&
           std::equal(name.begin(), name.end(), known.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) ==
                    std::tolower(static_cast<unsigned char>(b));
           });
  };
  for (std::string_view known :
       {header::request_id, header::deadline_ms, header::function_arn, header::trace_id,
        header::client_context, header::cognito_identity, header::tenant_id, header::pipelining,
        std::string_view("Content-Length"), std::string_view("Transfer-Encoding"),
        std::string_view("Connection"), std::string_view("Keep-Alive")}) {
    if (is(known)) return false;
  }
  // The Runtime API's own answer carries it; leaving the usual one out keeps the common
  // case free of copies.
  return !(is("Content-Type") && value == "application/json");
}

std::optional<route> parse_route(std::string_view method, std::string_view target) {
  if (auto query = target.find('?'); query != std::string_view::npos) {
    target = target.substr(0, query);
  }
  if (method == "GET" && target == "/2018-06-01/runtime/invocation/next") {
    return route{route_kind::next, {}};
  }
  if (method != "POST") return std::nullopt;
  if (target == "/2018-06-01/runtime/init/error") return route{route_kind::init_error, {}};
  if (!target.starts_with(invocation_prefix)) return std::nullopt;

  auto rest = target.substr(invocation_prefix.size());
  auto slash = rest.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto id = rest.substr(0, slash);
  auto action = rest.substr(slash + 1);
  route_kind kind;
  if (action == "response") {
    kind = route_kind::response;
  } else if (action == "error") {
    kind = route_kind::error;
  } else {
    return std::nullopt;
  }
  if (!is_valid_request_id(id)) throw protocol_error("the request id in the path is malformed");
  return route{kind, std::string(id)};
}

std::string route_path(route_kind kind, std::string_view request_id) {
  std::string path;
  switch (kind) {
    case route_kind::next:
      return "/2018-06-01/runtime/invocation/next";
    case route_kind::init_error:
      return "/2018-06-01/runtime/init/error";
    case route_kind::response:
    case route_kind::error:
      path.reserve(invocation_prefix.size() + request_id.size() + 9);
      path.append(invocation_prefix).append(request_id);
      path.append(kind == route_kind::response ? "/response" : "/error");
      return path;
  }
  return path;
}

std::string format_error(const function_error& error) {
  boost::json::array trace;
  for (const auto& line : error.stack_trace) trace.emplace_back(valid_utf8(line));
  boost::json::object body;
  body["errorMessage"] = valid_utf8(error.error_message);
  body["errorType"] = valid_utf8(error.error_type);
  body["stackTrace"] = std::move(trace);
  return boost::json::serialize(body);
}

function_error parse_error(std::string_view body, std::string_view type_header) {
  function_error error;
  error.error_type = type_header.empty() ? "Unhandled" : std::string(type_header);
  boost::system::error_code ec;
  auto value = boost::json::parse(body, ec);
  if (ec || !value.is_object()) return error;
  const auto& object = value.get_object();
  if (auto* type = object.if_contains("errorType"); type && type->is_string()) {
    error.error_type = std::string(type->get_string());
  }
  if (auto* message = object.if_contains("errorMessage"); message && message->is_string()) {
    error.error_message = std::string(message->get_string());
  }
  if (auto* trace = object.if_contains("stackTrace"); trace && trace->is_array()) {
    for (const auto& line : trace->get_array()) {
      if (line.is_string()) error.stack_trace.emplace_back(line.get_string());
    }
  }
  return error;
}

std::string format_api_error(std::string_view error_type, std::string_view message) {
  boost::json::object body;
  body["errorMessage"] = valid_utf8(message);
  body["errorType"] = valid_utf8(error_type);
  return boost::json::serialize(body);
}

}  // namespace funcie::runtime_api
