// retry_backoff: full jitter between 0 and a ceiling that doubles per retry, a larger base
// after throttling, and the 20 s cap of AWS SDKs.
#include "aws/sqs_client.hpp"

#include <gtest/gtest.h>

namespace funcie::aws {
namespace {

using std::chrono::milliseconds;

TEST(RetryTest, IsZeroWithZeroRandom) {
  for (int attempt = 1; attempt < 10; ++attempt) {
    EXPECT_EQ(retry_backoff(attempt, false, 0.0), milliseconds(0));
    EXPECT_EQ(retry_backoff(attempt, true, 0.0), milliseconds(0));
  }
}

TEST(RetryTest, CeilingDoublesPerRetry) {
  const double almost_one = 0.999999;
  EXPECT_EQ(retry_backoff(1, false, almost_one), milliseconds(199));
  EXPECT_EQ(retry_backoff(2, false, almost_one), milliseconds(399));
  EXPECT_EQ(retry_backoff(3, false, almost_one), milliseconds(799));
  EXPECT_EQ(retry_backoff(2, false, 0.5), milliseconds(200));
}

TEST(RetryTest, ThrottlingBacksOffHarder) {
  EXPECT_EQ(retry_backoff(1, true, 0.5), milliseconds(500));
  EXPECT_EQ(retry_backoff(2, true, 0.5), milliseconds(1000));
  for (int attempt = 1; attempt < 8; ++attempt) {
    EXPECT_GT(retry_backoff(attempt, true, 0.9), retry_backoff(attempt, false, 0.9));
  }
}

TEST(RetryTest, IsCappedAtTwentySeconds) {
  EXPECT_EQ(retry_backoff(10, true, 0.999999), milliseconds(19999));
  EXPECT_EQ(retry_backoff(1000, false, 0.999999), milliseconds(19999));
  EXPECT_EQ(retry_backoff(1000, true, 0.5), milliseconds(10000));
  EXPECT_LE(retry_backoff(-5, false, 2.0), milliseconds(20000));  // bad input stays bounded
}

TEST(RetryTest, StaysWithinBoundsForAnyRandom) {
  for (int attempt = 1; attempt <= 6; ++attempt) {
    for (double r = 0; r < 1; r += 0.01) {
      auto d = retry_backoff(attempt, false, r);
      EXPECT_GE(d, milliseconds(0));
      EXPECT_LT(d, milliseconds(100 << attempt));
    }
  }
}

}  // namespace
}  // namespace funcie::aws
