// Wall-clock time as the Runtime API and the envelope count it.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>

namespace funcie::util {

/// Milliseconds since the Unix epoch, now (Lambda-Runtime-Deadline-Ms, answer_by_ms, ...).
inline std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Milliseconds on CLOCK_BOOTTIME: goes on while the process is stopped or the machine (or
/// Lambda environment) is frozen or suspended, so an age measured on it is never too young.
inline std::int64_t boot_ms_now() {
  timespec now{};
  ::clock_gettime(CLOCK_BOOTTIME, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

}  // namespace funcie::util
