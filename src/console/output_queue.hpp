#pragma once

// What funcie connect writes to its stdout and stderr, queued and written by a coroutine on
// the event loop, so that a terminal that stops reading (Ctrl-S, a tmux pane in copy mode,
// a slow ssh link) never stops the loop: heartbeats and the tunnel go on while the terminal
// is behind. Nothing is ever dropped: write() always takes the text; past `bound` bytes the
// queue is full(), and whoever produces the bulk of the output (the readers of the runtimes'
// pipes) waits for room() before reading more, so a handler waits on its own writes, as it
// would on a slow terminal (backpressure).
//
// A terminal or a pipe is written through a descriptor of our own (/proc/self/fd/N opened
// again): a new open file description, so the O_NONBLOCK that writing without blocking needs
// is never set on the one stdin, stdout and stderr share with the shell. Anything else (a
// regular file, which never stops reading, or a socket, which cannot be opened again) is
// written with blocking writes, as before.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace funcie::console {

class output_queue {
 public:
  /// The default bound: well above a burst of funcie's own lines, small enough that a
  /// stopped terminal holds a runtime back within a few pipe reads.
  static constexpr std::size_t default_bound = 1024 * 1024;

  /// Starts the writer on `executor`. Only the process's stdout (1) and stderr (2) are
  /// written through the queue.
  explicit output_queue(boost::asio::any_io_executor executor, std::size_t bound = default_bound);
  /// flush().
  ~output_queue();
  output_queue(const output_queue&) = delete;
  output_queue& operator=(const output_queue&) = delete;

  /// Queues `text` for descriptor `fd` (1 or 2), after everything queued before it, for
  /// either descriptor: the order of writes is kept across both.
  void write(int fd, std::string text);

  /// Whether the queue holds `bound` bytes or more.
  bool full() const;
  /// Completes when the queue is not full (at once when it is not).
  boost::asio::awaitable<void> room();
  /// Completes when everything queued has been written (or its descriptor is gone).
  boost::asio::awaitable<void> drained();

  /// Writes what is still queued before returning, waiting for the terminal as long as it
  /// takes: at exit, when the event loop no longer runs.
  void flush();

  /// Called once per descriptor whose reader is gone for good (EIO: the terminal hung up;
  /// EPIPE: nobody reads the pipe): what is queued for it is dropped from then on, since
  /// nobody would see it.
  void on_gone(std::function<void(int fd)> gone);

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace funcie::console
