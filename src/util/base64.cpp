#include "util/base64.hpp"

#include <algorithm>

namespace funcie::util {

namespace {

constexpr char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The value of a character of the alphabet (callers check is_base64_char first).
unsigned base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '+' ? 62 : 63;
}

}  // namespace

// Written here rather than taken from a crypto library, so that run_handler's library (which
// base64-encodes a streamed response's error) links none (docs/ARCHITECTURE.md).
void append_base64(std::string& out, std::string_view bytes) {
  const std::size_t start = out.size();
  out.resize(start + base64_size(bytes.size()));
  char* dst = out.data() + start;
  const auto* src = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t whole = bytes.size() / 3 * 3;
  for (std::size_t i = 0; i < whole; i += 3) {
    const unsigned group = (unsigned{src[i]} << 16) | (unsigned{src[i + 1]} << 8) | src[i + 2];
    *dst++ = base64_alphabet[(group >> 18) & 0x3F];
    *dst++ = base64_alphabet[(group >> 12) & 0x3F];
    *dst++ = base64_alphabet[(group >> 6) & 0x3F];
    *dst++ = base64_alphabet[group & 0x3F];
  }
  const std::size_t left = bytes.size() - whole;
  if (left > 0) {
    unsigned group = unsigned{src[whole]} << 16;
    if (left == 2) group |= unsigned{src[whole + 1]} << 8;
    *dst++ = base64_alphabet[(group >> 18) & 0x3F];
    *dst++ = base64_alphabet[(group >> 12) & 0x3F];
    *dst++ = left == 2 ? base64_alphabet[(group >> 6) & 0x3F] : '=';
    *dst++ = '=';
  }
}

std::string to_base64(std::string_view bytes) {
  std::string out;
  append_base64(out, bytes);
  return out;
}

bool is_base64_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

bool append_from_base64(std::string& out, std::string_view text, bool canonical) {
  if (text.size() % 4 != 0) return false;
  // Only the canonical alphabet, with at most two '=' at the very end.
  std::size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') {
    ++padding;
  }
  const auto digits = text.substr(0, text.size() - padding);
  if (!std::all_of(digits.begin(), digits.end(),
                   [](char c) { return is_base64_char(static_cast<unsigned char>(c)); })) {
    return false;
  }
  if (canonical && padding > 0) {
    // "xy==" keeps 8 of xy's 12 bits, "xyz=" 16 of 18: the rest must be zero.
    const unsigned last = base64_value(static_cast<unsigned char>(digits.back()));
    if ((last & (padding == 2 ? 0x0Fu : 0x03u)) != 0) return false;
  }
  out.reserve(out.size() + digits.size() / 4 * 3 + 2);
  unsigned group = 0;
  int bits = 0;
  for (const char c : digits) {
    group = (group << 6) | base64_value(static_cast<unsigned char>(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((group >> bits) & 0xFF));
    }
  }
  return true;
}

std::optional<std::string> from_base64(std::string_view text, bool canonical) {
  std::string out;
  if (!append_from_base64(out, text, canonical)) return std::nullopt;
  return out;
}

}  // namespace funcie::util
