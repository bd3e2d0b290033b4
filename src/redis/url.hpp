// Redis URLs: redis[s]://[[user]:password@]host[:port][,host[:port]...][/db]. Several hosts
// are the seed nodes of a Redis Cluster (docs/tunnel.md, "Redis Cluster and managed Redis"):
// any one that answers tells where the others are. Pure: the fuzzers link it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::redis {

/// A URL is malformed; the message says which part and never contains the password.
class url_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// One more host of a URL listing several.
struct seed {
  std::string host;
  std::uint16_t port = 6379;
  bool operator==(const seed&) const = default;
};

struct endpoint {
  bool tls = false;  ///< rediss://
  std::string host;  ///< Name or address; IPv6 given as [::1] is stored without brackets.
  std::uint16_t port = 6379;
  std::string user;      ///< ACL user; empty: "default" (AUTH with the password only).
  std::string password;  ///< Empty: no AUTH. Percent-decoded.
  int db = 0;            ///< SELECT db (0..15 on a default server; any non-negative accepted).
  /// The hosts after the first of "h1:p1,h2:p2": more seed nodes of a cluster, with the same
  /// scheme, credentials and db. Empty for a URL with one host.
  std::vector<seed> more_seeds;

  bool operator==(const endpoint&) const = default;
};

/// Parses a URL; throws url_error for an unknown scheme, a missing host (also an empty one
/// in a list), a bad port or db, or bad percent-encoding.
endpoint parse_url(std::string_view url);

/// The URL with the password replaced by "****" (or unchanged when it has none). Never
/// throws; for text that is not a URL it returns a placeholder without the input.
std::string redact(std::string_view url);

/// "host:port" (IPv6 in brackets) for messages.
std::string describe(const endpoint& e);

}  // namespace funcie::redis
