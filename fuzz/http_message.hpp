// What the fuzz targets share: raw bytes through Beast's HTTP parser with the limits our
// servers and client set, and a header lookup over the parsed fields.
#pragma once

#include "runtime_api/protocol.hpp"

#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>

namespace funcie::fuzz {

namespace http = boost::beast::http;

/// Header bytes our servers accept before answering 431.
inline constexpr std::uint32_t header_limit = 16 * 1024;

/// Feeds `data` to `parser` as a peer would send it, then closes the stream. True when one
/// complete message came out.
template <bool IsRequest>
bool parse_message(http::parser<IsRequest, http::string_body>& parser, const std::uint8_t* data,
                   std::size_t size) {
  parser.body_limit(runtime_api::max_runtime_post_bytes);
  parser.header_limit(header_limit);
  parser.eager(true);
  boost::beast::error_code ec;
  while (size > 0 && !parser.is_done()) {
    std::size_t used = parser.put(boost::asio::const_buffer(data, size), ec);
    if (ec == http::error::need_more) break;
    if (ec) return false;
    if (used == 0) break;
    data += used;
    size -= used;
  }
  if (!parser.is_done()) {
    // Nothing parsed at all (an empty input): Beast asserts on put_eof then.
    if (!parser.got_some()) return false;
    // The peer closed the connection: a body delimited by EOF ends here, anything else failed.
    parser.put_eof(ec);
    if (ec) return false;
  }
  return parser.is_done();
}

/// The header lookup our parsers take, over a parsed message (names compare case-insensitively).
template <class Fields>
runtime_api::header_lookup lookup_in(const Fields& fields) {
  return [&fields](std::string_view name) -> std::optional<std::string_view> {
    auto it = fields.find(boost::beast::string_view(name.data(), name.size()));
    if (it == fields.end()) return std::nullopt;
    return std::string_view(it->value().data(), it->value().size());
  };
}

/// A broken invariant: report it and stop, so libFuzzer keeps the input as a crash.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

}  // namespace funcie::fuzz
