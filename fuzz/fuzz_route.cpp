// Routes (docs/routing.md) come from developers' flags and, through the broker, from other
// sessions: parse_route takes any bytes. It either refuses them with a column inside the
// text (route_error) or gives a route whose text parses back to the same route. The input's
// tail (after a NUL) is an event the route is then matched against: never a crash.
#include "tunnel/route.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace tun = funcie::tunnel;

namespace {

[[noreturn]] void fail(const char* what, std::string_view text) {
  std::fprintf(stderr, "invariant broken: %s: %.*s\n", what, static_cast<int>(text.size()),
               text.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = bytes.find('\0');
  const std::string_view text = bytes.substr(0, nul);
  const std::string_view event = nul == std::string_view::npos ? "" : bytes.substr(nul + 1);

  tun::route r;
  try {
    r = tun::parse_route(text);
  } catch (const tun::route_error& e) {
    if (e.column() == 0 || e.column() > std::max(text.size(), tun::max_route_bytes) + 1) {
      fail("error column outside the text", text);
    }
    return 0;
  }
  if (r.terms.empty() || r.terms.size() > tun::max_route_terms) fail("term count", text);
  const std::string again = tun::to_string(r);
  try {
    if (tun::parse_route(again) != r) fail("to_string does not parse back the same", again);
  } catch (const tun::route_error&) {
    fail("to_string gave text that does not parse", again);
  }
  tun::routed_invocation inv("8f1c7a2e-request", event, event);
  (void)inv.holds(r);
  const tun::route_candidate candidates[] = {{.routes = {&r, 1}, .in_flight = 1},
                                             {.routes = {}, .in_flight = 0}};
  const auto chosen = tun::choose_session(candidates, inv, size);
  if (!chosen || *chosen > 1) fail("a session without a route must be chosen at least", text);
  return 0;
}
