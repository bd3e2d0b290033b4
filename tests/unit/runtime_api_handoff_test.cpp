#include "runtime_api/handoff.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace asio = boost::asio;
using funcie::runtime_api::handoff;
using namespace asio::experimental::awaitable_operators;

// The waiter runs inside give(): what it does comes before what the giver does next, with
// no trip through the event loop between (the emulator's answer to its caller goes out
// before the runtime's connection is served on).
TEST(Handoff, TheWaiterRunsBeforeGiveReturns) {
  asio::io_context io;
  handoff<std::string> slot(io.get_executor());
  std::vector<std::string> order;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { order.push_back("waiter got " + co_await slot.wait()); },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        slot.give("event");
        order.push_back("giver goes on");
        co_return;
      },
      asio::detached);
  io.run();
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0], "waiter got event");
  EXPECT_EQ(order[1], "giver goes on");
}

TEST(Handoff, AValueGivenBeforeTheWaitIsTakenByIt) {
  asio::io_context io;
  handoff<int> slot(io.get_executor());
  EXPECT_TRUE(slot.give(7));
  int got = 0;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { got = co_await slot.wait(); }, asio::detached);
  io.run();
  EXPECT_EQ(got, 7);
}

TEST(Handoff, CloseFailsTheWaitInProgressAndLaterGives) {
  asio::io_context io;
  handoff<int> slot(io.get_executor());
  bool failed = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await slot.wait();
        } catch (const boost::system::system_error& e) {
          failed = e.code() == asio::error::operation_aborted;
        }
      },
      asio::detached);
  asio::post(io, [&] { slot.close(); });
  io.run();
  EXPECT_TRUE(failed);
  EXPECT_FALSE(slot.give(1));
}

// The losing branch of `||` (funcie wrap races the invocation with CMD's exit) is cancelled:
// its wait ends at once instead of holding the race open.
TEST(Handoff, ACancelledWaitEndsAndTheHandoffStaysUsable) {
  asio::io_context io;
  handoff<int> slot(io.get_executor());
  asio::steady_timer other(io, std::chrono::milliseconds(1));
  int winner = -1;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto first = co_await (slot.wait() || other.async_wait(asio::use_awaitable));
        winner = static_cast<int>(first.index());
      },
      asio::detached);
  io.run();
  EXPECT_EQ(winner, 1);
  io.restart();
  EXPECT_TRUE(slot.give(5));
  int got = 0;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { got = co_await slot.wait(); }, asio::detached);
  io.run();
  EXPECT_EQ(got, 5);
}
