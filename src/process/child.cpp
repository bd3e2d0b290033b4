#include "process/child.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <utility>

namespace funcie::process {

namespace asio = boost::asio;

std::string exit_status::describe() const {
  if (signal != 0) {
    switch (signal) {
      case SIGKILL:
        return "signal: killed";
      case SIGTERM:
        return "signal: terminated";
      case SIGSEGV:
        return "signal: segmentation fault";
      case SIGABRT:
        return "signal: aborted";
      default:
        return "signal: " + std::string(strsignal(signal));
    }
  }
  return "exit status " + std::to_string(code);
}

struct child::state {
  pid_t pid = -1;
  std::optional<exit_status> status;
  std::optional<asio::posix::stream_descriptor> pidfd;
};

// The read ends of the stdout and stderr pipes, shared by the child object and the two
// reader coroutines, which may outlive it: `stopped` tells them the child is gone.
struct child::output {
  struct stream {
    int number = 0;  // 1 stdout, 2 stderr
    std::optional<asio::posix::stream_descriptor> pipe;
    std::string pending;  // the start of a line whose '\n' has not come yet
    bool ended = false;   // EOF seen: the pipe is closed
  };
  std::function<void(int, std::string_view)> on_line;
  std::function<asio::awaitable<void>()> before_read;
  std::array<stream, 2> streams;
  bool stopped = false;     // the child object is gone: no more calls...
  bool draining = false;    // ...but for those its destructor makes itself
  bool delivering = false;  // a reader is inside on_line (which may destroy the child)
};

namespace {

std::vector<char*> pointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

exit_status decode(int raw) {
  exit_status status;
  if (WIFEXITED(raw)) status.code = WEXITSTATUS(raw);
  if (WIFSIGNALED(raw)) status.signal = WTERMSIG(raw);
  return status;
}

// Owns a file descriptor in the parent until it is handed on.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  ~unique_fd() { reset(); }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Moves `fd` above 0, 1 and 2 (when funcie itself was started with one of them closed),
// so that the child's dup2 onto 0, 1 and 2 never clobbers another of its descriptors.
void above_stdio(unique_fd& fd) {
  if (fd.get() > 2) return;
  int moved = fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
  if (moved < 0) throw spawn_error(std::string("cannot start: ") + std::strerror(errno));
  fd.reset(moved);
}

void make_pipe(unique_fd& read_end, unique_fd& write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    throw spawn_error(std::string("cannot start: pipe: ") + std::strerror(errno));
  }
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  above_stdio(read_end);
  above_stdio(write_end);
}

// What the child reports through the close-on-exec pipe when it fails before exec.
enum failure_stage : int { stage_redirect = 1, stage_directory = 2, stage_exec = 3 };
struct failure_report {
  int stage = 0;
  int error = 0;
};

[[noreturn]] void fail_in_child(int report_fd, int stage) {
  failure_report report{stage, errno};
  ssize_t ignored = write(report_fd, &report, sizeof report);
  (void)ignored;
  _exit(127);
}

// --- output capture --------------------------------------------------------------------

void call(child::output& out, const child::output::stream& s, std::string_view line) {
  if (out.stopped && !out.draining) return;
  try {
    out.on_line(s.number, line);
  } catch (const std::exception& e) {
    spdlog::warn("child output handler failed: {}", e.what());
  } catch (...) {
    spdlog::warn("child output handler failed");
  }
}

// One line without its '\n', in pieces of at most max_line_bytes.
void deliver(child::output& out, const child::output::stream& s, std::string_view line) {
  while (line.size() > max_line_bytes) {
    call(out, s, line.substr(0, max_line_bytes));
    line.remove_prefix(max_line_bytes);
  }
  call(out, s, line);
}

// Splits `data` into lines, keeping an unfinished one in s.pending. Returns false when a
// call destroyed the child (stop at once).
bool feed(child::output& out, child::output::stream& s, std::string_view data) {
  auto gone = [&] { return out.stopped && !out.draining; };
  while (!data.empty()) {
    auto newline = data.find('\n');
    if (newline == std::string_view::npos) {
      s.pending.append(data);
      if (s.pending.size() > max_line_bytes) {
        // Deliver whole pieces; the rest (at most one piece) waits for its '\n'.
        std::size_t whole = (s.pending.size() - 1) / max_line_bytes * max_line_bytes;
        std::string pieces = s.pending.substr(0, whole);
        s.pending.erase(0, whole);
        std::string_view rest(pieces);
        while (!rest.empty()) {
          call(out, s, rest.substr(0, max_line_bytes));
          if (gone()) return false;
          rest.remove_prefix(max_line_bytes);
        }
      }
      return true;
    }
    if (s.pending.empty()) {
      deliver(out, s, data.substr(0, newline));
    } else {
      std::string line = std::move(s.pending);
      s.pending.clear();
      line.append(data.substr(0, newline));
      deliver(out, s, line);
    }
    if (gone()) return false;
    data.remove_prefix(newline + 1);
  }
  return true;
}

// EOF: the last partial line, then the pipe is closed.
void finish(child::output& out, child::output::stream& s) {
  s.ended = true;
  if (!s.pending.empty()) {
    std::string line = std::move(s.pending);
    s.pending.clear();
    deliver(out, s, line);
  }
  boost::system::error_code ignored;
  if (s.pipe) s.pipe->close(ignored);
}

// Reads what the pipe holds now, up to `limit` bytes. Returns false when reading is over
// (EOF, a read error, or the child was destroyed by a call).
bool pump(child::output& out, child::output::stream& s, std::size_t limit) {
  std::array<char, 16384> buffer;
  std::size_t total = 0;
  while (total < limit) {
    ssize_t n = ::read(s.pipe->native_handle(), buffer.data(), buffer.size());
    if (n > 0) {
      total += static_cast<std::size_t>(n);
      std::string_view data(buffer.data(), static_cast<std::size_t>(n));
      if (!feed(out, s, data)) return false;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    finish(out, s);  // EOF (or an error, which ends the stream the same way)
    return false;
  }
  return true;
}

// One reader per stream. Holds the shared output, not the child: it may outlive the child.
asio::awaitable<void> read_lines(std::shared_ptr<child::output> out, std::size_t index) {
  auto& s = out->streams[index];
  for (;;) {
    boost::system::error_code ec;
    co_await s.pipe->async_wait(asio::posix::stream_descriptor::wait_read,
                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec || out->stopped || s.ended) co_return;
    if (out->before_read) {
      // Holds a copy: the child (and its options) may go while this waits.
      auto wait = out->before_read;
      co_await wait();
      if (out->stopped || s.ended) co_return;
    }
    // Bounded, so that a chatty runtime cannot starve the rest of the event loop.
    out->delivering = true;
    bool more = pump(*out, s, 256 * 1024);
    out->delivering = false;
    if (!more || out->stopped) co_return;
  }
}

}  // namespace

child::child(asio::any_io_executor executor, const std::vector<std::string>& argv,
             const std::vector<std::string>& environment, child_options options)
    : state_(std::make_shared<state>()) {
  if (argv.empty()) throw spawn_error("no command given");
  auto args = pointers(argv);
  auto envp = pointers(environment);
  const bool capture = static_cast<bool>(options.on_line);
  const char* directory =
      options.working_directory.empty() ? nullptr : options.working_directory.c_str();

  // The child reports a failure before exec through a close-on-exec pipe: EOF means exec
  // worked.
  unique_fd report_read, report_write;
  make_pipe(report_read, report_write);
  unique_fd out_read, out_write, err_read, err_write, null_fd;
  if (capture) {
    make_pipe(out_read, out_write);
    make_pipe(err_read, err_write);
    null_fd.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (null_fd.get() < 0) {
      throw spawn_error(std::string("cannot open /dev/null: ") + std::strerror(errno));
    }
    above_stdio(null_fd);
  }

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) throw spawn_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec. Every descriptor above is
    // close-on-exec; dup2 gives 0, 1 and 2 without the flag.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (capture) {
      if (dup2(null_fd.get(), 0) < 0 || dup2(out_write.get(), 1) < 0 ||
          dup2(err_write.get(), 2) < 0) {
        fail_in_child(report_write.get(), stage_redirect);
      }
    }
    if (directory && chdir(directory) != 0) fail_in_child(report_write.get(), stage_directory);
    // Descriptors the parent opened without close-on-exec (Asio's sockets, a library's
    // files) must not leak into the runtime: a connection we close would stay open there.
    // Needs Linux 5.11; on an older kernel the runtime inherits them, as before.
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGCHLD}) std::signal(sig, SIG_DFL);
    execvpe(args[0], args.data(), envp.data());
    fail_in_child(report_write.get(), stage_exec);
  }
  report_write.reset();
  out_write.reset();
  err_write.reset();
  null_fd.reset();

  failure_report report;
  ssize_t n;
  do {
    n = read(report_read.get(), &report, sizeof report);
  } while (n < 0 && errno == EINTR);
  report_read.reset();
  if (n == static_cast<ssize_t>(sizeof report)) {
    int raw = 0;
    waitpid(pid, &raw, 0);
    std::string why = std::strerror(report.error);
    switch (report.stage) {
      case stage_directory:
        throw spawn_error("cannot start '" + argv[0] + "': working directory '" +
                          options.working_directory + "': " + why);
      case stage_redirect:
        throw spawn_error("cannot start '" + argv[0] + "': cannot redirect its output: " + why);
      default:
        throw spawn_error("cannot start '" + argv[0] + "': " + why);
    }
  }
  state_->pid = pid;
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    int open_err = errno;
    kill(-pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    throw spawn_error(std::string("pidfd_open failed: ") + std::strerror(open_err));
  }
  state_->pidfd.emplace(executor, fd);

  if (capture) {
    output_ = std::make_shared<output>();
    output_->on_line = std::move(options.on_line);
    output_->before_read = std::move(options.before_read);
    std::array<unique_fd*, 2> ends = {&out_read, &err_read};
    for (std::size_t i = 0; i < 2; ++i) {
      auto& s = output_->streams[i];
      s.number = static_cast<int>(i) + 1;
      int read_end = ends[i]->release();
      ::fcntl(read_end, F_SETFL, ::fcntl(read_end, F_GETFL) | O_NONBLOCK);
      s.pipe.emplace(executor, read_end);
    }
    for (std::size_t i = 0; i < 2; ++i) {
      asio::co_spawn(executor, read_lines(output_, i), asio::detached);
    }
  }
}

child::~child() {
  if (state_ && state_->pid > 0 && !state_->status) {
    kill(-state_->pid, SIGKILL);
    kill(state_->pid, SIGKILL);
    int raw = 0;
    waitpid(state_->pid, &raw, 0);
    state_->status = decode(raw);
    boost::system::error_code ignored;
    state_->pidfd->cancel(ignored);
  }
  if (output_) {
    auto& out = *output_;
    // The process is dead: deliver what it wrote last (a crash's stack trace), unless this
    // destructor runs inside on_line itself. Bounded: a grandchild outside the process
    // group may still be writing.
    const bool reentered = out.delivering;
    out.stopped = true;
    if (!reentered) {
      out.draining = true;
      for (auto& s : out.streams) {
        if (s.ended || !s.pipe) continue;
        if (pump(out, s, 1024 * 1024) && !s.ended) finish(out, s);
      }
      out.draining = false;
    }
    for (auto& s : out.streams) {
      boost::system::error_code ignored;
      if (s.pipe) s.pipe->close(ignored);  // a pending wait ends with operation_aborted
    }
  }
}

void child::collect() {
  if (!output_) return;
  auto keep = output_;  // a call may destroy this child
  auto& out = *keep;
  if (out.stopped || out.delivering) return;
  out.delivering = true;
  for (auto& s : out.streams) {
    if (s.ended || !s.pipe) continue;
    if (!pump(out, s, 1024 * 1024)) break;  // EOF, or a call destroyed the child
  }
  out.delivering = false;
}

int child::pid() const {
  return state_->pid;
}

bool child::exited() const {
  return state_->status.has_value();
}

void child::signal(int sig) {
  if (state_->status) return;
  kill(-state_->pid, sig);
}

namespace {
asio::awaitable<exit_status> wait_for(std::shared_ptr<child::state> self);
}

asio::awaitable<exit_status> child::wait() {
  return wait_for(state_);
}

namespace {
// Holds the state, not the child: the wait may outlive the child object.
asio::awaitable<exit_status> wait_for(std::shared_ptr<child::state> self) {
  while (!self->status) {
    co_await self->pidfd->async_wait(asio::posix::stream_descriptor::wait_read,
                                     asio::use_awaitable);
    if (self->status) break;
    int raw = 0;
    pid_t got = waitpid(self->pid, &raw, WNOHANG);
    if (got == self->pid) {
      self->status = decode(raw);
      // The runtime's own children (npx -> node) go with it, as in a reset environment.
      kill(-self->pid, SIGKILL);
    }
  }
  co_return *self->status;
}
}  // namespace

}  // namespace funcie::process
