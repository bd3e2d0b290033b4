#include "tunnel/route.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <optional>

namespace funcie::tunnel {

namespace json = boost::json;

namespace {

constexpr std::string_view accepted =
    "terms are /pointer=value, /pointer^=prefix, /pointer!=value, context:/pointer=value or "
    "sample=FRACTION, separated by spaces (see docs/routing.md)";

/// A plain decimal ("0.25", "1", ".5", "1."), as sample= takes it; nullopt for anything else
/// (a sign, an exponent, no digit, more than 18 significant digits). Written out rather than
/// std::from_chars for a double, which links libm into the layer's binary.
std::optional<double> parse_fraction(std::string_view text) {
  std::uint64_t digits = 0;
  int count = 0;
  int after_point = 0;
  bool point = false;
  bool seen_digit = false;
  for (char c : text) {
    if (c == '.' && !point) {
      point = true;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    if (point) ++after_point;
    if (digits == 0 && c == '0') {  // leading zeros: canonical_fraction may add or drop one
      seen_digit = true;
      continue;
    }
    if (count == 18) return std::nullopt;
    digits = digits * 10 + static_cast<std::uint64_t>(c - '0');
    ++count;
    seen_digit = true;
  }
  if (!seen_digit) return std::nullopt;
  double scale = 1;
  for (int i = 0; i < after_point; ++i) scale *= 10;
  return static_cast<double>(digits) / scale;
}

/// The fraction's text as to_string writes it: no leading zeros before the units, no
/// trailing zeros after the point, no bare point (".50" -> "0.5", "1." -> "1").
std::string canonical_fraction(std::string_view text) {
  std::string out(text);
  if (out.find('.') != std::string::npos) {
    while (out.back() == '0') out.pop_back();
    if (out.back() == '.') out.pop_back();
  }
  const std::size_t units = out.find_first_not_of('0');
  if (units == std::string::npos) return "0";
  out.erase(0, units);
  if (out.empty() || out.front() == '.') out.insert(0, "0");
  return out;
}

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

/// Special in an unquoted pointer or value: ends it, or must be quoted.
bool needs_quotes(std::string_view text, bool pointer) {
  if (text.empty() || text.front() == '"') return true;
  for (char c : text) {
    if (is_space(c) || c == '\\' || c == '"') return true;
    if (pointer && (c == '=' || c == '^' || c == '!')) return true;
  }
  return false;
}

class parser {
 public:
  explicit parser(std::string_view text) : text_(text) {}

  route run() {
    if (text_.size() > max_route_bytes) {
      fail(max_route_bytes + 1, "a route is at most " + std::to_string(max_route_bytes) +
                                    " bytes (this one has " + std::to_string(text_.size()) + ")");
    }
    for (std::size_t i = 0; i < text_.size(); ++i) {
      const auto c = static_cast<unsigned char>(text_[i]);
      if ((c < 0x20 && c != '\t') || c == 0x7F) fail(i + 1, "a control character is not allowed");
    }
    route r;
    skip_spaces();
    while (pos_ < text_.size()) {
      if (r.terms.size() == max_route_terms) {
        fail(pos_ + 1,
             "a route has at most " + std::to_string(max_route_terms) + " terms; " + "use fewer");
      }
      r.terms.push_back(term());
      if (pos_ < text_.size() && !is_space(text_[pos_])) {
        fail(pos_ + 1, "expected a space before the next term; " + std::string(accepted));
      }
      skip_spaces();
    }
    if (r.terms.empty()) fail(1, "the route is empty; " + std::string(accepted));
    return r;
  }

 private:
  [[noreturn]] void fail(std::size_t column, const std::string& message) const {
    throw route_error(column, message);
  }

  void skip_spaces() {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
  }

  bool consume(std::string_view s) {
    if (text_.substr(pos_).starts_with(s)) {
      pos_ += s.size();
      return true;
    }
    return false;
  }

  /// A double-quoted string at pos_, with \" and \\ escapes.
  std::string quoted() {
    const std::size_t open = pos_++;
    std::string out;
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (c == '\\') {
        if (pos_ == text_.size() || (text_[pos_] != '"' && text_[pos_] != '\\')) {
          fail(pos_, "in quotes, a backslash is written \\\\ and a quote \\\"");
        }
        out += text_[pos_++];
      } else {
        out += c;
      }
    }
    fail(open + 1, "this quote is not closed");
  }

  route_term term() {
    route_term t;
    if (consume("sample=")) {
      t.kind = route_term::op::sample;
      const std::size_t at = pos_;
      std::size_t end = at;
      while (end < text_.size() && !is_space(text_[end])) ++end;
      const std::string_view number = text_.substr(at, end - at);
      const std::optional<double> f = parse_fraction(number);
      if (!f || !(*f > 0 && *f <= 1)) {
        fail(at + 1, "sample= takes a fraction above 0 and at most 1, like sample=0.25");
      }
      // Written back as text (no double printing), and the number read from that same text, so
      // that parsing to_string's output gives the same double ("0.50" and "0.5" agree).
      t.value = canonical_fraction(number);
      t.fraction = parse_fraction(t.value).value_or(*f);
      pos_ = end;
      return t;
    }
    if (consume("context:")) {
      t.from = route_term::source::client_context;
    } else {
      consume("event:");
    }
    const std::size_t pointer_at = pos_;
    if (pos_ < text_.size() && text_[pos_] == '"') {
      t.pointer = quoted();
    } else {
      while (pos_ < text_.size() && !is_space(text_[pos_]) && text_[pos_] != '=' &&
             text_[pos_] != '^' && text_[pos_] != '!' && text_[pos_] != '"') {
        t.pointer += text_[pos_++];
      }
    }
    if (t.pointer.empty() || t.pointer.front() != '/') {
      fail(pointer_at + 1, "expected a JSON pointer starting with '/' (like /headers/x-dev); " +
                               std::string(accepted));
    }
    for (std::size_t i = 0; i < t.pointer.size(); ++i) {
      if (t.pointer[i] == '~' &&
          (i + 1 == t.pointer.size() || (t.pointer[i + 1] != '0' && t.pointer[i + 1] != '1'))) {
        fail(pointer_at + 1, "in a JSON pointer '~' is written ~0 and '/' in a key ~1");
      }
    }
    if (consume("=")) {
      t.kind = route_term::op::equals;
    } else if (consume("^=")) {
      t.kind = route_term::op::prefix;
    } else if (consume("!=")) {
      t.kind = route_term::op::differs;
    } else {
      fail(pos_ + 1, "expected '=', '^=' or '!=' after the JSON pointer " + t.pointer + "; " +
                         std::string(accepted));
    }
    if (pos_ < text_.size() && text_[pos_] == '"') {
      t.value = quoted();
    } else {
      while (pos_ < text_.size() && !is_space(text_[pos_])) {
        if (text_[pos_] == '"' || text_[pos_] == '\\') {
          fail(pos_ + 1,
               "a value with a quote or a backslash is written in quotes, "
               "with \\\" and \\\\");
        }
        t.value += text_[pos_++];
      }
      if (t.value.empty()) {
        fail(pos_ + 1, "expected a value after the operator (an empty one is written \"\")");
      }
    }
    return t;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

void append_quoted_if_needed(std::string& out, std::string_view text, bool pointer) {
  if (!needs_quotes(text, pointer)) {
    out += text;
    return;
  }
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

/// Whether JSON `v` is "the same" as the text `want`: the string itself, or a number, true,
/// false or null written that way.
bool same_value(const json::value& v, std::string_view want) {
  switch (v.kind()) {
    case json::kind::string:
      return std::string_view(v.get_string()) == want;
    case json::kind::bool_:
      return want == (v.get_bool() ? "true" : "false");
    case json::kind::null:
      return want == "null";
    case json::kind::int64: {
      std::int64_t n = 0;
      const auto [p, ec] = std::from_chars(want.data(), want.data() + want.size(), n);
      return ec == std::errc{} && p == want.data() + want.size() && n == v.get_int64();
    }
    case json::kind::uint64: {
      std::uint64_t n = 0;
      const auto [p, ec] = std::from_chars(want.data(), want.data() + want.size(), n);
      return ec == std::errc{} && p == want.data() + want.size() && n == v.get_uint64();
    }
    case json::kind::double_: {
      // Boost.JSON's own number reader: std::from_chars for a double would link libm into the
      // layer's binary for one comparison (fesetround).
      boost::system::error_code ec;
      const json::value parsed = json::parse(want, ec);
      return !ec && parsed.is_number() && parsed.to_number<double>() == v.get_double();
    }
    default:
      return false;
  }
}

}  // namespace

route_error::route_error(std::size_t column, const std::string& message)
    : std::runtime_error("column " + std::to_string(column) + ": " + message), column_(column) {}

route parse_route(std::string_view text) {
  route r = parser(text).run();
  // The route travels as to_string's text (quotes added where needed) and is parsed again on
  // the function's side: that text must fit the same bound, or the session would be ignored.
  if (const std::size_t written = to_string(r).size(); written > max_route_bytes) {
    throw route_error(std::max<std::size_t>(text.size(), 1),
                      "written out with its quotes this route has " + std::to_string(written) +
                          " bytes, over the " + std::to_string(max_route_bytes) +
                          " allowed; use fewer or shorter terms");
  }
  return r;
}

std::string to_string(const route& r) {
  std::string out;
  for (const route_term& t : r.terms) {
    if (!out.empty()) out += ' ';
    if (t.kind == route_term::op::sample) {
      out += "sample=";
      out += t.value;
      continue;
    }
    if (t.from == route_term::source::client_context) out += "context:";
    append_quoted_if_needed(out, t.pointer, true);
    out += t.kind == route_term::op::equals ? "=" : t.kind == route_term::op::prefix ? "^=" : "!=";
    append_quoted_if_needed(out, t.value, false);
  }
  return out;
}

double sample_point(std::string_view request_id) noexcept {
  std::uint64_t h = 14695981039346656037ULL;
  for (char c : request_id) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  // FNV's high bits barely move when only the last characters differ (req-1, req-2, ...):
  // mix them (MurmurHash3's finalizer) before taking the top 53.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

const json::value* routed_invocation::document(route_term::source from) {
  auto& slot = from == route_term::source::event ? event_ : context_;
  const std::string_view text = from == route_term::source::event ? event_text_ : context_text_;
  if (!slot) {
    json::parse_options options;
    options.max_depth = 64;
    boost::system::error_code ec;
    slot = json::parse(text, ec, {}, options);
    if (ec) slot.emplace();  // null: no pointer leads anywhere
  }
  return &*slot;
}

bool routed_invocation::holds(const route_term& term) {
  if (term.kind == route_term::op::sample) return sample_point(request_id_) < term.fraction;
  const json::value* doc = document(term.from);
  boost::system::error_code ec;
  const json::value* at = doc->find_pointer(term.pointer, ec);
  switch (term.kind) {
    case route_term::op::equals:
      return at != nullptr && same_value(*at, term.value);
    case route_term::op::differs:
      return at == nullptr || !same_value(*at, term.value);
    case route_term::op::prefix:
      return at != nullptr && at->is_string() &&
             std::string_view(at->get_string()).starts_with(term.value);
    case route_term::op::sample:
      break;
  }
  return false;
}

bool routed_invocation::holds(const route& r) {
  for (const route_term& t : r.terms) {
    if (!holds(t)) return false;
  }
  return true;
}

std::optional<std::size_t> choose_session(std::span<const route_candidate> sessions,
                                          routed_invocation& invocation,
                                          std::uint64_t tie_breaker) {
  auto pick = [&](auto&& wants) -> std::optional<std::size_t> {
    std::uint32_t least = std::numeric_limits<std::uint32_t>::max();
    std::size_t ties = 0;
    for (const route_candidate& s : sessions) {
      if (!wants(s)) continue;
      if (s.in_flight < least) {
        least = s.in_flight;
        ties = 1;
      } else if (s.in_flight == least) {
        ++ties;
      }
    }
    if (ties == 0) return std::nullopt;
    std::size_t nth = tie_breaker % ties;
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      if (sessions[i].in_flight == least && wants(sessions[i]) && nth-- == 0) return i;
    }
    return std::nullopt;
  };
  auto routed = pick([&](const route_candidate& s) {
    for (const route& r : s.routes) {
      if (invocation.holds(r)) return true;
    }
    return false;
  });
  if (routed) return routed;
  return pick([](const route_candidate& s) { return s.routes.empty(); });
}

}  // namespace funcie::tunnel
