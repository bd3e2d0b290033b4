// Backoff between the attempts of an AWS call, as AWS SDKs do it in "standard" retry mode:
// exponential with full jitter, capped. The AWS SDKs and Tools Reference Guide ("Retry
// behavior", docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html) gives the
// shape, min(random * 2^i * base, MAX_BACKOFF) with MAX_BACKOFF 20 s, and 3 attempts; the
// JavaScript SDK (@smithy/util-retry constants) gives the bases: 100 ms after a transient
// error, 500 ms after throttling, so throttled callers back off harder.
#include "aws/sqs_client.hpp"

#include <algorithm>
#include <cmath>

namespace funcie::aws {

namespace {

constexpr double transient_base_ms = 100;
constexpr double throttling_base_ms = 500;
constexpr double max_backoff_ms = 20'000;

}  // namespace

std::chrono::milliseconds retry_backoff(int attempt, bool throttled, double random01) {
  const double base = throttled ? throttling_base_ms : transient_base_ms;
  // 2^attempt overflows nothing below 2^30 and is past the cap long before
  const double ceiling =
      std::min(max_backoff_ms, base * static_cast<double>(1LL << std::clamp(attempt, 0, 30)));
  const double r = std::clamp(random01, 0.0, 1.0);
  // Non-negative, so the cast rounds down (std::floor would make funcie-cloud need libm.so).
  return std::chrono::milliseconds(static_cast<long long>(r * ceiling));
}

}  // namespace funcie::aws
