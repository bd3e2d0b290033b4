// Does an SQS server hold a batched long poll for its whole wait although a message came (as
// local-aws-sqs does)? One rule, used by the backend at run time (link::check_receive) and by
// funcie doctor's probe (docs/sqs.md, "Servers that hold batched receives").
#pragma once

#include "aws/sqs_json.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

namespace funcie::sqs_backend {

/// Looks at one receive that asked for `asked` messages with a `wait_seconds` long poll,
/// started and returned at `started_ms` and `returned_ms` by our clock (`clock_offset_ms`:
/// the server's clock minus ours). Returns how long it held a message it could have returned
/// at once, when that is most of the wait (at most 1.5 s: far above what a busy server takes
/// to answer); nullopt when it did not (or the receive says nothing: one message asked, no
/// long poll, nothing got, or only redeliveries, visible again at a time nobody knows).
inline std::optional<std::int64_t> held_batch_ms(
    const std::vector<aws::sqs_json::received_message>& got, std::int64_t started_ms,
    std::int64_t returned_ms, int wait_seconds, int asked, std::int64_t clock_offset_ms) {
  if (asked <= 1 || got.empty() || wait_seconds == 0) return std::nullopt;
  const std::int64_t held_ms = std::min<std::int64_t>(wait_seconds * 700, 1500);
  for (const auto& m : got) {
    if (m.sent_timestamp_ms == 0 || m.receive_count > 1) continue;
    // Available since then (by our clock): a server that honours the batch answers as soon
    // as one message is there.
    const std::int64_t sent = std::max(m.sent_timestamp_ms - clock_offset_ms, started_ms);
    if (returned_ms - sent > held_ms) return returned_ms - sent;
  }
  return std::nullopt;
}

}  // namespace funcie::sqs_backend
