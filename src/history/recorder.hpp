// Writes history rows on a thread of its own, so that a 12 MB row, a checkpoint's fsync or a
// second writer's lock never holds up the event loop (heartbeats, other invocations). The
// one place funcie uses a second thread: SQLite's API blocks. docs/console.md.
#pragma once

#include "history/history.hpp"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace funcie::history {

class recorder {
 public:
  /// Opens its own connection to `path` (throws history_error), used by its thread only.
  recorder(const std::string& path, std::int64_t bound);
  /// Writes what is queued, then stops.
  ~recorder();
  recorder(const recorder&) = delete;
  recorder& operator=(const recorder&) = delete;

  /// Queues `e`; false when it was dropped: a write failed (error() says why), or more than
  /// 64 MB wait already (the disk is far behind).
  bool record(entry e);
  /// Why writing stopped; empty while it works. Set once, by the writer thread.
  std::string error() const;

 private:
  void run();

  store store_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<entry> queue_;
  std::size_t queued_bytes_ = 0;
  bool stopping_ = false;
  std::string error_;
  std::thread thread_;
};

}  // namespace funcie::history
