// The SQS backend's tunables (FUNCIE_SQS_*, docs/sqs.md "Configuration") as a typed struct.
// The backend never reads them from the environment: the edges fill this in, funcie's CLI
// through cli/target_flags and the forwarder through its config (forwarder::
// config_from_environment), both with read_sqs_options.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::tunnel {

struct sqs_options {
  std::chrono::milliseconds claim_window{2000};     ///< FUNCIE_SQS_CLAIM_MS, 100..60000
  std::chrono::milliseconds absent_for{30000};      ///< FUNCIE_SQS_ABSENT_MS, 0..3600000
  std::chrono::milliseconds presence_every{10000};  ///< FUNCIE_SQS_PRESENCE_MS, 1000..3600000
  /// FUNCIE_SQS_PRESENCE_IDLE_MS, 1000..86400000: while nobody is connected, a forwarder's
  /// reads of the tags space out from presence_every, doubling, up to this (at least
  /// presence_every).
  std::chrono::milliseconds presence_idle_max{300000};
  int receive_batch = 10;             ///< FUNCIE_SQS_RECEIVE_BATCH, 1..10
  std::size_t max_message_bytes = 0;  ///< FUNCIE_SQS_MAX_MESSAGE_BYTES, 0 (ask) or 1024..1 MiB

  bool operator==(const sqs_options&) const = default;
};

/// The smallest FUNCIE_SQS_MAX_MESSAGE_BYTES other than 0, and the largest (SQS's own limit).
inline constexpr std::size_t sqs_min_message_bytes = 1024;
inline constexpr std::size_t sqs_max_message_bytes = 1024 * 1024;

/// Sets the option of the FUNCIE_SQS_* variable `name` from `text` (an empty text leaves it).
/// Throws backend_config_error naming `name`, its range and the bad value; std::out_of_range
/// for a name that is not one of them.
void set_sqs_option(sqs_options& options, std::string_view name, std::string_view text);

/// `base` with every FUNCIE_SQS_* variable that `getenv` has applied. Throws
/// backend_config_error for a bad value (the first, in the order of the struct).
sqs_options read_sqs_options(const std::function<const char*(const char*)>& getenv,
                             sqs_options base = {});

/// The names of the variables, in the order of the struct.
const std::vector<std::string_view>& sqs_option_names();

/// The project file's key of a variable: FUNCIE_SQS_CLAIM_MS -> sqs_claim_ms (its flag is
/// the same with dashes: --sqs-claim-ms).
std::string sqs_option_key(std::string_view variable);

/// One line for funcie doctor: "claim 2000 ms, absent 30000 ms, ...".
std::string describe(const sqs_options& options);

}  // namespace funcie::tunnel
