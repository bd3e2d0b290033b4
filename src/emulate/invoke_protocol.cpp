#include "emulate/invoke_protocol.hpp"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <array>

namespace funcie::emulate {
namespace {

constexpr std::string_view invoke_prefix = "/2015-03-31/functions/";
constexpr std::string_view invoke_suffix = "/invocations";
constexpr std::size_t max_client_context_bytes = 3583;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) {
      throw protocol_error("the function name has a truncated percent escape");
    }
    int hi = hex_value(in[i + 1]);
    int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) throw protocol_error("the function name has a bad percent escape");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool is_valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

// "$LATEST", a version number, or an alias.
bool is_valid_qualifier(std::string_view q) {
  if (q == "$LATEST") return true;
  if (q.empty() || q.size() > 128) return false;
  for (char c : q) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (;;) {
    auto at = s.find(sep);
    parts.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

function_ref parse_function_name(std::string_view raw) {
  function_ref ref;
  auto parts = split(raw, ':');
  std::string_view name;
  std::string_view qualifier;
  if (parts.size() >= 7 && parts[0] == "arn") {
    // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
    if (parts.size() > 8 || parts[2] != "lambda" || parts[5] != "function") {
      throw protocol_error(
          "the function ARN is not of the form arn:aws:lambda:REGION:ACCOUNT:"
          "function:NAME");
    }
    ref.region = std::string(parts[3]);
    ref.account = std::string(parts[4]);
    name = parts[6];
    if (parts.size() == 8) qualifier = parts[7];
  } else if (parts.size() >= 3 && parts[1] == "function") {
    // ACCOUNT:function:NAME[:QUALIFIER]
    if (parts.size() > 4) throw protocol_error("the partial function ARN has too many parts");
    ref.account = std::string(parts[0]);
    name = parts[2];
    if (parts.size() == 4) qualifier = parts[3];
  } else if (parts.size() <= 2) {
    name = parts[0];
    if (parts.size() == 2) qualifier = parts[1];
  } else {
    throw protocol_error("the function name has too many ':' separated parts");
  }
  if (!is_valid_name(name)) {
    throw protocol_error("the function name must be 1 to 64 letters, digits, '-' or '_'");
  }
  if (parts.size() > 1 && (qualifier.data() != nullptr) && !is_valid_qualifier(qualifier)) {
    throw protocol_error("the function qualifier is malformed");
  }
  ref.name = std::string(name);
  ref.qualifier = std::string(qualifier);
  return ref;
}

// A JSON handler that keeps nothing: Boost.JSON's basic_parser validates the text without
// building a tree, so a 6 MB event is checked without allocating.
struct validating_handler {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);
  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) { return true; }
  bool on_object_end(std::size_t, boost::system::error_code&) { return true; }
  bool on_array_begin(boost::system::error_code&) { return true; }
  bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
  bool on_key_part(boost::json::string_view, std::size_t, boost::system::error_code&) {
    return true;
  }
  bool on_key(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string_part(boost::json::string_view, std::size_t, boost::system::error_code&) {
    return true;
  }
  bool on_string(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_uint64(std::uint64_t, boost::json::string_view, boost::system::error_code&) {
    return true;
  }
  bool on_double(double, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_bool(bool, boost::system::error_code&) { return true; }
  bool on_null(boost::system::error_code&) { return true; }
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }
};

std::string base64_decode(std::string_view in) {
  static constexpr auto table = [] {
    std::array<signed char, 256> t{};
    t.fill(-1);
    constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (std::size_t i = 0; i < alphabet.size(); ++i) {
      t[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
    }
    return t;
  }();
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) throw protocol_error("X-Amz-Client-Context is not valid base64");
  std::string out;
  out.reserve(in.size() * 3 / 4);
  unsigned buffer = 0;
  int bits = 0;
  for (char c : in) {
    int v = table[static_cast<unsigned char>(c)];
    if (v < 0) throw protocol_error("X-Amz-Client-Context is not valid base64");
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

}  // namespace

namespace {

std::optional<function_ref> parse_function_target(std::string_view target, std::string_view prefix,
                                                  std::string_view suffix) {
  std::string_view query;
  if (auto at = target.find('?'); at != std::string_view::npos) {
    query = target.substr(at + 1);
    target = target.substr(0, at);
  }
  if (!target.starts_with(prefix) || !target.ends_with(suffix)) return std::nullopt;
  if (target.size() < prefix.size() + suffix.size()) return std::nullopt;
  auto encoded = target.substr(prefix.size(), target.size() - prefix.size() - suffix.size());
  if (encoded.empty() || encoded.find('/') != std::string_view::npos) return std::nullopt;

  auto ref = parse_function_name(percent_decode(encoded));
  for (auto param : split(query, '&')) {
    if (!param.starts_with("Qualifier=")) continue;
    auto qualifier = percent_decode(param.substr(10));
    if (!is_valid_qualifier(qualifier))
      throw protocol_error("the Qualifier parameter is malformed");
    if (!ref.qualifier.empty() && ref.qualifier != qualifier) {
      throw protocol_error("the qualifier in the function name and the Qualifier parameter differ");
    }
    ref.qualifier = std::move(qualifier);
  }
  return ref;
}

}  // namespace

std::optional<function_ref> parse_invoke_target(std::string_view target) {
  return parse_function_target(target, invoke_prefix, invoke_suffix);
}

std::optional<api_route> parse_api_route(std::string_view method, std::string_view target) {
  if (method == "POST") {
    if (auto ref = parse_function_target(target, invoke_prefix, invoke_suffix)) {
      return api_route{operation::invoke, std::move(*ref)};
    }
    if (auto ref = parse_function_target(target, "/2021-11-15/functions/",
                                         "/response-streaming-invocations")) {
      return api_route{operation::invoke_with_response_stream, std::move(*ref)};
    }
    return std::nullopt;
  }
  if (method != "GET") return std::nullopt;
  const std::string_view path = target.substr(0, target.find('?'));
  if (path == "/2015-03-31/functions" || path == "/2015-03-31/functions/") {
    return api_route{operation::list_functions, {}};
  }
  if (auto ref = parse_function_target(target, invoke_prefix, "/configuration")) {
    return api_route{operation::get_function_configuration, std::move(*ref)};
  }
  if (auto ref = parse_function_target(target, invoke_prefix, "")) {
    return api_route{operation::get_function, std::move(*ref)};
  }
  return std::nullopt;
}

bool parse_log_type(std::string_view value) {
  if (value.empty() || value == "None") return false;
  if (value == "Tail") return true;
  throw protocol_error("X-Amz-Log-Type must be None or Tail");
}

std::uint32_t crc32(std::string_view bytes, std::uint32_t crc) {
  static constexpr auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1U) != 0 ? 0xEDB88320U ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (char ch : bytes) crc = table[(crc ^ static_cast<unsigned char>(ch)) & 0xFFU] ^ (crc >> 8);
  return ~crc;
}

std::string encode_event_message(
    const std::vector<std::pair<std::string_view, std::string_view>>& headers,
    std::string_view payload) {
  auto put32 = [](std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((v >> shift) & 0xFFU));
  };
  std::string encoded_headers;
  for (const auto& [name, value] : headers) {
    encoded_headers.push_back(static_cast<char>(name.size()));
    encoded_headers += name;
    encoded_headers.push_back(7);  // string
    encoded_headers.push_back(static_cast<char>((value.size() >> 8) & 0xFFU));
    encoded_headers.push_back(static_cast<char>(value.size() & 0xFFU));
    encoded_headers += value;
  }
  std::string message;
  const std::size_t total = 12 + encoded_headers.size() + payload.size() + 4;
  message.reserve(total);
  put32(message, static_cast<std::uint32_t>(total));
  put32(message, static_cast<std::uint32_t>(encoded_headers.size()));
  put32(message, crc32(message));
  message += encoded_headers;
  message += payload;
  put32(message, crc32(message));
  return message;
}

bool is_json(std::string_view bytes) {
  boost::json::basic_parser<validating_handler> parser{boost::json::parse_options{}};
  boost::system::error_code ec;
  auto used = parser.write_some(false, bytes.data(), bytes.size(), ec);
  // The parser stops after one complete value: anything left over ("{} {}") is not JSON.
  return !ec && parser.done() && used == bytes.size();
}

invocation_type parse_invocation_type(std::string_view value) {
  if (value.empty() || value == "RequestResponse") return invocation_type::request_response;
  if (value == "Event") return invocation_type::event;
  if (value == "DryRun") return invocation_type::dry_run;
  throw protocol_error("X-Amz-Invocation-Type must be RequestResponse, Event or DryRun");
}

std::string decode_client_context(std::string_view base64) {
  if (base64.size() > max_client_context_bytes) {
    throw protocol_error(
        "Client context must be 3583 bytes or less (X-Amz-Client-Context, base64-encoded)");
  }
  auto json = base64_decode(base64);
  if (!is_json(json)) throw protocol_error("X-Amz-Client-Context is not base64 of a JSON object");
  return json;
}

std::string format_service_error(const service_error& error) {
  boost::json::object body;
  body["Type"] = "User";
  body["message"] = runtime_api::valid_utf8(error.message);
  return boost::json::serialize(body);
}

}  // namespace funcie::emulate
