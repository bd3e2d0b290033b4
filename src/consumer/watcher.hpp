// Hot reload's eyes: inotify on files and directory trees, debounced, on the event loop.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace funcie::consumer {

class watcher {
 public:
  /// At most this many paths reach on_change per call.
  static constexpr std::size_t max_reported = 20;

  /// Watches `paths` (files or directories; directories recursively, including ones created
  /// later) with inotify and calls on_change with the changed paths (deduplicated, at most
  /// max_reported, spelled from the given paths) `debounce` after the last event of a
  /// burst. A plain file is watched through its directory, filtered by name, so that an
  /// editor's write-a-temporary-and-rename-over-it is seen. `.git` directories and editor
  /// droppings (*.swp, *.swx, *.swo, *~, .#*, 4913) are ignored; so is a file being written
  /// until it is closed. Throws std::invalid_argument naming a path that does not exist,
  /// std::runtime_error when inotify fails (naming the sysctl to raise at a limit).
  watcher(boost::asio::any_io_executor executor, std::vector<std::string> paths,
          std::chrono::milliseconds debounce,
          std::function<void(std::vector<std::string>)> on_change);
  /// Stops at once: no call to on_change afterwards.
  ~watcher();
  watcher(const watcher&) = delete;
  watcher& operator=(const watcher&) = delete;

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace funcie::consumer
