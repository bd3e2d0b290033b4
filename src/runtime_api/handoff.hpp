// One value handed from one side to the one coroutine that waits for it, on one event loop:
// the waiter resumes inside the call that hands the value over (asio::dispatch runs it at
// once on the loop's own thread), where a channel posts it and costs another trip through
// the event loop (docs/emulate.md, "How an invocation waits").
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <optional>
#include <utility>

namespace funcie::runtime_api {

template <class T>
class handoff {
 public:
  explicit handoff(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}
  ~handoff() = default;
  handoff(const handoff&) = delete;
  handoff& operator=(const handoff&) = delete;

  /// The value, once given (at once when it already was). Throws system_error
  /// (operation_aborted) once closed. One waiter at a time.
  boost::asio::awaitable<T> wait() {
    if (value_) {
      T value = std::move(*value_);
      value_.reset();
      co_return value;
    }
    if (closed_) throw boost::system::system_error(boost::asio::error::operation_aborted);
    co_return co_await boost::asio::async_initiate<decltype(boost::asio::use_awaitable),
                                                   void(boost::system::error_code, T)>(
        [this](auto handler) {
          waiter_.emplace(std::move(handler));
          // A cancelled wait (the losing branch of `||`, as in funcie wrap) ends with
          // operation_aborted; the handoff stays open for the next one. The slot is the
          // type-erased handler's own (it puts a cancellation state on the original's).
          auto slot = boost::asio::get_associated_cancellation_slot(*waiter_);
          if (slot.is_connected()) {
            slot.assign([this](boost::asio::cancellation_type) { cancel_wait(); });
          }
          // The event loop must not run out of work while the waiter only waits here.
          work_ = boost::asio::prefer(executor_, boost::asio::execution::outstanding_work.tracked);
        },
        boost::asio::use_awaitable);
  }

  /// Hands `value` over: the waiter runs before this returns (when called on the event
  /// loop's thread); without a waiter, the next wait() takes it. False once closed.
  bool give(T value) {
    if (closed_) return false;
    if (!waiter_) {
      value_ = std::move(value);
      return true;
    }
    auto handler = take_waiter();
    // The executor given at construction: waiter and giver share its one event loop.
    boost::asio::dispatch(executor_,
                          [handler = std::move(handler), v = std::move(value)]() mutable {
                            std::move(handler)(boost::system::error_code{}, std::move(v));
                          });
    return true;
  }

  /// Fails the wait in progress and every later one (operation_aborted); the waiter runs
  /// later, from the event loop, not inside this call.
  void close() {
    if (closed_) return;
    closed_ = true;
    value_.reset();
    if (!waiter_) return;
    auto handler = take_waiter();
    boost::asio::post(executor_, [handler = std::move(handler)]() mutable {
      std::move(handler)(boost::asio::error::operation_aborted, T{});
    });
  }

  bool is_open() const { return !closed_; }

 private:
  using handler_type = boost::asio::any_completion_handler<void(boost::system::error_code, T)>;

  // With `clear_slot`, the waiter's cancellation handler goes too (not from inside it).
  handler_type take_waiter(bool clear_slot = true) {
    handler_type handler = std::move(*waiter_);
    waiter_.reset();
    work_ = boost::asio::any_io_executor();
    if (clear_slot) {
      auto slot = boost::asio::get_associated_cancellation_slot(handler);
      if (slot.is_connected()) slot.clear();
    }
    return handler;
  }

  void cancel_wait() {
    if (!waiter_) return;
    auto handler = take_waiter(false);
    boost::asio::post(executor_, [handler = std::move(handler)]() mutable {
      std::move(handler)(boost::asio::error::operation_aborted, T{});
    });
  }

  boost::asio::any_io_executor executor_;
  boost::asio::any_io_executor work_;  // tracks work while a waiter waits
  std::optional<handler_type> waiter_;
  std::optional<T> value_;
  bool closed_ = false;
};

}  // namespace funcie::runtime_api
