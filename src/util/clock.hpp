// Wall-clock time as the Runtime API and the envelope count it.
#pragma once

#include <chrono>
#include <cstdint>

namespace funcie::util {

/// Milliseconds since the Unix epoch, now (Lambda-Runtime-Deadline-Ms, answer_by_ms, ...).
inline std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace funcie::util
