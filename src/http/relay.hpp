// Passes a request on to another HTTP server as it arrives, byte for byte, and its answer
// back the same way: what makes `funcie wrap` invisible to the Runtime API behind it
// (docs/runtime-api.md, "What wrap passes on").
#pragma once

#include "http/server.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <string>

namespace funcie::http {

struct relay_result {
  /// Status of the upstream's final answer (after any 1xx), as passed on; 0 when there was
  /// none because either side broke off (both connections are then closed).
  unsigned status = 0;
  /// Whether the client's connection may serve another request.
  bool keep_alive = false;
};

/// Relays `in` to `upstream` ("host:port", "[v6]:port") on a connection of its own, kept in
/// in.connection_data() for the client connection's next requests. Every byte goes on
/// unchanged as soon as it arrives (request line, fields known or not, chunk framing,
/// trailers, body), except the Host field's value, which names `upstream` as the client's
/// would have had it connected there itself. The answer (1xx included) comes back the same
/// way. A client that breaks off mid-request breaks the upstream connection too, as the
/// upstream would have seen it. `on_answer`, when set, is called with the final status just
/// before the final answer's first byte goes to the client (what the client does next may
/// depend on it). Never throws for I/O.
boost::asio::awaitable<relay_result> relay(streamed_request& in, const std::string& upstream,
                                           std::function<void(unsigned status)> on_answer = {});

/// `raw_header` with the value of its Host field replaced by `host` (the field's name and
/// spacing kept); unchanged when it has none.
std::string with_host(std::string_view raw_header, std::string_view host);

}  // namespace funcie::http
