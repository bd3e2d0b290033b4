// Helpers the C++ tests share for coroutine code: run a test coroutine to its end on its own
// event loop, and pause inside one.
#pragma once

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <functional>

namespace funcie::test {

/// Runs `test` on a fresh io_context; fails the test when it does not finish within `limit`
/// and rethrows what it threw.
inline void run_async(
    const std::function<boost::asio::awaitable<void>(boost::asio::io_context&)>& test,
    std::chrono::seconds limit) {
  boost::asio::io_context ctx;
  std::exception_ptr failure;
  bool finished = false;
  boost::asio::co_spawn(ctx, test(ctx), [&](std::exception_ptr e) {
    failure = e;
    finished = true;
    ctx.stop();
  });
  ctx.run_for(limit);
  ASSERT_TRUE(finished) << "the test did not finish within " << limit.count() << " s";
  if (failure) std::rethrow_exception(failure);
}

/// Runs the coroutine `body()` on `io` (a fixture's own, whose connections outlive one test
/// body) until it completes; fails the test when it does not within `limit` and rethrows what
/// it threw.
template <class Body>
void run_on(boost::asio::io_context& io, Body&& body, std::chrono::seconds limit) {
  bool done = false;
  std::exception_ptr error;
  boost::asio::co_spawn(io, body(), [&](std::exception_ptr e) {
    done = true;
    error = e;
  });
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    io.run_one_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(done) << "the test body did not finish in " << limit.count() << " s";
  if (error) std::rethrow_exception(error);
}

/// Waits `d` on the calling coroutine's executor.
inline boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, d);
  co_await t.async_wait(boost::asio::use_awaitable);
}

}  // namespace funcie::test
