#include "console/output_queue.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <deque>
#include <optional>
#include <string_view>
#include <utility>

namespace funcie::console {

namespace asio = boost::asio;

namespace {

/// Consecutive writes to one descriptor are joined up to this size: one write() for many
/// short lines.
constexpr std::size_t max_chunk_bytes = 64 * 1024;

/// A timer used as an event: waiters wait on it, notify() wakes them all.
void notify(asio::steady_timer& event) {
  event.expires_at(asio::steady_timer::time_point::max());  // cancels every wait
}

}  // namespace

struct output_queue::state {
  struct chunk {
    int fd = 0;
    std::string text;
    std::size_t done = 0;  // bytes of text already written
  };
  struct destination {
    int fd = -1;  // the process's own descriptor (1 or 2)
    // Our own open file description of the same terminal or pipe, O_NONBLOCK; none: blocking
    // writes to `fd`.
    std::optional<asio::posix::stream_descriptor> own;
    bool gone = false;
  };

  state(asio::any_io_executor executor, std::size_t limit)
      : bound(limit), wake(executor), room(executor), drained(executor) {
    for (auto* event : {&wake, &room, &drained}) notify(*event);
    for (int fd = 1; fd <= 2; ++fd) {
      auto& d = destinations[static_cast<std::size_t>(fd)];
      d.fd = fd;
      struct stat info {};
      if (::fstat(fd, &info) != 0) continue;
      if (::isatty(fd) != 1 && !S_ISFIFO(info.st_mode)) continue;
      const std::string path = "/proc/self/fd/" + std::to_string(fd);
      const int own = ::open(path.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
      if (own < 0) continue;  // blocking writes then
      d.own.emplace(executor, own);
    }
  }

  destination& at(int fd) { return destinations[static_cast<std::size_t>(fd == 1 ? 1 : 2)]; }

  void lost(destination& d) {
    if (d.gone) return;
    d.gone = true;
    if (on_gone) on_gone(d.fd);
  }

  /// Writes what `d` takes now of `c`. Returns false when it takes nothing now (a terminal
  /// behind: wait for it); errors other than "not now" end the destination.
  bool write_some(destination& d, chunk& c) {
    const int fd = d.own ? d.own->native_handle() : d.fd;
    while (c.done < c.text.size()) {
      const ssize_t n = ::write(fd, c.text.data() + c.done, c.text.size() - c.done);
      if (n >= 0) {
        c.done += static_cast<std::size_t>(n);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (d.own) return false;
        // Our own descriptor is not the one written (a regular file, a socket), and something
        // else set O_NONBLOCK on it: wait here, as a blocking write would.
        pollfd ready{fd, POLLOUT, 0};
        ::poll(&ready, 1, -1);
        continue;
      }
      // EIO: the terminal hung up (its window closed); EPIPE: whoever read the pipe is gone.
      lost(d);
      return true;
    }
    return true;
  }

  void pop() {
    bytes -= chunks.front().text.size();
    chunks.pop_front();
    if (bytes < bound) notify(room);
    if (chunks.empty()) notify(drained);
  }

  std::size_t bound;
  std::deque<chunk> chunks;
  std::size_t bytes = 0;  // in chunks
  std::array<destination, 3> destinations;
  asio::steady_timer wake;  // something was queued
  asio::steady_timer room;  // bytes fell below bound
  asio::steady_timer drained;
  bool closed = false;
  std::function<void(int)> on_gone;
};

namespace {

// The one writer: holds the state, not the queue (the queue may go first at exit).
asio::awaitable<void> write_queued(std::shared_ptr<output_queue::state> s) {
  for (;;) {
    while (s->chunks.empty()) {
      if (s->closed) co_return;
      boost::system::error_code ec;
      co_await s->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (s->closed) co_return;
    auto& c = s->chunks.front();
    auto& d = s->at(c.fd);
    if (!d.gone && !s->write_some(d, c)) {
      // The terminal is behind: the loop goes on, this coroutine waits for it.
      boost::system::error_code ec;
      co_await d.own->async_wait(asio::posix::stream_descriptor::wait_write,
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || s->closed) co_return;
      if (ec) s->lost(d);
      continue;
    }
    s->pop();
  }
}

}  // namespace

output_queue::output_queue(asio::any_io_executor executor, std::size_t bound)
    : state_(std::make_shared<state>(executor, bound)) {
  asio::co_spawn(executor, write_queued(state_), asio::detached);
}

output_queue::~output_queue() {
  flush();
  state_->closed = true;
  notify(state_->wake);
  for (auto& d : state_->destinations) {
    boost::system::error_code ignored;
    if (d.own) d.own->cancel(ignored);
  }
}

void output_queue::write(int fd, std::string text) {
  if (text.empty()) return;
  auto& s = *state_;
  s.bytes += text.size();
  // Joined to the last chunk when it is for the same descriptor (it may be being written:
  // `done` stays valid as it only grows).
  if (!s.chunks.empty() && s.chunks.back().fd == fd &&
      s.chunks.back().text.size() + text.size() <= max_chunk_bytes) {
    s.chunks.back().text += text;
  } else {
    s.chunks.push_back({fd, std::move(text), 0});
  }
  notify(s.wake);
}

bool output_queue::full() const {
  return state_->bytes >= state_->bound;
}

asio::awaitable<void> output_queue::room() {
  auto s = state_;
  while (s->bytes >= s->bound && !s->closed) {
    boost::system::error_code ec;
    co_await s->room.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> output_queue::drained() {
  auto s = state_;
  while (!s->chunks.empty() && !s->closed) {
    boost::system::error_code ec;
    co_await s->drained.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void output_queue::flush() {
  auto& s = *state_;
  while (!s.chunks.empty()) {
    auto& c = s.chunks.front();
    auto& d = s.at(c.fd);
    while (!d.gone && !s.write_some(d, c)) {
      pollfd ready{d.own->native_handle(), POLLOUT, 0};
      ::poll(&ready, 1, -1);
    }
    s.pop();
  }
}

void output_queue::on_gone(std::function<void(int fd)> gone) {
  state_->on_gone = std::move(gone);
}

}  // namespace funcie::console
