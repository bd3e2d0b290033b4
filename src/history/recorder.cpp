#include "history/recorder.hpp"

namespace funcie::history {

namespace {
constexpr std::size_t max_queued_bytes = 64 * 1024 * 1024;
}

recorder::recorder(const std::string& path, std::int64_t bound)
    : store_(path, bound), thread_([this] { run(); }) {}

recorder::~recorder() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

bool recorder::record(entry e) {
  const auto size = e.event.size() + e.response.size() + e.logs.size();
  {
    std::lock_guard lock(mutex_);
    if (!error_.empty() || queued_bytes_ + size > max_queued_bytes) return false;
    queued_bytes_ += size;
    queue_.push_back(std::move(e));
  }
  wake_.notify_one();
  return true;
}

std::string recorder::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

void recorder::run() {
  for (;;) {
    entry next;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is written
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    const auto size = next.event.size() + next.response.size() + next.logs.size();
    std::string failed;
    try {
      store_.record(std::move(next));
    } catch (const std::exception& e) {
      failed = e.what();
    }
    std::lock_guard lock(mutex_);
    queued_bytes_ -= size;
    if (!failed.empty() && error_.empty()) {
      error_ = std::move(failed);
      queue_.clear();
      queued_bytes_ = 0;
    }
  }
}

}  // namespace funcie::history
