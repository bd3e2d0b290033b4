#include "console/trigger.hpp"

#include "console/json_prune.hpp"
#include "console/trigger_reference.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>
#include <vector>

namespace funcie::console {
namespace {

namespace json = boost::json;

// ---------------------------------------------------------------------------------------
// Text

/// The code point that starts at s[i] and its length in bytes, or length 0 when the byte
/// there does not start a valid UTF-8 sequence (overlong forms, surrogates and values past
/// U+10FFFF are not valid).
struct decoded {
  char32_t cp = 0;
  std::size_t length = 0;
};

decoded decode_utf8(std::string_view s, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned lead = byte(i);
  if (lead < 0x80) return {lead, 1};
  std::size_t length = 0;
  char32_t cp = 0;
  char32_t smallest = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    cp = lead & 0x1Fu;
    smallest = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    cp = lead & 0x0Fu;
    smallest = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    cp = lead & 0x07u;
    smallest = 0x10000;
  } else {
    return {};
  }
  if (s.size() - i < length) return {};
  for (std::size_t k = 1; k < length; ++k) {
    const unsigned next = byte(i + k);
    if ((next & 0xC0u) != 0x80u) return {};
    cp = (cp << 6) | (next & 0x3Fu);
  }
  if (cp < smallest || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {};
  return {cp, length};
}

constexpr std::string_view hex_digits = "0123456789abcdef";

void append_hex_byte(std::string& out, unsigned char c) {
  out += "\\x";
  out.push_back(hex_digits[c >> 4]);
  out.push_back(hex_digits[c & 0xFu]);
}

// "\u009b" style: also a valid JSON escape, so JSON strings use it too.
void append_u_escape(std::string& out, char32_t cp) {
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out.push_back(hex_digits[(cp >> shift) & 0xFu]);
}

/// Characters that are not C0 controls but still change what a terminal shows around them:
/// C1 controls (U+009B is CSI on some terminals), bidirectional embeddings, overrides and
/// isolates ("Trojan Source"), and the line and paragraph separators.
bool is_unsafe_beyond_ascii(char32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029;
}

bool is_c0_or_del(char32_t cp) {
  return cp < 0x20 || cp == 0x7F;
}

/// The first line of `text` that has something besides blanks, without its line end and
/// surrounding blanks.
std::string_view first_line(std::string_view text) {
  constexpr std::string_view blanks = " \t\r\f\v";
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    const auto from = line.find_first_not_of(blanks);
    if (from != std::string_view::npos) {
      line.remove_prefix(from);
      line = line.substr(0, line.find_last_not_of(blanks) + 1);
      return line;
    }
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return {};
}

/// One line of event-derived text, printable and cut to `max_chars`.
std::string one_line(std::string_view text, std::size_t max_chars) {
  return shorten(printable(text), max_chars);
}

/// `head` made printable and cut so that `head + tail` fits in max_detail_chars: the tail
/// (a count such as " (+2 more)") always survives.
std::string fit_detail(std::string_view head, std::string_view tail = {}) {
  const std::size_t room = max_detail_chars - std::min(max_detail_chars, display_width(tail));
  return shorten(printable(head), room) + std::string(tail);
}

// ---------------------------------------------------------------------------------------
// JSON

/// The depth limit bounds the recursion of the pretty printer; anything deeper is treated as
/// not JSON.
json::parse_options json_options() {
  json::parse_options options;
  options.max_depth = 256;
  return options;
}

/// Parses `bytes` as one JSON value; nullopt when it is not JSON.
std::optional<json::value> parse_json(std::string_view bytes, json::storage_ptr storage) {
  json::error_code ec;
  json::value value = json::parse(bytes, ec, std::move(storage), json_options());
  if (ec) return std::nullopt;
  return value;
}

std::string_view view(const json::string& s) {
  return {s.data(), s.size()};
}

const json::object* as_object(const json::value* v) {
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}
const json::array* as_array(const json::value* v) {
  return v != nullptr && v->is_array() ? &v->get_array() : nullptr;
}
const json::value* member(const json::object* o, std::string_view key) {
  return o != nullptr ? o->if_contains(key) : nullptr;
}
const json::object* object_member(const json::object* o, std::string_view key) {
  return as_object(member(o, key));
}
/// The string member `key` of `o`; nullopt when `o` is null or the member is missing or is
/// not a string.
std::optional<std::string_view> string_member(const json::object* o, std::string_view key) {
  const json::value* v = member(o, key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return view(v->get_string());
}
std::string_view string_or_empty(const json::object* o, std::string_view key) {
  return string_member(o, key).value_or(std::string_view{});
}

std::string count_text(std::size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

std::string records_text(std::size_t n) {
  return count_text(n, "record", "records");
}

/// " (+N more)" for the records after the first one.
std::string more_text(std::size_t records) {
  return records > 1 ? " (+" + std::to_string(records - 1) + " more)" : std::string();
}

// ---------------------------------------------------------------------------------------
// Triggers

trigger make(std::string_view source, std::string detail) {
  return trigger{std::string(source), std::move(detail)};
}

/// S3 object keys arrive URL-encoded in form style ("my+file%21.txt").
std::string decode_s3_key(std::string_view key) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(key.size());
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (key[i] == '+') {
      out.push_back(' ');
    } else if (key[i] == '%' && i + 2 < key.size() && hex(key[i + 1]) >= 0 &&
               hex(key[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(key[i + 1]) * 16 + hex(key[i + 2])));
      i += 2;
    } else {
      out.push_back(key[i]);
    }
  }
  return out;
}

trigger s3_trigger(const json::object& first, std::size_t records) {
  const json::object* s3 = object_member(&first, "s3");
  const std::string_view bucket = string_or_empty(object_member(s3, "bucket"), "name");
  const std::string key = decode_s3_key(string_or_empty(object_member(s3, "object"), "key"));
  std::string head(string_or_empty(&first, "eventName"));
  if (!bucket.empty() || !key.empty()) {
    if (!head.empty()) head += ' ';
    head += std::string(bucket) + "/" + key;
  }
  return make("S3", fit_detail(head, more_text(records)));
}

trigger sns_trigger(const json::object& first, std::size_t records) {
  const json::object* sns = object_member(&first, "Sns");
  std::string_view what = string_or_empty(sns, "Subject");
  if (what.empty()) {
    // The topic's name is the last part of its ARN: arn:aws:sns:eu-west-1:123456789012:orders
    what = string_or_empty(sns, "TopicArn");
    if (const auto colon = what.rfind(':'); colon != std::string_view::npos) {
      what.remove_prefix(colon + 1);
    }
  }
  return make("SNS", fit_detail(what, more_text(records)));
}

/// "2 INSERT, 1 MODIFY": INSERT, MODIFY and REMOVE in that order, then other names in the
/// order they first appear (a few at most).
trigger dynamodb_trigger(const json::array& records) {
  constexpr std::array<std::string_view, 3> known = {"INSERT", "MODIFY", "REMOVE"};
  constexpr std::size_t max_names = 6;
  std::vector<std::pair<std::string_view, std::size_t>> counts;
  for (const json::value& record : records) {
    const auto name = string_member(as_object(&record), "eventName");
    if (!name) continue;
    auto it = std::find_if(counts.begin(), counts.end(),
                           [&](const auto& entry) { return entry.first == *name; });
    if (it != counts.end()) {
      ++it->second;
    } else if (counts.size() < max_names) {
      counts.emplace_back(*name, 1);
    }
  }
  if (counts.empty()) return make("DynamoDB", records_text(records.size()));
  const auto rank = [&](std::string_view name) {
    return static_cast<std::size_t>(std::find(known.begin(), known.end(), name) - known.begin());
  };
  std::stable_sort(counts.begin(), counts.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  std::string text;
  for (const auto& [name, n] : counts) {
    if (!text.empty()) text += ", ";
    text += std::to_string(n) + " " + std::string(name);
  }
  return make("DynamoDB", fit_detail(text));
}

/// Events that carry a batch of records: S3, SQS, SNS, DynamoDB and Kinesis streams. The
/// first record names the service ("eventSource", or "EventSource" for SNS).
std::optional<trigger> records_trigger(const json::object& event) {
  const json::array* records = as_array(member(&event, "Records"));
  if (records == nullptr || records->empty()) return std::nullopt;
  const json::object* first = as_object(&records->front());
  if (first == nullptr) return std::nullopt;
  auto source = string_member(first, "eventSource");
  if (!source) source = string_member(first, "EventSource");
  if (!source) return std::nullopt;
  const std::size_t n = records->size();
  if (*source == "aws:s3") return s3_trigger(*first, n);
  if (*source == "aws:sqs") return make("SQS", records_text(n));
  if (*source == "aws:sns") return sns_trigger(*first, n);
  if (*source == "aws:dynamodb") return dynamodb_trigger(*records);
  if (*source == "aws:kinesis") return make("Kinesis", records_text(n));
  return std::nullopt;
}

/// "GET /orders/…/items/7": a long path loses its middle; its end says most.
std::string method_and_path(std::string_view method, std::string_view path) {
  std::string text(method);
  if (!path.empty()) text += " " + std::string(path);
  return shorten_middle(printable(text), max_detail_chars);
}

/// API Gateway (REST v1, HTTP API v2, WebSocket), function URLs and ALB.
std::optional<trigger> http_trigger(const json::object& event) {
  const json::object* context = object_member(&event, "requestContext");
  if (context == nullptr) return std::nullopt;

  // Payload format 2.0: HTTP APIs and function URLs. A function URL's domain is
  // <url-id>.lambda-url.<region>.on.aws; an HTTP API's is <api-id>.execute-api.<region>...
  if (const json::object* http = object_member(context, "http")) {
    if (const auto method = string_member(http, "method")) {
      std::string_view path = string_or_empty(&event, "rawPath");
      if (path.empty()) path = string_or_empty(http, "path");
      const bool url =
          string_or_empty(context, "domainName").find(".lambda-url.") != std::string_view::npos;
      return make(url ? "Function URL" : "API Gateway v2", method_and_path(*method, path));
    }
  }

  // Payload format 1.0: REST APIs (and HTTP APIs set to 1.0), and ALB target groups, whose
  // requestContext holds only "elb".
  if (const auto method = string_member(&event, "httpMethod")) {
    auto path = string_member(&event, "path");
    if (!path) path = string_member(&event, "resource");
    if (path) {
      const bool alb = object_member(context, "elb") != nullptr;
      return make(alb ? "ALB" : "API Gateway v1", method_and_path(*method, *path));
    }
  }

  // WebSocket APIs: CONNECT, MESSAGE and DISCONNECT events on a connection.
  const auto event_type = string_member(context, "eventType");
  if (event_type && string_member(context, "connectionId")) {
    std::string text(*event_type);
    const std::string_view route = string_or_empty(context, "routeKey");
    if (!route.empty()) text += " " + std::string(route);
    return make("API Gateway WebSocket", fit_detail(text));
  }
  return std::nullopt;
}

/// EventBridge (and CloudWatch Events): {"detail-type": .., "source": .., "detail": ..}.
std::optional<trigger> eventbridge_trigger(const json::object& event) {
  const auto detail_type = string_member(&event, "detail-type");
  const auto source = string_member(&event, "source");
  if (!detail_type || !source || member(&event, "detail") == nullptr) return std::nullopt;
  std::string text(*detail_type);
  if (!source->empty()) text += (text.empty() ? "from " : " from ") + std::string(*source);
  return make("EventBridge", fit_detail(text));
}

/// Step Functions has no event shape of its own: a state passes whatever its Parameters
/// build. This is a guess from the two things such events commonly carry at the top level:
/// the context object ("$$": Execution, StateMachine, State, each an object with a Name or
/// Id), or a task token for the callback pattern (".waitForTaskToken").
std::optional<trigger> step_functions_trigger(const json::object& event) {
  const auto context_part = [&](std::string_view key) -> const json::object* {
    const json::object* part = object_member(&event, key);
    if (part == nullptr) return nullptr;
    return string_member(part, "Name") || string_member(part, "Id") ? part : nullptr;
  };
  const json::object* execution = context_part("Execution");
  const json::object* machine = context_part("StateMachine");
  const json::object* state = context_part("State");
  const bool token = string_member(&event, "TaskToken") || string_member(&event, "taskToken");
  if (execution == nullptr && machine == nullptr && state == nullptr && !token) {
    return std::nullopt;
  }
  const std::string_view state_name = string_or_empty(state, "Name");
  std::string_view whole = string_or_empty(machine, "Name");
  if (whole.empty()) whole = string_or_empty(execution, "Name");
  std::string text(state_name);
  if (!whole.empty()) text += (text.empty() ? "" : " in ") + std::string(whole);
  return make("Step Functions", fit_detail(text));
}

/// CloudWatch Logs subscriptions: {"awslogs": {"data": "<base64 gzip>"}}.
std::optional<trigger> logs_trigger(const json::object& event) {
  if (!string_member(object_member(&event, "awslogs"), "data")) return std::nullopt;
  return make("CloudWatch Logs", "");
}

/// `array_size`: the number of elements when `value` is an array.
trigger direct_value(const json::value& value, std::size_t array_size) {
  switch (value.kind()) {
    case json::kind::string:
      return make("direct", "string");
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return make("direct", "number");
    case json::kind::bool_:
      return make("direct", "boolean");
    case json::kind::null:
      return make("direct", "null");
    case json::kind::array:
      return make("direct",
                  array_size == 0 ? "empty array" : "array of " + std::to_string(array_size));
    case json::kind::object:
      break;
  }
  return make("direct", "");
}

// ---------------------------------------------------------------------------------------
// Responses, and what the guesses read

int status_of(const json::value& code) {
  std::int64_t n = 0;
  if (code.is_int64()) {
    n = code.get_int64();
  } else if (code.is_uint64()) {
    n = code.get_uint64() > 1000 ? 0 : static_cast<std::int64_t>(code.get_uint64());
  } else if (code.is_double()) {
    const double d = code.get_double();
    if (!(d >= 100 && d < 600) || d != static_cast<double>(static_cast<int>(d))) return 0;
    n = static_cast<int>(d);
  } else if (code.is_string()) {
    const std::string_view text = view(code.get_string());
    if (text.empty() || text.size() > 3) return 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size()) return 0;
  }
  return n >= 100 && n <= 599 ? static_cast<int>(n) : 0;
}

/// The trigger of an event that is not JSON.
trigger not_json(std::string_view event) {
  return make("direct", event.empty() ? "empty" : count_text(event.size(), "byte", "bytes"));
}

/// The trigger of a parsed event; `root_size` is the number of elements of a root array.
trigger guess(const json::value& value, std::size_t root_size) {
  if (!value.is_object()) return direct_value(value, root_size);
  const json::object& object = value.get_object();
  for (auto* guesser :
       {records_trigger, http_trigger, eventbridge_trigger, step_functions_trigger, logs_trigger}) {
    if (auto found = guesser(object)) return std::move(*found);
  }
  return make("direct", "");
}

// What the guessers above read of an event, and nothing else: a 6 MB event is mostly a body
// no guesser looks at. Every member a guesser reads must be here, or it reads as missing
// (tests/unit/trigger_test.cpp and fuzz_trigger compare with the whole parse).
constexpr keep_rule text_of(std::string_view key) {
  return {.key = key, .text = true};
}
constexpr keep_rule kind_of(std::string_view key) {
  return {.key = key};
}
constexpr std::array bucket_rules{text_of("name")};
constexpr std::array s3_object_rules{text_of("key")};
constexpr std::array s3_rules{keep_rule{.key = "bucket", .members = bucket_rules},
                              keep_rule{.key = "object", .members = s3_object_rules}};
constexpr std::array sns_rules{text_of("Subject"), text_of("TopicArn")};
constexpr std::array record_members{
    text_of("eventSource"), text_of("EventSource"), text_of("eventName"),
    keep_rule{.key = "s3", .members = s3_rules}, keep_rule{.key = "Sns", .members = sns_rules}};
constexpr keep_rule record_rule{.key = "", .members = record_members};
constexpr std::array http_rules{text_of("method"), text_of("path")};
constexpr std::array context_rules{keep_rule{.key = "http", .members = http_rules},
                                   text_of("domainName"),
                                   kind_of("elb"),
                                   text_of("eventType"),
                                   kind_of("connectionId"),
                                   text_of("routeKey")};
constexpr std::array name_or_id_rules{text_of("Name"), kind_of("Id")};
constexpr std::array awslogs_rules{kind_of("data")};
constexpr std::array event_members{keep_rule{.key = "Records", .elements = &record_rule},
                                   keep_rule{.key = "requestContext", .members = context_rules},
                                   text_of("rawPath"),
                                   text_of("httpMethod"),
                                   text_of("path"),
                                   text_of("resource"),
                                   text_of("detail-type"),
                                   text_of("source"),
                                   kind_of("detail"),
                                   keep_rule{.key = "Execution", .members = name_or_id_rules},
                                   keep_rule{.key = "StateMachine", .members = name_or_id_rules},
                                   keep_rule{.key = "State", .members = name_or_id_rules},
                                   kind_of("TaskToken"),
                                   kind_of("taskToken"),
                                   keep_rule{.key = "awslogs", .members = awslogs_rules}};
constexpr keep_rule event_rule{.key = "", .members = event_members};

// What response_status reads of a response.
constexpr std::array response_members{text_of("statusCode")};
constexpr keep_rule response_rule{.key = "", .members = response_members};

/// The status of a parsed response.
int status_of_response(const json::value& value) {
  if (!value.is_object()) return 0;
  const json::value* code = value.get_object().if_contains("statusCode");
  return code != nullptr ? status_of(*code) : 0;
}

// ---------------------------------------------------------------------------------------
// Pretty printing

/// A JSON string literal that is safe to print: besides what JSON must escape, DEL, C1
/// controls and bidi overrides are written as \u escapes too (the same string to a JSON
/// reader).
void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const decoded d = decode_utf8(s, i);
    if (d.length == 0) {  // Boost.JSON only keeps valid UTF-8; just in case.
      append_u_escape(out, static_cast<unsigned char>(s[i]));
      ++i;
      continue;
    }
    switch (d.cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (is_c0_or_del(d.cp) || is_unsafe_beyond_ascii(d.cp)) {
          append_u_escape(out, d.cp);
        } else {
          out.append(s.substr(i, d.length));
        }
    }
    i += d.length;
  }
  out.push_back('"');
}

// A text that reads back as `d`: 15 significant digits, else 17. Not std::to_chars, whose
// floating-point part would make funcie-cloud need libm.so for fesetround alone.
void append_number(std::string& out, double d) {
  std::array<char, 64> buffer{};
  int n = std::snprintf(buffer.data(), buffer.size(), "%.15g", d);
  if (n > 0 && std::strtod(buffer.data(), nullptr) != d) {
    n = std::snprintf(buffer.data(), buffer.size(), "%.17g", d);
  }
  if (n > 0) out.append(buffer.data(), static_cast<std::size_t>(n));
}

void append_pretty(std::string& out, const json::value& value, std::size_t indent) {
  const auto newline = [&](std::size_t depth) {
    out.push_back('\n');
    out.append(depth, ' ');
  };
  switch (value.kind()) {
    case json::kind::object: {
      const json::object& object = value.get_object();
      if (object.empty()) {
        out += "{}";
        return;
      }
      out.push_back('{');
      bool first = true;
      for (const auto& entry : object) {
        if (!first) out.push_back(',');
        first = false;
        newline(indent + 2);
        append_json_string(out, {entry.key().data(), entry.key().size()});
        out += ": ";
        append_pretty(out, entry.value(), indent + 2);
      }
      newline(indent);
      out.push_back('}');
      return;
    }
    case json::kind::array: {
      const json::array& array = value.get_array();
      if (array.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      bool first = true;
      for (const json::value& element : array) {
        if (!first) out.push_back(',');
        first = false;
        newline(indent + 2);
        append_pretty(out, element, indent + 2);
      }
      newline(indent);
      out.push_back(']');
      return;
    }
    case json::kind::string:
      append_json_string(out, view(value.get_string()));
      return;
    case json::kind::int64:
      out += std::to_string(value.get_int64());
      return;
    case json::kind::uint64:
      out += std::to_string(value.get_uint64());
      return;
    case json::kind::double_:
      append_number(out, value.get_double());
      return;
    case json::kind::bool_:
      out += value.get_bool() ? "true" : "false";
      return;
    case json::kind::null:
      out += "null";
      return;
  }
}

/// Text to show as is: valid UTF-8 whose only C0 controls are \n and \t (and \r before a
/// \n), without C1 controls. CRLF line ends become \n; bidi overrides are escaped.
std::optional<std::string> as_text(std::string_view payload) {
  std::string text;
  text.reserve(payload.size());
  for (std::size_t i = 0; i < payload.size();) {
    const decoded d = decode_utf8(payload, i);
    if (d.length == 0) return std::nullopt;
    if (d.cp == '\r' && i + 1 < payload.size() && payload[i + 1] == '\n') {
      ++i;
      continue;
    }
    if ((is_c0_or_del(d.cp) && d.cp != '\n' && d.cp != '\t') || (d.cp >= 0x80 && d.cp <= 0x9F)) {
      return std::nullopt;
    }
    text.append(payload.substr(i, d.length));
    i += d.length;
  }
  return printable(text, keep::tabs_and_newlines);
}

std::string cut(std::string text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0u) == 0x80u) --end;
  // A whole last line reads better than half of one, when it does not lose too much.
  const std::string_view kept(text.data(), end);
  if (const auto line_end = kept.rfind('\n');
      line_end != std::string_view::npos && line_end >= max_bytes / 2) {
    end = line_end;
  }
  const std::string more = "… (" + std::to_string(text.size() - end) + " more bytes)";
  text.resize(end);
  if (!text.empty()) text.push_back('\n');
  return text + more;
}

}  // namespace

// -----------------------------------------------------------------------------------------

trigger guess_trigger(std::string_view event) noexcept {
  try {
    json::monotonic_resource memory;
    const auto pruned = parse_pruned(event, event_rule, &memory, json_options());
    return pruned ? guess(pruned->value, pruned->root_size) : not_json(event);
  } catch (...) {  // std::bad_alloc: say nothing rather than fail an invocation's line
    try {
      return make("direct", "");
    } catch (...) {
      return trigger{};
    }
  }
}

int response_status(std::string_view body) noexcept {
  try {
    json::monotonic_resource memory;
    const auto pruned = parse_pruned(body, response_rule, &memory, json_options());
    return pruned ? status_of_response(pruned->value) : 0;
  } catch (...) {
    return 0;
  }
}

namespace reference {

trigger guess_trigger(std::string_view event) {
  json::monotonic_resource memory;
  const auto value = parse_json(event, &memory);
  if (!value) return not_json(event);
  return guess(*value, value->is_array() ? value->get_array().size() : 0);
}

int response_status(std::string_view body) {
  json::monotonic_resource memory;
  const auto value = parse_json(body, &memory);
  return value ? status_of_response(*value) : 0;
}

}  // namespace reference

error_summary summarize_error(std::string_view body) noexcept {
  try {
    json::monotonic_resource memory;
    const auto value = parse_json(body, &memory);
    if (!value || !value->is_object()) return {};
    const json::object& object = value->get_object();
    const auto type = string_member(&object, "errorType");
    const auto message = string_member(&object, "errorMessage");
    if (!type && !message) return {};
    return {one_line(first_line(type.value_or("")), 100),
            one_line(first_line(message.value_or("")), 100)};
  } catch (...) {
    return {};
  }
}

std::vector<std::string> error_trace(std::string_view body, std::size_t max_lines) noexcept {
  std::vector<std::string> lines;
  try {
    json::monotonic_resource memory;
    const auto value = parse_json(body, &memory);
    if (!value || !value->is_object()) return {};
    const json::object& object = value->get_object();
    const json::value* trace = object.if_contains("trace");
    if (trace == nullptr) trace = object.if_contains("stackTrace");
    if (trace == nullptr) return {};
    const auto type = string_member(&object, "errorType").value_or("");
    const auto message = string_member(&object, "errorMessage").value_or("");
    const std::string headline = std::string(type) + ": " + std::string(first_line(message));
    auto add = [&](std::string_view text) {
      for (std::size_t start = 0; start <= text.size() && lines.size() < max_lines;) {
        auto end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const bool blank = line.find_first_not_of(" \t") == std::string_view::npos;
        const bool repeats = lines.empty() && (line == headline || line == type);
        if (!blank && !repeats) lines.push_back(printable(line, keep::nothing));
        start = end + 1;
      }
    };
    if (trace->is_string()) {
      add(trace->get_string());
    } else if (trace->is_array()) {
      for (const auto& item : trace->get_array()) {
        if (lines.size() >= max_lines) break;
        if (item.is_string()) add(item.get_string());
      }
    }
  } catch (...) {
    return {};
  }
  return lines;
}

std::string pretty_payload(std::string_view payload, std::size_t max_bytes) {
  std::string text;
  {
    json::monotonic_resource memory;
    if (const auto value = parse_json(payload, &memory)) {
      append_pretty(text, *value, 0);
    } else if (auto plain = as_text(payload)) {
      text = std::move(*plain);
    } else {
      text = "<" + count_text(payload.size(), "byte", "bytes") + " of binary data>";
    }
  }
  return cut(std::move(text), max_bytes);
}

std::string printable(std::string_view text, keep what) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const decoded d = decode_utf8(text, i);
    if (d.length == 0) {
      append_hex_byte(out, static_cast<unsigned char>(text[i]));
      ++i;
      continue;
    }
    if (d.cp == '\t' && what != keep::nothing) {
      out.push_back('\t');
    } else if (d.cp == '\n' && what == keep::tabs_and_newlines) {
      out.push_back('\n');
    } else if (d.cp == '\t') {
      out += "\\t";
    } else if (d.cp == '\n') {
      out += "\\n";
    } else if (d.cp == '\r') {
      out += "\\r";
    } else if (is_c0_or_del(d.cp)) {
      append_hex_byte(out, static_cast<unsigned char>(d.cp));
    } else if (is_unsafe_beyond_ascii(d.cp)) {
      append_u_escape(out, d.cp);
    } else {
      out.append(text.substr(i, d.length));
    }
    i += d.length;
  }
  return out;
}

std::string strip_escape_sequences(std::string_view text) {
  constexpr char esc = '\x1b';
  const auto in = [](char c, unsigned lo, unsigned hi) {
    const auto u = static_cast<unsigned char>(c);
    return u >= lo && u <= hi;
  };
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t at = text.find(esc, i);
    out.append(text.substr(i, at - i));
    if (at == std::string_view::npos) break;
    // The length of the sequence at `at`, or 0 when it is not a complete one.
    std::size_t length = 0;
    std::size_t k = at + 1;
    if (k < text.size()) {
      const char kind = text[k];
      if (kind == '[') {  // CSI: parameters, intermediates, one final byte
        ++k;
        while (k < text.size() && in(text[k], 0x30, 0x3F)) ++k;
        while (k < text.size() && in(text[k], 0x20, 0x2F)) ++k;
        if (k < text.size() && in(text[k], 0x40, 0x7E)) length = k + 1 - at;
      } else if (kind == ']' || kind == 'P' || kind == 'X' || kind == '^' || kind == '_') {
        // OSC (titles, links), DCS, SOS, PM, APC: a string up to ST (ESC \), or BEL for OSC.
        for (++k; k < text.size(); ++k) {
          if (kind == ']' && text[k] == '\a') {
            length = k + 1 - at;
            break;
          }
          if (text[k] == esc) {
            if (k + 1 < text.size() && text[k + 1] == '\\') length = k + 2 - at;
            break;
          }
        }
      } else {  // ESC, intermediates, one final byte: "ESC ( B", "ESC 7", "ESC c"
        while (k < text.size() && in(text[k], 0x20, 0x2F)) ++k;
        if (k < text.size() && in(text[k], 0x30, 0x7E)) length = k + 1 - at;
      }
    }
    if (length == 0) {
      out.push_back(esc);  // left for printable() to escape
      i = at + 1;
    } else {
      i = at + length;
    }
  }
  return out;
}

std::size_t display_width(std::string_view text) noexcept {
  std::size_t width = 0;
  for (std::size_t i = 0; i < text.size(); ++width) {
    i += std::max<std::size_t>(1, decode_utf8(text, i).length);
  }
  return width;
}

std::string shorten(std::string_view text, std::size_t max_chars) {
  if (display_width(text) <= max_chars) return std::string(text);
  if (max_chars == 0) return {};
  std::size_t end = 0;
  for (std::size_t chars = 0; chars + 1 < max_chars; ++chars) {
    end += std::max<std::size_t>(1, decode_utf8(text, end).length);
  }
  return std::string(text.substr(0, end)) + "…";
}

std::string shorten_middle(std::string_view text, std::size_t max_chars) {
  const std::size_t width = display_width(text);
  if (width <= max_chars) return std::string(text);
  if (max_chars <= 1) return shorten(text, max_chars);
  // Keep a little more of the end than of the start: a file name, an id.
  const std::size_t tail_chars = (max_chars - 1 + 1) / 2;
  const std::size_t head_chars = max_chars - 1 - tail_chars;
  std::size_t head_end = 0;
  for (std::size_t chars = 0; chars < head_chars; ++chars) {
    head_end += std::max<std::size_t>(1, decode_utf8(text, head_end).length);
  }
  std::size_t tail_start = 0;
  for (std::size_t chars = 0; chars < width - tail_chars; ++chars) {
    tail_start += std::max<std::size_t>(1, decode_utf8(text, tail_start).length);
  }
  return std::string(text.substr(0, head_end)) + "…" + std::string(text.substr(tail_start));
}

std::vector<std::string> wrap_words(std::string_view text, std::size_t width) {
  std::vector<std::string> lines(1);
  width = std::max<std::size_t>(width, 8);
  std::size_t used = 0;
  while (!text.empty()) {
    const auto space = text.find(' ');
    std::string_view word = text.substr(0, space);
    text.remove_prefix(space == std::string_view::npos ? text.size() : space + 1);
    if (word.empty()) continue;
    std::string shown = shorten_middle(word, width);
    const std::size_t w = display_width(shown);
    if (used != 0 && used + 1 + w > width) {
      lines.emplace_back();
      used = 0;
    }
    if (used != 0) {
      lines.back() += ' ';
      ++used;
    }
    lines.back() += shown;
    used += w;
  }
  return lines;
}

}  // namespace funcie::console
