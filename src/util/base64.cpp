#include "util/base64.hpp"

#include <openssl/evp.h>

#include <algorithm>

namespace funcie::util {

namespace {

// EVP_EncodeBlock and EVP_DecodeBlock take an int length: big inputs go in chunks of whole
// groups (3 bytes in, 4 characters out).
constexpr std::size_t base64_chunk = std::size_t{3} << 24;

// The value of a character of the alphabet.
unsigned base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '+' ? 62 : 63;
}

}  // namespace

void append_base64(std::string& out, std::string_view bytes) {
  const std::size_t start = out.size();
  out.resize(start + base64_size(bytes.size()) + 1);  // + EVP_EncodeBlock's NUL
  auto* dst = reinterpret_cast<unsigned char*>(out.data() + start);
  const auto* src = reinterpret_cast<const unsigned char*>(bytes.data());
  for (std::size_t done = 0; done < bytes.size();) {
    const std::size_t n = std::min(base64_chunk, bytes.size() - done);
    dst += EVP_EncodeBlock(dst, src + done, static_cast<int>(n));
    done += n;
  }
  out.resize(start + base64_size(bytes.size()));
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
  // EVP_DecodeBlock skips whitespace and reads '=' anywhere as zero bits: only the canonical
  // alphabet, with at most two '=' at the very end, gets that far.
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
  const std::size_t start = out.size();
  out.resize(start + text.size() / 4 * 3);
  auto* dst = reinterpret_cast<unsigned char*>(out.data() + start);
  const auto* src = reinterpret_cast<const unsigned char*>(text.data());
  constexpr std::size_t chunk = base64_chunk / 3 * 4;
  for (std::size_t done = 0; done < text.size();) {
    const std::size_t n = std::min(chunk, text.size() - done);
    const int written = EVP_DecodeBlock(dst, src + done, static_cast<int>(n));
    if (written < 0) {
      out.resize(start);
      return false;
    }
    dst += written;
    done += n;
  }
  // DecodeBlock counts the zero bytes the padding stands for.
  out.resize(out.size() - padding);
  return true;
}

std::optional<std::string> from_base64(std::string_view text, bool canonical) {
  std::string out;
  if (!append_from_base64(out, text, canonical)) return std::nullopt;
  return out;
}

}  // namespace funcie::util
