#pragma once

#include <cstdint>

namespace funcie::tunnel {

/// The heartbeat bound both sides accept, in milliseconds: FUNCIE_HEARTBEAT_MS on the
/// function's side, --heartbeat-ms and funcie.toml's heartbeat_ms on the consumer's. One
/// range, so that a value one side takes the other takes too (docs/local.md).
inline constexpr std::int64_t heartbeat_min_ms = 300;
inline constexpr std::int64_t heartbeat_max_ms = 60'000;
inline constexpr std::int64_t heartbeat_default_ms = 3000;

}  // namespace funcie::tunnel
