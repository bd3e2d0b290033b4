#pragma once

// Routes: which invocations a developer's session wants (docs/routing.md). A route is a few
// terms, all of which must hold, on the event's JSON, the client context's JSON or a sample
// of request ids:
//
//   /requestContext/http/path^=/orders   /headers/x-dev=ada   context:/custom/dev!=bob
//   sample=0.25
//
// Routes are typed by developers and travel through the broker, so the parser takes any
// bytes: it never crashes, and refuses what it does not accept with the column and the
// forms it does. Pure: no I/O (the fuzzers link it alone).

#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::tunnel {

/// A route that does not parse: what() is "column N: what was wrong; what is accepted".
class route_error : public std::runtime_error {
 public:
  route_error(std::size_t column, const std::string& message);
  /// 1-based column (byte) of the route's text where the error is.
  std::size_t column() const noexcept { return column_; }

 private:
  std::size_t column_;
};

struct route_term {
  enum class op { equals, prefix, differs, sample };
  enum class source { event, client_context };

  op kind = op::equals;
  source from = source::event;
  /// RFC 6901 JSON pointer as written ("/headers/x-dev", "~1" and "~0" escapes kept).
  std::string pointer;
  /// The value compared with (unquoted); for sample, the fraction as written ("0.25").
  std::string value;
  /// sample only: the fraction of request ids taken, in (0, 1].
  double fraction = 0;

  friend bool operator==(const route_term&, const route_term&) = default;
};

struct route {
  std::vector<route_term> terms;

  friend bool operator==(const route&, const route&) = default;
};

inline constexpr std::size_t max_route_bytes = 1024;
inline constexpr std::size_t max_route_terms = 16;
inline constexpr std::size_t max_routes_per_session = 8;

/// Parses one route. Throws route_error for anything else than terms separated by spaces.
route parse_route(std::string_view text);

/// The route as text that parses back to it (values quoted only where needed).
std::string to_string(const route& r);

/// One invocation as routes see it. Its event and client context are parsed once, on the
/// first term that needs them (a forwarder with no routed session never parses a 6 MB
/// event). Not JSON, or nested deeper than 64: no pointer leads anywhere.
class routed_invocation {
 public:
  routed_invocation(std::string_view request_id, std::string_view event,
                    std::string_view client_context) noexcept
      : request_id_(request_id), event_text_(event), context_text_(client_context) {}

  /// Whether every term of `r` holds.
  bool holds(const route& r);
  bool holds(const route_term& term);

 private:
  const boost::json::value* document(route_term::source from);

  std::string_view request_id_;
  std::string_view event_text_;
  std::string_view context_text_;
  std::optional<boost::json::value> event_;
  std::optional<boost::json::value> context_;
};

/// Where request id `id` falls in [0, 1) (FNV-1a, mixed), so that every forwarder samples alike.
double sample_point(std::string_view request_id) noexcept;

/// A live session as the forwarder's choice sees it.
struct route_candidate {
  /// Alternatives: the session wants an invocation when any of them holds. Empty: the
  /// session takes what no routed session wants.
  std::span<const route> routes;
  std::uint32_t in_flight = 0;
};

/// The session an invocation goes to (an index into `sessions`): among those with a route
/// that holds, else among those without routes, the one with the fewest requests in flight,
/// ties broken by `tie_breaker` (a random number). nullopt: nobody wants it (the cloud).
std::optional<std::size_t> choose_session(std::span<const route_candidate> sessions,
                                          routed_invocation& invocation, std::uint64_t tie_breaker);

}  // namespace funcie::tunnel
