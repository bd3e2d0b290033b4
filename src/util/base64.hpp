// Base64 (RFC 4648, standard alphabet, with padding, one line), written out here so that
// the runtime library links no crypto library: the SQS message codec, sealed text frames
// (tunnel/seal.hpp) and streamed error trailers use it. Pure (no I/O): the fuzzers link it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace funcie::util {

/// Characters the encoding of `bytes` bytes takes (padding included).
constexpr std::size_t base64_size(std::size_t bytes) {
  return 4 * ((bytes + 2) / 3);
}

/// Appends the base64 of `bytes` to `out` (one line, '=' padding).
void append_base64(std::string& out, std::string_view bytes);

/// The base64 of `bytes`.
std::string to_base64(std::string_view bytes);

/// True for the 64 characters of the standard alphabet ('=' is not one of them).
bool is_base64_char(unsigned char c);

/// Appends the bytes `text` encodes to `out`. False, with `out` as it was, when `text` is not
/// base64: a length that is not a multiple of 4, a character outside the alphabet (no
/// whitespace, no line breaks), '=' other than as one or two final characters. `canonical`:
/// also refuse an encoding whose last group carries non-zero unused bits, so that every byte
/// string has exactly one accepted encoding.
bool append_from_base64(std::string& out, std::string_view text, bool canonical = false);

/// The bytes `text` encodes, nullopt when it is not base64 (see append_from_base64).
std::optional<std::string> from_base64(std::string_view text, bool canonical = false);

}  // namespace funcie::util
