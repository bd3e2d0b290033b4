#include "tunnel/envelope.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <limits>

namespace funcie::tunnel {

namespace json = boost::json;
using runtime_api::protocol_error;

namespace {

constexpr std::string_view magic = "funcie/";
// "funcie/" + up to 9 digits + " " + the longest kind + "\n".
constexpr std::size_t max_first_line = 32;
constexpr unsigned max_memory_mb = 10240;

std::string_view kind_name(message_kind kind) {
  switch (kind) {
    case message_kind::request:
      return "request";
    case message_kind::response:
      return "response";
    case message_kind::notice:
      return "notice";
  }
  return "?";
}

// Header strings are JSON text and must be UTF-8; fields such as an error type come from a
// runtime and may not be.
std::string text(const std::string& s) {
  return runtime_api::valid_utf8(s);
}

encoded_parts assemble_parts(message_kind kind, const json::object& header, std::string_view body) {
  const std::string head = json::serialize(header);
  encoded_parts out;
  out.head.reserve(magic.size() + 12 + head.size() + 1);
  out.head.append(magic);
  out.head.append(std::to_string(protocol_version));
  out.head.push_back(' ');
  out.head.append(kind_name(kind));
  out.head.push_back('\n');
  out.head.append(head);
  out.head.push_back('\n');
  out.body = body;
  return out;
}

std::string assemble(message_kind kind, const json::object& header, std::string_view body) {
  return assemble_parts(kind, header, body).joined();
}

struct parts {
  json::object header;
  std::string_view body;
};

// Splits and checks the framing; the header is parsed but its fields are not yet checked.
parts split(std::string_view bytes, message_kind expected) {
  if (peek_kind(bytes) != expected) {
    throw protocol_error("expected a " + std::string(kind_name(expected)) + " message, got a " +
                         std::string(kind_name(peek_kind(bytes))));
  }
  const auto first_end = bytes.find('\n');
  const auto rest = bytes.substr(first_end + 1);
  const auto header_end = rest.substr(0, max_header_bytes + 1).find('\n');
  if (header_end == std::string_view::npos) {
    throw protocol_error(rest.size() > max_header_bytes
                             ? "the envelope header is longer than 64 KiB"
                             : "the envelope header is not terminated by a newline");
  }
  boost::system::error_code ec;
  json::value header = json::parse(rest.substr(0, header_end), ec);
  if (ec) throw protocol_error("the envelope header is not valid JSON: " + ec.message());
  if (!header.is_object()) throw protocol_error("the envelope header is not a JSON object");
  const auto body = rest.substr(header_end + 1);
  if (body.size() > max_body_bytes) {
    throw protocol_error("the envelope body is larger than 6 MiB + 100 bytes");
  }
  return {std::move(header.as_object()), body};
}

// Field readers: absent means the default; present with the wrong type is an error.
std::string get_string(const json::object& o, std::string_view key, bool required = false) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) {
    if (required) throw protocol_error("the envelope header has no \"" + std::string(key) + "\"");
    return {};
  }
  if (!v->is_string()) {
    throw protocol_error("\"" + std::string(key) + "\" in the envelope header is not a string");
  }
  return std::string(v->get_string());
}

bool get_bool(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return false;
  if (!v->is_bool()) {
    throw protocol_error("\"" + std::string(key) +
                         "\" in the envelope header is not true or false");
  }
  return v->get_bool();
}

std::int64_t get_int(const json::object& o, std::string_view key, std::int64_t min,
                     std::int64_t max) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return 0;
  std::int64_t n = 0;
  if (v->is_int64()) {
    n = v->get_int64();
  } else if (v->is_uint64() && v->get_uint64() <= std::uint64_t(max)) {
    n = static_cast<std::int64_t>(v->get_uint64());
  } else {
    throw protocol_error("\"" + std::string(key) + "\" in the envelope header is not an integer");
  }
  if (n < min || n > max) {
    throw protocol_error("\"" + std::string(key) + "\" in the envelope header is out of range");
  }
  return n;
}

const json::object& get_object(const json::object& o, std::string_view key) {
  static const json::object empty;
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return empty;
  if (!v->is_object()) {
    throw protocol_error("\"" + std::string(key) + "\" in the envelope header is not an object");
  }
  return v->get_object();
}

void read_id_and_app(const json::object& h, std::string& id, std::string& app) {
  id = get_string(h, "id", true);
  if (!is_valid_id(id)) throw protocol_error("the envelope id is not 32 lowercase hex digits");
  app = get_string(h, "app", true);
  if (!is_valid_app(app)) throw protocol_error("the envelope's app name is not valid");
}

}  // namespace

bool is_valid_app(std::string_view app) {
  if (app.empty() || app.size() > 64) return false;
  for (char c : app) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool is_valid_id(std::string_view id) {
  if (id.size() != 32) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

encoded_parts encode_parts(const request& m) {
  const auto& c = m.context;
  json::object context{
      {"request_id", text(c.request_id)},
      {"deadline_ms", c.deadline_ms},
  };
  auto put = [&](json::object& o, std::string_view key, const std::string& value) {
    if (!value.empty()) o[key] = text(value);
  };
  put(context, "function_arn", c.function_arn);
  put(context, "trace_id", c.trace_id);
  put(context, "client_context", c.client_context);
  put(context, "cognito_identity", c.cognito_identity);
  put(context, "tenant_id", c.tenant_id);
  json::object function;
  put(function, "name", m.function.name);
  put(function, "version", m.function.version);
  if (m.function.memory_mb != 0) function["memory_mb"] = m.function.memory_mb;
  put(function, "region", m.function.region);
  put(function, "log_group", m.function.log_group);
  put(function, "log_stream", m.function.log_stream);
  put(function, "handler", m.function.handler);
  json::object header{{"id", text(m.id)}, {"app", text(m.app)}, {"sent_ms", m.sent_ms}};
  if (m.answer_by_ms != 0) header["answer_by_ms"] = m.answer_by_ms;
  header["context"] = std::move(context);
  header["function"] = std::move(function);
  if (!m.credentials.empty()) {
    json::object credentials;
    put(credentials, "access_key_id", m.credentials.access_key_id);
    put(credentials, "secret_access_key", m.credentials.secret_access_key);
    put(credentials, "session_token", m.credentials.session_token);
    header["credentials"] = std::move(credentials);
  }
  if (m.stream) header["stream"] = true;
  return assemble_parts(message_kind::request, header, m.payload);
}

std::string encode(const request& m) {
  return encode_parts(m).joined();
}

encoded_parts encode_parts(const response& m) {
  json::object header{
      {"id", text(m.id)},
      {"app", text(m.app)},
      {"consumer", text(m.consumer)},
      {"outcome", m.result == response::outcome::success ? "success" : "error"},
  };
  if (!m.content_type.empty()) header["content_type"] = text(m.content_type);
  if (!m.error_type.empty()) header["error_type"] = text(m.error_type);
  if (m.is_piece()) {
    header["piece"] = m.piece;
    header["more"] = m.more;
  }
  return assemble_parts(message_kind::response, header, m.body);
}

std::string encode(const response& m) {
  return encode_parts(m).joined();
}

std::string encode(const notice& m) {
  json::object header{{"id", text(m.id)}, {"app", text(m.app)}};
  return assemble(message_kind::notice, header, {});
}

std::string encoded_parts::joined() const {
  std::string out;
  out.reserve(head.size() + body.size());
  out.append(head);
  out.append(body);
  return out;
}

message_kind peek_kind(std::string_view bytes) {
  const auto line_end = bytes.substr(0, max_first_line).find('\n');
  if (!bytes.starts_with(magic) || line_end == std::string_view::npos) {
    throw protocol_error("not a funcie envelope (it must start with \"funcie/1 \")");
  }
  const auto line = bytes.substr(magic.size(), line_end - magic.size());
  const auto space = line.find(' ');
  if (space == std::string_view::npos || space == 0) {
    throw protocol_error("the envelope's first line has no version and kind");
  }
  int version = 0;
  const auto digits = line.substr(0, space);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
  if (ec != std::errc() || end != digits.data() + digits.size() || version < 0) {
    throw protocol_error("the envelope's version is not a number");
  }
  if (version != protocol_version) {
    throw protocol_error("the envelope is protocol version " + std::to_string(version) +
                         "; this funcie speaks version " + std::to_string(protocol_version) +
                         ": run the same funcie release on both sides");
  }
  const auto kind = line.substr(space + 1);
  if (kind == "request") return message_kind::request;
  if (kind == "response") return message_kind::response;
  if (kind == "notice") return message_kind::notice;
  throw protocol_error("the envelope's kind is unknown");
}

namespace {

/// The body as a string: copied from `bytes`, or, when `owned` holds those bytes, the same
/// buffer with the header cut off (no second 6 MB allocation).
std::string take_body(std::string_view bytes, std::string_view body, std::string* owned) {
  if (owned == nullptr) return std::string(body);
  const auto at = static_cast<std::size_t>(body.data() - bytes.data());
  std::string out = std::move(*owned);
  out.erase(0, at);
  return out;
}

request decode_request_from(std::string_view bytes, std::string* owned) {
  auto [h, body] = split(bytes, message_kind::request);
  if (body.size() > runtime_api::max_payload_bytes) {
    throw protocol_error("the request's event is larger than Lambda's 6 MiB");
  }
  request m;
  read_id_and_app(h, m.id, m.app);
  m.sent_ms = get_int(h, "sent_ms", 0, std::numeric_limits<std::int64_t>::max());
  m.answer_by_ms = get_int(h, "answer_by_ms", 0, std::numeric_limits<std::int64_t>::max());
  const auto& c = get_object(h, "context");
  m.context.request_id = get_string(c, "request_id", true);
  if (!runtime_api::is_valid_request_id(m.context.request_id)) {
    throw protocol_error("the request id in the envelope is malformed");
  }
  m.context.deadline_ms = get_int(c, "deadline_ms", 0, std::numeric_limits<std::int64_t>::max());
  m.context.function_arn = get_string(c, "function_arn");
  m.context.trace_id = get_string(c, "trace_id");
  m.context.client_context = get_string(c, "client_context");
  m.context.cognito_identity = get_string(c, "cognito_identity");
  m.context.tenant_id = get_string(c, "tenant_id");
  const auto& f = get_object(h, "function");
  m.function.name = get_string(f, "name");
  m.function.version = get_string(f, "version");
  m.function.memory_mb = static_cast<unsigned>(get_int(f, "memory_mb", 0, max_memory_mb));
  m.function.region = get_string(f, "region");
  m.function.log_group = get_string(f, "log_group");
  m.function.log_stream = get_string(f, "log_stream");
  m.function.handler = get_string(f, "handler");
  const auto& k = get_object(h, "credentials");
  m.credentials.access_key_id = get_string(k, "access_key_id");
  m.credentials.secret_access_key = get_string(k, "secret_access_key");
  m.credentials.session_token = get_string(k, "session_token");
  if (!m.credentials.empty() && m.credentials.secret_access_key.empty()) {
    throw protocol_error("the request's credentials have a key id but no secret key");
  }
  m.stream = get_bool(h, "stream");
  m.payload = take_body(bytes, body, owned);
  return m;
}

response decode_response_from(std::string_view bytes, std::string* owned) {
  auto [h, body] = split(bytes, message_kind::response);
  response m;
  read_id_and_app(h, m.id, m.app);
  m.consumer = get_string(h, "consumer", true);
  if (!is_valid_id(m.consumer)) {
    throw protocol_error("the response's consumer id is not 32 lowercase hex digits");
  }
  const auto outcome = get_string(h, "outcome", true);
  if (outcome == "success") {
    m.result = response::outcome::success;
  } else if (outcome == "error") {
    m.result = response::outcome::error;
  } else {
    throw protocol_error("the response's outcome is neither \"success\" nor \"error\"");
  }
  m.content_type = get_string(h, "content_type");
  m.error_type = get_string(h, "error_type");
  if (h.if_contains("piece") != nullptr && !h.at("piece").is_null()) {
    m.piece = get_int(h, "piece", 0, std::numeric_limits<std::int64_t>::max());
    m.more = get_bool(h, "more");
    if (m.more && m.result != response::outcome::success) {
      throw protocol_error("a response piece with more after it has the outcome \"error\"");
    }
  } else if (h.if_contains("more") != nullptr && !h.at("more").is_null()) {
    throw protocol_error("the response has \"more\" but no \"piece\"");
  }
  m.body = take_body(bytes, body, owned);
  return m;
}

}  // namespace

request decode_request(std::string_view bytes) {
  return decode_request_from(bytes, nullptr);
}

request decode_request_owned(std::string&& bytes) {
  const std::string_view view = bytes;
  return decode_request_from(view, &bytes);
}

response decode_response(std::string_view bytes) {
  return decode_response_from(bytes, nullptr);
}

response decode_response_owned(std::string&& bytes) {
  const std::string_view view = bytes;
  return decode_response_from(view, &bytes);
}

notice decode_notice(std::string_view bytes) {
  auto [h, body] = split(bytes, message_kind::notice);
  if (!body.empty()) throw protocol_error("a notice carries no body");
  notice m;
  read_id_and_app(h, m.id, m.app);
  return m;
}

}  // namespace funcie::tunnel
