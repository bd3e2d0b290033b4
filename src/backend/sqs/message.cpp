#include "backend/sqs/message.hpp"
#include "util/base64.hpp"

#include "tunnel/envelope.hpp"

#include <fmt/format.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

namespace funcie::sqs_backend {

namespace json = boost::json;

namespace {

constexpr std::string_view magic = "funcie-sqs/";
constexpr int format_version = 1;
// "funcie-sqs/" + up to 9 digits + " " + the longest kind + "\n".
constexpr std::size_t max_first_line = 32;
constexpr std::size_t max_header_bytes = 4096;
constexpr std::size_t min_body_limit = 1024;
constexpr std::int64_t max_ms = std::numeric_limits<std::int64_t>::max();

// Which header fields a kind carries (docs/sqs.md, "Messages").
struct fields {
  bool session = false;       ///< session
  bool addressed = false;     ///< session, optional: the one session meant (docs/sqs.md, "Routes")
  bool pieces = false;        ///< part, count
  bool claim_by = false;      ///< claim_by_ms
  bool sent = false;          ///< sent_ms
  bool stream_piece = false;  ///< piece
  bool stored = false;        ///< sent (optional)
  bool expires = false;       ///< expires_ms
  bool data = false;          ///< enc and data after the header
};

fields fields_of(message_kind kind) {
  switch (kind) {
    case message_kind::offer:
      return {.addressed = true, .pieces = true, .claim_by = true, .expires = true, .data = true};
    case message_kind::part:
      return {.pieces = true, .expires = true, .data = true};
    case message_kind::ff:
      return {.pieces = true, .sent = true, .expires = true, .data = true};
    case message_kind::claim:
    case message_kind::commit:
      return {.session = true, .expires = true};
    case message_kind::alive:
      return {.session = true, .stored = true, .expires = true};
    case message_kind::response:
      return {.session = true, .pieces = true, .expires = true, .data = true};
    case message_kind::piece:
      return {.session = true, .pieces = true, .stream_piece = true, .expires = true, .data = true};
    case message_kind::ping:
      return {.addressed = true, .expires = true};
    case message_kind::pong:
      return {.session = true, .expires = true, .data = true};
  }
  return {};
}

constexpr std::array all_kinds{message_kind::offer,    message_kind::part,   message_kind::ff,
                               message_kind::claim,    message_kind::commit, message_kind::alive,
                               message_kind::response, message_kind::piece,  message_kind::ping,
                               message_kind::pong};

// --- SQS text ---------------------------------------------------------------------------

// The length of the longest prefix of `s` made of whole characters SQS accepts: strict UTF-8
// (no overlong forms, no surrogates, nothing above U+10FFFF) of #x9 #xA #xD #x20-#xD7FF
// #xE000-#xFFFD #x10000-#x10FFFF. A character cut by the end of `s` is not part of it.
std::size_t sqs_text_prefix(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    // Eight printable ASCII bytes at a time: no high bit, no byte below 0x20.
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    constexpr std::uint64_t highs = 0x8080808080808080ULL;
    while (i + 8 <= n) {
      std::uint64_t w = 0;
      std::memcpy(&w, p + i, sizeof w);
      if ((w & highs) != 0 || ((w - 0x20 * ones) & ~w & highs) != 0) break;
      i += 8;
    }
    if (i == n) break;
    const unsigned b = p[i];
    if (b < 0x80) {
      if (b < 0x20 && b != '\t' && b != '\n' && b != '\r') return i;
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned lo = 0x80;  // the range of the second byte
    unsigned hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;  // overlong
      if (b == 0xED) hi = 0x9F;  // surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;  // overlong
      if (b == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (len > n - i || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    if (b == 0xEF && p[i + 1] == 0xBF && p[i + 2] >= 0xBE) return i;  // U+FFFE, U+FFFF
    i += len;
  }
  return n;
}

// --- header -----------------------------------------------------------------------------

const json::value& required(const json::object& h, std::string_view key) {
  const auto* v = h.if_contains(key);
  if (v == nullptr || v->is_null()) {
    throw message_error("the message header has no \"" + std::string(key) + "\"");
  }
  return *v;
}

std::string get_string(const json::object& h, std::string_view key) {
  const auto& v = required(h, key);
  if (!v.is_string()) {
    throw message_error("\"" + std::string(key) + "\" in the message header is not a string");
  }
  return std::string(v.get_string());
}

std::int64_t get_int(const json::object& h, std::string_view key, std::int64_t min,
                     std::int64_t max) {
  const auto& v = required(h, key);
  std::int64_t n = 0;
  if (v.is_int64()) {
    n = v.get_int64();
  } else if (v.is_uint64()) {
    // Above INT64_MAX: Boost.JSON keeps smaller non-negative integers as int64.
    throw message_error("\"" + std::string(key) + "\" in the message header is out of range");
  } else {
    throw message_error("\"" + std::string(key) + "\" in the message header is not an integer");
  }
  if (n < min || n > max) {
    throw message_error("\"" + std::string(key) + "\" in the message header is out of range");
  }
  return n;
}

std::string get_hex_id(const json::object& h, std::string_view key) {
  auto s = get_string(h, key);
  if (!tunnel::is_valid_id(s)) {
    throw message_error("\"" + std::string(key) +
                        "\" in the message header is not 32 lowercase hex digits");
  }
  return s;
}

// Resets the fields `m.kind` does not carry, so that `m` is what its body decodes to.
void drop_unused_fields(message& m) {
  const auto f = fields_of(m.kind);
  if (!f.session && !f.addressed) m.session.clear();
  if (!f.pieces) {
    m.part = 0;
    m.count = 1;
  }
  if (!f.claim_by) m.claim_by_ms = 0;
  if (!f.sent) m.sent_ms = 0;
  if (!f.stream_piece) m.piece = 0;
  if (!f.stored) m.sent = 0;
  if (!f.expires) m.expires_ms = 0;
  if (!f.data) m.data.clear();
}

// The size of `proto`'s body without data, as the kind `kind` with the widest part and count:
// what a piece's header can take at most.
std::size_t header_bound(const message& proto, message_kind kind) {
  message m;
  m.kind = kind;
  m.app = proto.app;
  m.id = proto.id;
  m.session = proto.session;
  m.part = max_pieces;
  m.count = max_pieces;
  m.claim_by_ms = proto.claim_by_ms;
  m.expires_ms = proto.expires_ms;
  m.sent_ms = proto.sent_ms;
  m.piece = proto.piece;
  return encode(m).size();
}

}  // namespace

std::string_view to_string(message_kind kind) {
  switch (kind) {
    case message_kind::offer:
      return "offer";
    case message_kind::part:
      return "part";
    case message_kind::ff:
      return "ff";
    case message_kind::claim:
      return "claim";
    case message_kind::commit:
      return "commit";
    case message_kind::alive:
      return "alive";
    case message_kind::response:
      return "response";
    case message_kind::piece:
      return "piece";
    case message_kind::ping:
      return "ping";
    case message_kind::pong:
      return "pong";
  }
  return "?";
}

bool is_sqs_text(std::string_view bytes) {
  return sqs_text_prefix(bytes) == bytes.size();
}

std::string encode(const message& m) {
  const auto f = fields_of(m.kind);
  json::object h{{"app", m.app}, {"id", m.id}};
  if (f.session || (f.addressed && !m.session.empty())) h["session"] = m.session;
  if (f.pieces) {
    h["part"] = m.part;
    h["count"] = m.count;
  }
  if (f.claim_by) h["claim_by_ms"] = m.claim_by_ms;
  if (f.sent) h["sent_ms"] = m.sent_ms;
  if (f.stream_piece) h["piece"] = m.piece;
  if (f.stored && m.sent != 0) h["sent"] = m.sent;
  if (f.expires) h["expires_ms"] = m.expires_ms;
  const bool raw = !f.data || is_sqs_text(m.data);
  if (f.data) h["enc"] = raw ? "raw" : "b64";
  const std::string head = json::serialize(h);
  const auto kind = to_string(m.kind);
  const std::size_t data_size = !f.data ? 0
                                : raw   ? m.data.size()
                                        : util::base64_size(m.data.size());
  std::string out;
  out.reserve(magic.size() + 2 + kind.size() + 1 + head.size() + 1 + data_size);
  out.append(magic);
  out.append(std::to_string(format_version));
  out.push_back(' ');
  out.append(kind);
  out.push_back('\n');
  out.append(head);
  out.push_back('\n');
  if (f.data) {
    if (raw) {
      out.append(m.data);
    } else {
      util::append_base64(out, m.data);
    }
  }
  return out;
}

message decode(std::string_view body) {
  const auto line_end = body.substr(0, max_first_line).find('\n');
  if (!body.starts_with(magic) || line_end == std::string_view::npos) {
    throw message_error("not a funcie SQS message (it must start with \"funcie-sqs/1 \")");
  }
  const auto line = body.substr(magic.size(), line_end - magic.size());
  const auto space = line.find(' ');
  if (space == std::string_view::npos || space == 0) {
    throw message_error("the message's first line has no version and kind");
  }
  int version = 0;
  const auto digits = line.substr(0, space);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
  if (ec != std::errc() || end != digits.data() + digits.size() || version < 0) {
    throw message_error("the message's version is not a number");
  }
  if (version != format_version) {
    throw message_error("the message is format version " + std::to_string(version) +
                        "; this funcie speaks version " + std::to_string(format_version) +
                        ": run the same funcie release on both sides");
  }
  const auto kind_name = line.substr(space + 1);
  const auto kind = std::find_if(all_kinds.begin(), all_kinds.end(),
                                 [&](message_kind k) { return to_string(k) == kind_name; });
  if (kind == all_kinds.end()) throw message_error("the message's kind is unknown");

  const auto rest = body.substr(line_end + 1);
  const auto header_end = rest.substr(0, max_header_bytes + 1).find('\n');
  if (header_end == std::string_view::npos) {
    throw message_error(rest.size() > max_header_bytes
                            ? "the message header is longer than 4 KiB"
                            : "the message header is not terminated by a newline");
  }
  boost::system::error_code jec;
  json::value parsed = json::parse(rest.substr(0, header_end), jec);
  if (jec) throw message_error("the message header is not valid JSON: " + jec.message());
  if (!parsed.is_object()) throw message_error("the message header is not a JSON object");
  const auto& h = parsed.get_object();
  const auto data = rest.substr(header_end + 1);

  message m;
  m.kind = *kind;
  const auto f = fields_of(m.kind);
  m.app = get_string(h, "app");
  if (!tunnel::is_valid_app(m.app)) throw message_error("the message's app name is not valid");
  m.id = get_hex_id(h, "id");
  if (f.session) m.session = get_hex_id(h, "session");
  if (const auto* to = h.if_contains("session"); f.addressed && to != nullptr && !to->is_null()) {
    m.session = get_hex_id(h, "session");
  }
  if (f.pieces) {
    m.count = static_cast<std::uint32_t>(get_int(h, "count", 1, max_pieces));
    m.part = static_cast<std::uint32_t>(get_int(h, "part", 0, m.count - 1));
    // An offer is the first piece; the pieces after it are `part`s.
    if (m.kind == message_kind::offer && m.part != 0) {
      throw message_error("an offer is not the envelope's first piece");
    }
    if (m.kind == message_kind::part && m.part == 0) {
      throw message_error("a part is the envelope's first piece");
    }
  }
  if (f.claim_by) m.claim_by_ms = get_int(h, "claim_by_ms", 0, max_ms);
  if (f.sent) m.sent_ms = get_int(h, "sent_ms", 0, max_ms);
  if (f.stream_piece)
    m.piece = static_cast<std::uint32_t>(get_int(h, "piece", 0, max_stream_piece));
  if (f.stored && h.contains("sent")) {
    m.sent = static_cast<std::uint32_t>(get_int(h, "sent", 0, max_stream_piece));
  }
  // Every kind expires: a message that never did could circulate for ever.
  if (f.expires) m.expires_ms = get_int(h, "expires_ms", 1, max_ms);
  if (!f.data) {
    if (!data.empty()) {
      throw message_error("a " + std::string(kind_name) + " message carries no data");
    }
    return m;
  }
  const auto* enc = h.if_contains("enc");
  if (enc == nullptr || enc->is_null() || (enc->is_string() && enc->get_string() == "raw")) {
    m.data = std::string(data);
  } else if (enc->is_string() && enc->get_string() == "b64") {
    auto decoded = util::from_base64(data);
    if (!decoded) throw message_error("the message's base64 data is malformed");
    m.data = std::move(*decoded);
  } else {
    throw message_error("\"enc\" in the message header is neither \"raw\" nor \"b64\"");
  }
  return m;
}

std::vector<message> split(const message& proto, std::string_view envelope,
                           std::size_t max_body_bytes) {
  if (max_body_bytes < min_body_limit) {
    throw message_error("the SQS message size limit is below 1 KiB");
  }
  if (proto.kind != message_kind::offer && proto.kind != message_kind::ff &&
      proto.kind != message_kind::response && proto.kind != message_kind::piece) {
    throw message_error("only an offer, ff, response or piece envelope is cut into pieces");
  }
  const auto later_kind = proto.kind == message_kind::offer ? message_kind::part : proto.kind;
  const std::size_t header =
      std::max(header_bound(proto, proto.kind), header_bound(proto, later_kind));
  // At least a few base64 groups per piece, or the header itself is the problem.
  if (header + 16 > max_body_bytes) {
    throw message_error("the SQS message header does not fit in the queue's message size limit");
  }
  const std::size_t budget = max_body_bytes - header;  // data bytes a body can take
  const std::size_t base64_bytes = budget / 4 * 3;     // what a base64 piece carries

  // One pass: each piece goes raw when its text runs on for more than a base64 piece would
  // carry, else as base64.
  std::vector<std::pair<std::size_t, std::size_t>> cuts;  // offset, length
  std::size_t pos = 0;
  do {
    const std::size_t rest = envelope.size() - pos;
    const std::size_t window = std::min(budget, rest);
    const std::size_t text = sqs_text_prefix(envelope.substr(pos, window));
    std::size_t len = text;
    if (text < window && text < base64_bytes) {
      len = std::min(base64_bytes, rest);
      // End on a character boundary, so that text after binary can go raw again.
      for (int back = 0; back < 3 && pos + len < envelope.size() && len > 3 &&
                         (static_cast<unsigned char>(envelope[pos + len]) & 0xC0) == 0x80;
           ++back) {
        --len;
      }
    }
    cuts.emplace_back(pos, len);
    if (cuts.size() > max_pieces) {
      throw message_error("the envelope takes more than " + std::to_string(max_pieces) +
                          " SQS messages");
    }
    pos += len;
  } while (pos < envelope.size());

  message base = proto;
  base.data.clear();
  base.count = static_cast<std::uint32_t>(cuts.size());
  std::vector<message> pieces(cuts.size(), base);
  for (std::size_t i = 0; i < cuts.size(); ++i) {
    auto& piece = pieces[i];
    piece.kind = i == 0 ? proto.kind : later_kind;
    piece.part = static_cast<std::uint32_t>(i);
    drop_unused_fields(piece);  // an offer's claim_by_ms is not a part's
    piece.data.assign(envelope.substr(cuts[i].first, cuts[i].second));
  }
  return pieces;
}

std::string presence_tag_prefix(std::string_view app) {
  return "funcie:" + std::string(app) + ":";
}

std::string presence_tag_key(std::string_view app, std::string_view session_id) {
  return presence_tag_prefix(app) + std::string(session_id.substr(0, 8));
}

std::string route_tag_key(std::string_view app, std::string_view session_id, std::size_t n) {
  return presence_tag_key(app, session_id) + ":" + std::to_string(n);
}

namespace {

std::optional<std::int64_t> whole_number(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0) {
    return std::nullopt;
  }
  return value;
}

constexpr std::string_view frame_prefix = "funcie/1 ";

/// A sealed frame as a tag value: "funcie/1 MODE KEYID\nBASE64" -> "MODE:KEYID:BASE64".
std::string frame_to_tag_value(std::string frame) {
  std::string value = frame.substr(frame_prefix.size());
  std::replace(value.begin(), value.end(), ' ', ':');
  std::replace(value.begin(), value.end(), '\n', ':');
  return value;
}

/// The plaintext of a sealed tag value, or nullopt when `keys` do not open it.
std::optional<std::string> open_tag_value(std::string_view value, const tunnel::keyring& keys) {
  const auto first = value.find(':');
  const auto second = first == std::string_view::npos ? first : value.find(':', first + 1);
  if (second == std::string_view::npos || value.size() > 2 * max_route_tags * max_tag_value_chars) {
    return std::nullopt;
  }
  std::string frame(frame_prefix);
  frame.append(value.substr(0, first));
  frame.push_back(' ');
  frame.append(value.substr(first + 1, second - first - 1));
  frame.push_back('\n');
  frame.append(value.substr(second + 1));
  try {
    return keys.open(frame);
  } catch (const tunnel::seal_error&) {
    return std::nullopt;
  }
}

/// The words of `text` separated by single blanks.
std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (out.size() < 8) {
    const auto blank = text.find(' ', pos);
    out.push_back(text.substr(pos, blank == std::string_view::npos ? blank : blank - pos));
    if (blank == std::string_view::npos) break;
    pos = blank + 1;
  }
  return out;
}

/// The text a session's route tags carry, before sealing: with a secret, bound to the
/// session's key and id, so that route tags copied onto another session's keys open to
/// nothing.
std::string routes_text(std::string_view key, std::string_view session_id,
                        const std::vector<std::string>& routes, const tunnel::keyring& keys) {
  json::array list;
  for (const auto& r : routes) list.emplace_back(r);
  const std::string array = json::serialize(list);
  if (!keys.enabled()) return util::to_base64(array);
  return frame_to_tag_value(
      keys.seal_text(std::string(key) + " " + std::string(session_id) + "\n" + array));
}

/// The routes in a session's route tags joined, or nullopt (with `why`) when they do not
/// open or are not a JSON array of strings.
std::optional<std::vector<std::string>> routes_of(std::string_view key, std::string_view session_id,
                                                  std::string_view joined,
                                                  const tunnel::keyring& keys, std::string& why) {
  std::string array;
  if (!keys.enabled()) {
    auto decoded = util::from_base64(joined);
    if (!decoded) {
      why = "its route tags are not base64";
      return std::nullopt;
    }
    array = std::move(*decoded);
  } else {
    auto plain = open_tag_value(joined, keys);
    const std::string head = std::string(key) + " " + std::string(session_id) + "\n";
    if (!plain || !plain->starts_with(head)) {
      why = "its route tags do not open with our shared secret for this session";
      return std::nullopt;
    }
    array = plain->substr(head.size());
  }
  boost::system::error_code ec;
  const json::value parsed = json::parse(array, ec);
  if (ec || !parsed.is_array()) {
    why = "its route tags are not a JSON array";
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (const auto& r : parsed.get_array()) {
    if (!r.is_string()) {
      why = "its route tags hold something other than text";
      return std::nullopt;
    }
    out.emplace_back(r.get_string());
  }
  return out;
}

}  // namespace

std::string presence_tag_value(std::string_view key, std::int64_t until_ms,
                               const tunnel::keyring& keys, std::string_view session_id,
                               std::size_t route_tags) {
  std::string text = std::to_string(until_ms);
  if (!session_id.empty()) {
    text += " " + std::string(session_id) + " " + std::to_string(route_tags);
  }
  if (!keys.enabled()) return text;
  return frame_to_tag_value(keys.seal_text(std::string(key) + " " + text));
}

std::optional<presence_tag> read_presence_tag(std::string_view key, std::string_view value,
                                              const tunnel::keyring& keys) {
  std::string plain;
  if (!keys.enabled()) {
    plain = std::string(value.substr(0, 128));
  } else {
    auto opened = open_tag_value(value, keys);
    // Sealed for this very key: a value copied onto another session's or app's key is refused.
    if (!opened || opened->size() <= key.size() + 1 || !opened->starts_with(key) ||
        (*opened)[key.size()] != ' ') {
      return std::nullopt;
    }
    plain = opened->substr(key.size() + 1);
  }
  const auto parts = words(plain);
  presence_tag out;
  const auto until = whole_number(parts[0]);
  if (!until) return std::nullopt;
  out.until_ms = *until;
  if (parts.size() == 1) return out;  // an older funcie's tag: no session id
  if (parts.size() != 3 || !tunnel::is_valid_id(parts[1])) return std::nullopt;
  // The key's SESSION8 is the id's start.
  const auto colon = key.rfind(':');
  if (colon == std::string_view::npos || key.substr(colon + 1) != parts[1].substr(0, 8)) {
    return std::nullopt;
  }
  const auto count = whole_number(parts[2]);
  if (!count || *count > static_cast<std::int64_t>(max_route_tags)) return std::nullopt;
  out.session = std::string(parts[1]);
  out.route_tags = static_cast<std::size_t>(*count);
  return out;
}

std::optional<std::int64_t> presence_tag_until(std::string_view key, std::string_view value,
                                               const tunnel::keyring& keys) {
  const auto tag = read_presence_tag(key, value, keys);
  if (!tag) return std::nullopt;
  return tag->until_ms;
}

std::map<std::string, std::string> route_tags(std::string_view app, std::string_view session_id,
                                              const std::vector<std::string>& routes,
                                              const tunnel::keyring& keys) {
  std::map<std::string, std::string> out;
  if (routes.empty()) return out;
  const std::string text = routes_text(presence_tag_key(app, session_id), session_id, routes, keys);
  const std::size_t room = max_route_tags * max_tag_value_chars;
  if (text.size() > room) {
    throw message_error(fmt::format(
        "the routes take {} characters in the request queue's tags (as JSON, in base64{}), "
        "where a session's routes may take {} ({} tags of {} characters: about {} bytes of "
        "routes): shorten them or use fewer --route flags (docs/sqs.md, \"Routes\")",
        text.size(), keys.enabled() ? ", sealed" : "", room, max_route_tags, max_tag_value_chars,
        keys.enabled() ? 600 : 760));
  }
  for (std::size_t at = 0, n = 1; at < text.size(); at += max_tag_value_chars, ++n) {
    out.emplace(route_tag_key(app, session_id, n), text.substr(at, max_tag_value_chars));
  }
  return out;
}

presence read_presence(const std::map<std::string, std::string>& tags, std::string_view app,
                       std::int64_t now_ms, const tunnel::keyring& keys) {
  presence out;
  const std::string prefix = presence_tag_prefix(app);
  std::set<std::string> live;  // keys of sessions in their time, whose route tags stay
  for (auto it = tags.lower_bound(prefix); it != tags.end() && it->first.starts_with(prefix);
       ++it) {
    const std::string& key = it->first;
    if (key.find(':', prefix.size()) != std::string::npos) continue;  // a route tag
    const auto tag = read_presence_tag(key, it->second, keys);
    if (!tag) continue;
    if (tag->until_ms <= now_ms) {
      out.stale_keys.push_back(key);
      continue;
    }
    live.insert(key);
    out.until_ms = std::max(out.until_ms, tag->until_ms);
    out.signature += key + "=" + it->second + ";";
    if (tag->session.empty()) continue;  // an older funcie: nobody can address it
    present_session session{tag->session, tag->until_ms, {}, it->second};
    std::string joined;
    std::string why;
    for (std::size_t n = 1; n <= tag->route_tags && why.empty(); ++n) {
      const auto piece = tags.find(key + ":" + std::to_string(n));
      if (piece == tags.end()) {
        why = "one of its route tags is missing";
      } else {
        joined += piece->second;
      }
    }
    if (why.empty() && tag->route_tags > 0) {
      if (auto routes = routes_of(key, tag->session, joined, keys, why)) {
        session.routes = std::move(*routes);
      }
    }
    if (!why.empty()) {
      out.ignored.push_back(tag->session.substr(0, 8) + ": " + why);
      continue;
    }
    out.sessions.push_back(std::move(session));
  }
  // Route tags of no session in its time (a killed one's) go with it.
  for (auto it = tags.lower_bound(prefix); it != tags.end() && it->first.starts_with(prefix);
       ++it) {
    const auto colon = it->first.find(':', prefix.size());
    if (colon == std::string::npos) continue;
    const std::string owner = it->first.substr(0, colon);
    const bool owner_gone =
        !tags.contains(owner) ||
        std::find(out.stale_keys.begin(), out.stale_keys.end(), owner) != out.stale_keys.end();
    if (owner_gone) out.stale_keys.push_back(it->first);
  }
  return out;
}

std::optional<std::string> reassembly::add(const message& piece, std::size_t max_bytes) {
  if (piece.count == 0 || piece.count > max_pieces || piece.part >= piece.count) {
    throw message_error("the piece's part and count are out of range");
  }
  if (count_ == 0) {
    count_ = piece.count;
    id_ = piece.id;
  } else if (piece.count != count_ || piece.id != id_) {
    throw message_error(piece.id != id_ ? "a piece of another envelope came in"
                                        : "a piece says the envelope has another number of pieces");
  }
  const bool complete = pieces_.size() == count_;
  if (const auto it = pieces_.find(piece.part); it != pieces_.end()) {
    // SQS delivers at least once: the same piece again is nothing new.
    if (!complete && it->second != piece.data) {
      throw message_error("two copies of a piece differ");
    }
    return std::nullopt;
  }
  if (bytes_ > max_bytes || piece.data.size() > max_bytes - bytes_) {
    throw message_error("the envelope is larger than " + std::to_string(max_bytes) + " bytes");
  }
  bytes_ += piece.data.size();
  pieces_.emplace(piece.part, piece.data);
  if (pieces_.size() < count_) return std::nullopt;
  std::string whole;
  whole.reserve(bytes_);
  for (auto& [part, data] : pieces_) {
    whole.append(data);
    std::string().swap(data);  // the envelope is handed over once; keep only which parts came
  }
  return whole;
}

}  // namespace funcie::sqs_backend
