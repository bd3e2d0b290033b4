// Redis replies as a server sends them (src/redis/reply.hpp): the input is fed to the reader
// in pieces whose sizes come from its first byte, as socket reads would cut it. The reader
// must never crash or throw anything but reply_error, and the replies must not depend on how
// the bytes were cut.
#include "redis/reply.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

// A reply tree as text, to compare two parses.
void describe(const funcie::redis::reply& r, std::string& out) {
  out += std::to_string(static_cast<int>(r.type));
  out += ':';
  out += r.str;
  out += ':';
  out += std::to_string(r.integer);
  out += '[';
  for (const auto& e : r.elements) describe(e, out);
  out += ']';
}

// Parses `data` fed in pieces of `step` bytes; returns the replies and whether it failed.
std::string parse(const std::uint8_t* data, std::size_t size, std::size_t step, bool& failed) {
  funcie::redis::reply_reader reader;
  std::string out;
  failed = false;
  for (std::size_t at = 0; at < size && !failed; at += step) {
    const std::size_t n = std::min(step, size - at);
    reader.feed(reinterpret_cast<const char*>(data + at), n);
    (void)reader.missing_bulk_bytes();  // reads hiredis's state: must not crash on any input
    try {
      while (auto r = reader.next()) describe(*r, out);
    } catch (const funcie::redis::reply_error&) {
      failed = true;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t step = 1 + data[0] % 17;
  bool failed_whole = false;
  bool failed_pieces = false;
  const std::string whole = parse(data + 1, size - 1, size, failed_whole);
  const std::string pieces = parse(data + 1, size - 1, step, failed_pieces);
  // Cut anywhere, the same bytes give the same replies.
  if (!failed_whole && !failed_pieces && whole != pieces) std::abort();
  funcie::redis::reply_reader reader;
  reader.reset();
  if (!reader.idle()) std::abort();
  return 0;
}
