// One awaited call whose exception becomes a value: C++ cannot co_await inside a catch
// block, so a coroutine that must do more I/O after a failure (close a connection, send a
// refusal, back off) takes the failure out of the try first. This is that try, written once.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace funcie::tunnel {

/// The value of an awaited call, or what it threw.
/// `E`: the exception type caught (others pass through). When it is not std::exception, a
/// copy is kept in `failure` for callers that look at its code.
template <class T, class E = std::exception>
struct value_or_error {
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  using failure_type = std::conditional_t<std::is_same_v<E, std::exception>, std::monostate, E>;

  std::optional<value_type> value;  ///< Set when the call returned
  std::string error;                ///< The exception's what(), when it threw
  std::optional<failure_type>
      failure;                   ///< The exception itself (only for E other than std::exception)
  std::exception_ptr exception;  ///< What was thrown, when it threw

  bool ok() const { return value.has_value(); }
  /// A copy of the exception as an `X`, when it was one (to look at its code).
  template <class X>
  std::optional<X> as() const {
    if (!exception) return std::nullopt;
    try {
      std::rethrow_exception(exception);
    } catch (const X& e) {
      return e;
    } catch (...) {
    }
    return std::nullopt;
  }
  explicit operator bool() const { return ok(); }
  value_type& operator*() { return *value; }
  value_type* operator->() { return &*value; }
};

/// Awaits `op`; an exception of type `E` is returned, not thrown.
///   auto got = co_await try_await(conn->execute(cmd, timeout));
///   if (!got) co_return broker_lost(where, got.error);
template <class E = std::exception, class T>
boost::asio::awaitable<value_or_error<T, E>> try_await(boost::asio::awaitable<T> op) {
  value_or_error<T, E> out;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(op);
      out.value.emplace();
    } else {
      out.value.emplace(co_await std::move(op));
    }
  } catch (const E& e) {
    out.error = e.what();
    out.exception = std::current_exception();
    if constexpr (!std::is_same_v<E, std::exception>) out.failure.emplace(e);
  }
  co_return out;
}

}  // namespace funcie::tunnel
