// What a consumer session says about itself, for `funcie status`: one small JSON object, the
// same on every backend (docs/PROTOCOL.md, "Consumer info"). Redis keeps it in the session's
// key, SQS sends it in a pong. Pure: the fuzzers link it alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::tunnel {

/// A connected consumer as `funcie status` shows it.
struct consumer_info {
  std::string session;  ///< The session id.
  std::string host;     ///< Host name of the machine running it.
  std::int64_t pid = 0;
  std::int64_t since_ms = 0;          ///< Unix ms when the session started.
  std::int64_t in_flight = 0;         ///< Requests it holds, as of its last heartbeat.
  std::int64_t heartbeat_age_ms = 0;  ///< How long ago it last said it is alive.
  std::vector<std::string> routes;    ///< Its routes as written (docs/routing.md); empty: none.
};

/// The consumer info as it travels (version 1).
struct consumer_card {
  std::string host;
  std::int64_t pid = 0;
  std::int64_t since_ms = 0;
  std::int64_t in_flight = 0;
  std::optional<std::int64_t> ttl_ms;  ///< Redis: how long a heartbeat keeps the session
  std::optional<std::int64_t> at_ms;   ///< SQS: when the pong was sent (Unix ms, its clock)
  /// Redis: the session this card is about, so that a sealed card copied to another
  /// session's key is refused (docs/routing.md, "Authenticated routes"). Empty: not said.
  std::string session;
  std::vector<std::string> routes;  ///< The session's routes as written; empty: none.

  bool operator==(const consumer_card&) const = default;
};

/// The JSON object of `card`.
std::string encode_consumer_card(const consumer_card& card);

/// The card in `json`, or nullopt when it is not a JSON object. Fields that are missing, of
/// another type, or integers outside int64 (whether JSON says signed or unsigned) are left
/// at their defaults; unknown fields are ignored (newer versions may add some).
std::optional<consumer_card> decode_consumer_card(std::string_view json);

}  // namespace funcie::tunnel
