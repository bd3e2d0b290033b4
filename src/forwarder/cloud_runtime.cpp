#include "forwarder/cloud_runtime.hpp"

#include "runtime/loop.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <utility>

namespace funcie::forwarder {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {

runtime::client::options upstream_options() {
  runtime::client::options options;
  options.connect_attempts = 3;
  return options;
}

// Arguments of co_await calls are named: GCC 12 destroys some temporaries in a co_await
// full-expression twice.
asio::awaitable<int> wait_for_signal(asio::signal_set& signals,
                                     const std::function<asio::awaitable<int>(int)>& on_signal) {
  const int sig = co_await signals.async_wait(asio::use_awaitable);
  co_return co_await on_signal(sig);
}

std::string what(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& failure) {
    return failure.what();
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

cloud_runtime::cloud_runtime(std::string name, const std::string& upstream)
    : name_(std::move(name)), io_(1), upstream_(io_.get_executor(), upstream, upstream_options()) {
  // A 6 MB event and its answer pass through several buffers. glibc would raise its mmap
  // threshold past them after the first one is freed and then keep them in the heap: the
  // process would stay 6 MB bigger for the rest of the environment's life. A fixed threshold
  // keeps every buffer over 1 MiB in its own mapping, returned to the system when freed.
  ::mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
}

const forwarder* cloud_runtime::open_forwarder(std::string_view app) {
  try {
    auto getenv = [](const char* name) -> const char* { return std::getenv(name); };
    forwarder_.emplace(io_.get_executor(), config_from_environment(getenv, app));
    return &*forwarder_;
  } catch (const config_error& e) {
    report_config_error(e.what());
    return nullptr;
  }
}

int cloud_runtime::report_config_error(const std::string& message) {
  fmt::print(stderr, "funcie {}: {}\n", name_, message);
  const runtime_api::function_error error{
      .error_type = "Funcie.ConfigError", .error_message = message, .stack_trace = {}};
  asio::co_spawn(io_, upstream_.post_init_error(error), [this](const std::exception_ptr& e) {
    if (e) spdlog::error("{}: could not report the init error: {}", name_, what(e));
    upstream_.stop_watchdog();  // nothing else runs: let io_.run() return
  });
  io_.run();
  io_.restart();
  return exit_config;
}

int cloud_runtime::report_init_error_and_wait(const runtime_api::function_error& error) {
  asio::signal_set stop_signals(io_, SIGINT, SIGTERM);
  stop_signals.async_wait([this](boost::system::error_code, int) { io_.stop(); });
  asio::co_spawn(io_, upstream_.post_init_error(error), [this](const std::exception_ptr& e) {
    if (e) io_.stop();  // nobody to report to: exit now
  });
  io_.run();
  return exit_failure;
}

asio::awaitable<int> cloud_runtime::serve(const fallback& not_taken) {
  const bool forwarding = forwarder_ && forwarder_->config().enabled();
  for (;;) {
    std::optional<runtime_api::invocation> invocation;
    if (not_taken.ended) {
      auto next = co_await (upstream_.next() || not_taken.ended());
      if (next.index() == 1) co_return std::get<1>(next);
      invocation = std::move(std::get<0>(next));
    } else {
      invocation = co_await upstream_.next();
    }
    const std::string request_id = invocation->context.request_id;

    std::optional<runtime_api::result> result;
    if (forwarding) result = co_await forwarder_->forward(*invocation);
    std::optional<int> exit_code;
    if (!result) {
      fallback::outcome done = co_await not_taken.run(std::move(*invocation));
      result = std::move(done.result);
      exit_code = done.exit_code;
    }
    co_await runtime::post_result(upstream_, request_id, std::move(*result));
    if (exit_code) co_return *exit_code;
  }
}

int cloud_runtime::run(asio::awaitable<int> main,
                       const std::function<asio::awaitable<int>(int)>& on_signal) {
  std::optional<int> exit_code;
  asio::signal_set signals(io_, SIGINT, SIGTERM);
  asio::co_spawn(io_, wait_for_signal(signals, on_signal),
                 [&](const std::exception_ptr& e, int code) {
                   if (!e && !exit_code) exit_code = code;
                   io_.stop();
                 });
  asio::co_spawn(io_, std::move(main), [&](const std::exception_ptr& e, int code) {
    if (e) {
      fmt::print(stderr, "funcie {}: {}\n", name_, what(e));
      code = exit_failure;
    }
    if (!exit_code) exit_code = code;
    io_.stop();
  });
  io_.run();
  return exit_code.value_or(exit_failure);
}

}  // namespace funcie::forwarder
