// The SQS backend's message bodies (docs/sqs.md, "Messages"): one text format for every
// kind, envelope pieces as raw text when SQS accepts them and base64 otherwise. Pure (no
// I/O) and fuzzed: bodies come from a queue anyone with access can write to.
#pragma once

#include "tunnel/seal.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::sqs_backend {

/// A body that is not a funcie-sqs message, or one that breaks its rules. The message
/// names the problem and never quotes the body.
class message_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class message_kind { offer, part, ff, claim, commit, alive, response, piece, ping, pong };

std::string_view to_string(message_kind kind);

/// Most pieces an envelope may be cut into: 6 MiB in base64 on the smallest queue (1 KiB).
inline constexpr std::uint32_t max_pieces = 16384;
/// Largest piece number of a streamed response (docs/sqs.md, "Streamed responses").
inline constexpr std::uint32_t max_stream_piece = 0x7fffffff;

struct message {
  message_kind kind = message_kind::offer;
  std::string app;  ///< [A-Za-z0-9._-]{1,64}
  std::string id;   ///< 32 lowercase hex: the request's envelope id, or a probe's id
  /// 32 lowercase hex for claim, commit, alive, response, pong; offer and ping: the one
  /// session meant, or empty for any (docs/sqs.md, "Routes").
  std::string session;
  std::uint32_t part = 0;        ///< Piece index, < count
  std::uint32_t count = 1;       ///< Pieces of the envelope, 1..max_pieces
  std::int64_t claim_by_ms = 0;  ///< offer: Unix ms by which a claim must be stored
  std::int64_t expires_ms = 0;   ///< Unix ms after which the message means nothing (>= 1)
  std::int64_t sent_ms = 0;      ///< ff: when the forwarder sent it
  std::uint32_t piece = 0;       ///< piece: which piece of a streamed response (0, 1, 2...)
  /// alive: the pieces of the request's streamed response the session has stored so far
  /// (optional in the header; 0 when absent).
  std::uint32_t sent = 0;
  std::string data;  ///< The piece's bytes (decoded), or a pong's JSON

  friend bool operator==(const message&, const message&) = default;
};

/// The body for `m`: data as raw text when it is valid UTF-8 of characters SQS accepts
/// (#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF), else base64.
std::string encode(const message& m);

/// Checks everything (magic, version, kind, header fields by kind, ids, app, part < count,
/// base64) and returns the message. Throws message_error.
message decode(std::string_view body);

/// True when `bytes` can go raw in an SQS body (see encode).
bool is_sqs_text(std::string_view bytes);

/// Cuts `envelope` into pieces whose encoded bodies each fit in `max_body_bytes` (>= 1024;
/// the header's size is taken into account), raw text pieces cut on character boundaries.
/// Each returned message is `proto` with part, count and data set (part 0 keeps
/// proto.kind; for an offer, parts 1.. become `part`; a response or a piece of a stream
/// keeps its kind). Throws message_error when it would
/// take more than max_pieces.
std::vector<message> split(const message& proto, std::string_view envelope,
                           std::size_t max_body_bytes);

// ---- presence (docs/sqs.md, "Presence") ------------------------------------------------

/// Each connected session keeps a tag on the request queue, "funcie:APP:SESSION8" =
/// "UNTIL_MS SESSION N" (Unix ms until which it is there unless it refreshes it, its whole
/// id, and how many route tags follow): one ListQueueTags tells a forwarder who is
/// connected and what each session wants (docs/sqs.md, "Presence" and "Routes").
std::string presence_tag_key(std::string_view app, std::string_view session_id);
std::string presence_tag_prefix(std::string_view app);  ///< "funcie:APP:"
/// "funcie:APP:SESSION8:N", N from 1: the Nth piece of a session's routes.
std::string route_tag_key(std::string_view app, std::string_view session_id, std::size_t n);

/// The most route tags a session may keep (a queue holds at most 50 tags in all), and the
/// most characters of a tag value (AWS's limit).
inline constexpr std::size_t max_route_tags = 4;
inline constexpr std::size_t max_tag_value_chars = 256;

/// One connected session as its tags say.
struct present_session {
  std::string id;                   ///< 32 hex
  std::int64_t until_ms = 0;        ///< Unix ms
  std::vector<std::string> routes;  ///< As written; empty: it takes what no route wants
  std::string tag;                  ///< Its presence tag's value: each refresh changes it
};

struct presence {
  std::int64_t until_ms = 0;  ///< The latest UNTIL_MS of `app`'s tags still in the future; 0: none
  std::string signature;  ///< Those tags, key=value; a session that came or refreshed changes it
  /// Keys of `app` whose time is over (left by killed sessions), and route tags of no live
  /// session, for a session to remove.
  std::vector<std::string> stale_keys;
  /// The sessions a forwarder may offer to: in their time, with their whole id (a tag of an
  /// older funcie has none) and routes that open (with a secret: sealed for this session).
  std::vector<present_session> sessions;
  /// Why a session in its time was left out ("SESSION8: why"), for one log line each.
  std::vector<std::string> ignored;
};

/// The value of the tag `key` for session `session_id` there until `until_ms`, with
/// `route_tags` route tags: "UNTIL_MS SESSION N"; with a shared secret that text sealed
/// together with the key, as "MODE:KEYID:BASE64" (the sealed64/signed64 frame of
/// "KEY UNTIL_MS SESSION N" with its first line's blanks as colons: tag values allow only
/// letters, digits, blanks and _ . : / = + - @). A tag forged without the secret then
/// diverts nothing. An empty `session_id` gives the older value of only UNTIL_MS.
std::string presence_tag_value(std::string_view key, std::int64_t until_ms,
                               const tunnel::keyring& keys, std::string_view session_id = {},
                               std::size_t route_tags = 0);
/// What a presence tag's value says, when `keys` accept it for `key`.
struct presence_tag {
  std::int64_t until_ms = 0;
  std::string session;         ///< Empty: an older funcie's tag (no id)
  std::size_t route_tags = 0;  ///< 0..max_route_tags
};
/// The tag's contents, or nullopt when it is not one `keys` accept for `key`: plain text
/// without a secret; with one, a value sealed with one of its keys for exactly this key.
/// The session id must start with the key's SESSION8.
std::optional<presence_tag> read_presence_tag(std::string_view key, std::string_view value,
                                              const tunnel::keyring& keys);
/// The time in a tag's value (read_presence_tag's until_ms).
std::optional<std::int64_t> presence_tag_until(std::string_view key, std::string_view value,
                                               const tunnel::keyring& keys);

/// The route tags of session `session_id` of `app` for `routes` (as written): their JSON
/// array, with a secret sealed together with the session's key and id, cut into values of
/// at most max_tag_value_chars. Empty for no routes. Throws message_error, saying how long
/// they are and how long they may be, when they take more than max_route_tags.
std::map<std::string, std::string> route_tags(std::string_view app, std::string_view session_id,
                                              const std::vector<std::string>& routes,
                                              const tunnel::keyring& keys);

/// What the queue's tags say about `app` at `now_ms`. Tags of other apps, and values that
/// read_presence_tag does not accept, are ignored.
presence read_presence(const std::map<std::string, std::string>& tags, std::string_view app,
                       std::int64_t now_ms, const tunnel::keyring& keys = {});

/// Collects the pieces of one envelope. Pieces may come in any order and more than once.
class reassembly {
 public:
  /// Adds a piece; returns the whole envelope once every piece is in. Throws message_error
  /// when a piece contradicts earlier ones (another count or id) or the total would exceed
  /// `max_bytes`.
  std::optional<std::string> add(const message& piece, std::size_t max_bytes);
  std::uint32_t received() const { return static_cast<std::uint32_t>(pieces_.size()); }
  std::uint32_t count() const { return count_; }

 private:
  std::uint32_t count_ = 0;
  std::string id_;
  std::size_t bytes_ = 0;
  std::map<std::uint32_t, std::string> pieces_;
};

}  // namespace funcie::sqs_backend
