#include "util/ids.hpp"

#include <chrono>
#include <cstdint>
#include <random>

#include <fmt/format.h>

namespace funcie::util {
namespace {

std::mt19937_64& generator() {
  thread_local std::mt19937_64 engine{[] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }()};
  return engine;
}

}  // namespace

std::string random_hex(std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(n, '0');
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (i % 16 == 0) bits = generator()();
    out[i] = digits[bits & 0xF];
    bits >>= 4;
  }
  return out;
}

std::string new_request_id() {
  auto hex = random_hex(32);
  hex[12] = '4';                          // version 4
  hex[16] = "89ab"[(hex[16] - '0') & 3];  // RFC 4122 variant
  return fmt::format("{}-{}-{}-{}-{}", hex.substr(0, 8), hex.substr(8, 4), hex.substr(12, 4),
                     hex.substr(16, 4), hex.substr(20, 12));
}

std::string new_trace_id() {
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  return fmt::format("Root=1-{:08x}-{};Parent={};Sampled=0", static_cast<std::uint32_t>(seconds),
                     random_hex(24), random_hex(16));
}

}  // namespace funcie::util
