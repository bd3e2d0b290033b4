// What a client of a Redis Cluster computes and parses: the slot of a key (CRC16 of its hash
// tag), the topology as CLUSTER SHARDS or CLUSTER SLOTS report it, and the MOVED / ASK
// redirections of the cluster specification. Pure (no I/O): the fuzzers link it, since these
// are bytes from a server.
#pragma once

#include "redis/reply.hpp"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::redis::cluster {

inline constexpr int slot_count = 16384;

/// CRC16-CCITT (XModem: polynomial 0x1021, initial value 0), as the cluster specification
/// uses it. crc16("123456789") == 0x31C3.
std::uint16_t crc16(std::string_view data);

/// The slot of a key: CRC16 of its hash tag (the text between the first '{' and the next
/// '}', when not empty) or of the whole key, modulo 16384.
std::uint16_t key_slot(std::string_view key);

struct node {
  std::string host;
  std::uint16_t port = 0;
  bool operator==(const node&) const = default;
};

/// "host:port" (IPv6 in brackets).
std::string describe(const node& n);

/// Slots first..last (inclusive) are served by `master`.
struct slot_range {
  std::uint16_t first = 0;
  std::uint16_t last = 0;
  node master;
  bool operator==(const slot_range&) const = default;
};

struct topology {
  std::vector<slot_range> ranges;  ///< Sorted by first slot.
  std::size_t masters = 0;         ///< Distinct masters that serve at least one slot.

  /// The master serving `slot`, or nullopt when no range covers it.
  std::optional<node> owner(std::uint16_t slot) const;
};

/// A topology reply is not what the specification describes; the message says which part.
class topology_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// CLUSTER SHARDS (Redis 7.0+). `asked` is the node that answered: a node whose endpoint is
/// "" or "?" is reached at that host. With `tls`, a node's "tls-port" is used when given.
/// Only masters whose health is not "fail" are kept. Throws topology_error.
topology parse_shards(const reply& r, const node& asked, bool tls);

/// CLUSTER SLOTS (any cluster version). Throws topology_error.
topology parse_slots(const reply& r, const node& asked);

/// A redirection error reply: "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>".
struct redirect {
  bool ask = false;
  std::uint16_t slot = 0;
  node target;
};

/// The redirection an error reply asks for, or nullopt when it is none. `asked` supplies
/// the host when the reply gives only ":port" (an unknown endpoint).
std::optional<redirect> parse_redirect(std::string_view error_text, const node& asked);

}  // namespace funcie::redis::cluster
