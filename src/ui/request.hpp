// What the console server reads of a request before anything else (docs/console.md): the
// target split into path and query, the Host/Origin/Sec-Fetch-Site checks, the token
// comparison, fixture names, and text made valid UTF-8 for JSON. Pure: no I/O, never throws
// on any bytes but std::bad_alloc (fuzz/fuzz_ui_request.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace funcie::ui {

struct target {
  std::string path;                          ///< Percent-decoded.
  std::map<std::string, std::string> query;  ///< Percent-decoded, '+' as space; last one wins.
};

/// "/api/invocations?app=orders&q=a%20b" -> {"/api/invocations", {app: orders, q: a b}}.
target split_target(std::string_view target);

/// Whether a request's Host, Origin and Sec-Fetch-Site say it comes from the page itself on
/// 127.0.0.1:port (or localhost:port): empty when it does, else why not.
std::string refuse_cross_site(std::string_view host, std::string_view origin,
                              std::string_view fetch_site, std::uint16_t port);

/// Compares in a time that does not depend on where the two differ.
bool same_secret(std::string_view a, std::string_view b);

/// A fixture's name: 1 to 64 letters, digits, '-', '_', '.', not starting with '.'.
bool is_valid_fixture_name(std::string_view name);

/// `text` with each byte that is not part of valid UTF-8 replaced by U+FFFD: JSON the page
/// can always parse (an event may be any bytes).
std::string valid_utf8(std::string_view text);

}  // namespace funcie::ui
