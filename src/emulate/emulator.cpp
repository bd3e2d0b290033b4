#include "emulate/emulator.hpp"

#include "util/clock.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <exception>
#include <utility>

namespace funcie::emulate {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using std::chrono::milliseconds;

// One invocation waiting for an environment. release() hands one over by setting `env`
// (from then on it belongs to this waiter, whatever else happens) and then wakes it; the
// channel only wakes, so an environment can never be lost in a channel nobody reads.
struct emulator::waiter {
  explicit waiter(const asio::any_io_executor& executor) : wake(executor, 1) {}
  asio::experimental::channel<void(boost::system::error_code)> wake;
  environment* env = nullptr;
};

namespace {

bool take(std::vector<environment*>& list, environment* env) {
  auto it = std::find(list.begin(), list.end(), env);
  if (it == list.end()) return false;
  list.erase(it);
  return true;
}

}  // namespace

emulator::emulator(asio::any_io_executor executor, function_config config)
    : executor_(std::move(executor)), config_(std::move(config)) {}

emulator::~emulator() = default;

asio::awaitable<environment*> emulator::acquire(std::int64_t deadline_ms) {
  if (!idle_.empty()) {
    auto* env = idle_.back();
    idle_.pop_back();
    co_return env;
  }
  if (environments_.size() < config_.concurrency) {
    environments_.push_back(std::make_unique<environment>(
        executor_, config_, static_cast<unsigned>(environments_.size())));
    co_return environments_.back().get();
  }
  auto self = std::make_shared<waiter>(executor_);
  waiting_.push_back(self);
  std::exception_ptr failure;  // cancelled, or the emulator is shutting down
  try {
    if (deadline_ms != 0) {
      const auto left = milliseconds(std::max<std::int64_t>(0, deadline_ms - util::unix_ms_now()));
      asio::steady_timer timer(executor_, left);
      co_await (self->wake.async_receive(asio::use_awaitable) ||
                timer.async_wait(asio::use_awaitable));
    } else {
      co_await self->wake.async_receive(asio::use_awaitable);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (auto* env = std::exchange(self->env, nullptr)) {
    // Handed over, even if the deadline passed in the same instant: it runs.
    if (!failure) co_return env;
    release(env);  // given up after the hand-over: on to the next one
    std::rethrow_exception(failure);
  }
  auto it = std::find(waiting_.begin(), waiting_.end(), self);
  if (it != waiting_.end()) waiting_.erase(it);
  if (failure) std::rethrow_exception(failure);
  co_return nullptr;  // the deadline passed
}

void emulator::release(environment* env) {
  if (take(stale_, env)) {
    spdlog::debug("environment {}: reset after its invocation (reload)", env->index());
    env->stop();
  }
  if (!waiting_.empty()) {
    auto next = std::move(waiting_.front());
    waiting_.pop_front();
    next->env = env;
    next->wake.try_send(boost::system::error_code{});
    return;
  }
  idle_.push_back(env);
}

void emulator::restart() {
  ++generation_;
  for (auto* env : idle_) env->stop();
  for (auto& env : environments_) {
    auto* e = env.get();
    const bool idle = std::find(idle_.begin(), idle_.end(), e) != idle_.end();
    if (!idle && std::find(stale_.begin(), stale_.end(), e) == stale_.end()) stale_.push_back(e);
  }
  spdlog::debug("reload {}: {} idle runtimes stopped, {} busy ones restart when done", generation_,
                idle_.size(), stale_.size());
}

asio::awaitable<outcome> emulator::invoke(runtime_api::invocation invocation,
                                          std::int64_t start_by_ms, const stream_sink* sink) {
  if (shutting_down_) throw std::runtime_error("the emulator is shutting down");
  const auto request_id = invocation.context.request_id;
  auto* env = co_await acquire(start_by_ms != 0 ? start_by_ms : invocation.context.deadline_ms);
  if (!env) {
    runtime_api::function_error error{
        "Sandbox.Timedout",
        fmt::format("RequestId: {} Error: Task timed out: it waited for a free execution "
                    "environment until its deadline (all {} busy; more with --concurrency)",
                    request_id, environments_.size()),
        {}};
    co_return outcome{
        true, runtime_api::format_error(error), "application/json", "Sandbox.Timedout", false, {}};
  }
  // Handed over before a reload but not started yet: nothing runs in it, reset it now.
  if (take(stale_, env)) env->stop();
  if (config_.on_invoke) config_.on_invoke(env->index(), request_id);
  // Released by hand, not by a guard's destructor: when the process stops, the event loop
  // destroys suspended frames after the emulator is gone, and nothing may touch it then.
  outcome result;
  try {
    result = co_await env->run(std::move(invocation), sink);
  } catch (...) {
    release(env);
    throw;
  }
  release(env);
  co_return result;
}

const environment* emulator::environment_at(unsigned index) const {
  for (const auto& env : environments_) {
    if (env->index() == index) return env.get();
  }
  return nullptr;
}

asio::awaitable<void> emulator::shut_down(std::chrono::milliseconds grace) {
  shutting_down_ = true;
  for (auto& w : waiting_) w->wake.close();
  waiting_.clear();
  for (auto& env : environments_) env->terminate();
  auto deadline = std::chrono::steady_clock::now() + grace;
  for (auto& env : environments_) co_await env->shut_down(deadline);
}

}  // namespace funcie::emulate
