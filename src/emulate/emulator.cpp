#include "emulate/emulator.hpp"

#include <boost/asio/use_awaitable.hpp>

namespace funcie::emulate {

namespace asio = boost::asio;

emulator::emulator(asio::any_io_executor executor, function_config config)
    : executor_(std::move(executor)), config_(std::move(config)) {}

emulator::~emulator() = default;

asio::awaitable<environment*> emulator::acquire() {
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
  auto slot = std::make_shared<slot_channel>(executor_, 1);
  waiting_.push_back(slot);
  co_return co_await slot->async_receive(asio::use_awaitable);
}

void emulator::release(environment* env) {
  while (!waiting_.empty()) {
    auto slot = std::move(waiting_.front());
    waiting_.pop_front();
    if (slot->try_send(boost::system::error_code{}, env)) return;
  }
  idle_.push_back(env);
}

asio::awaitable<outcome> emulator::invoke(runtime_api::invocation invocation) {
  if (shutting_down_) throw std::runtime_error("the emulator is shutting down");
  auto* env = co_await acquire();
  // Released by hand, not by a guard's destructor: when the process stops, the event loop
  // destroys suspended frames after the emulator is gone, and nothing may touch it then.
  outcome result;
  try {
    result = co_await env->run(std::move(invocation));
  } catch (...) {
    release(env);
    throw;
  }
  release(env);
  co_return result;
}

asio::awaitable<void> emulator::shut_down(std::chrono::milliseconds grace) {
  shutting_down_ = true;
  for (auto& slot : waiting_) slot->close();
  waiting_.clear();
  for (auto& env : environments_) env->terminate();
  auto deadline = std::chrono::steady_clock::now() + grace;
  for (auto& env : environments_) co_await env->shut_down(deadline);
}

}  // namespace funcie::emulate
