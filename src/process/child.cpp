#include "process/child.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>

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

}  // namespace

child::child(asio::any_io_executor executor, const std::vector<std::string>& argv,
             const std::vector<std::string>& environment)
    : state_(std::make_shared<state>()) {
  if (argv.empty()) throw spawn_error("no command given");
  auto args = pointers(argv);
  auto envp = pointers(environment);

  // The child reports an exec failure through a close-on-exec pipe: EOF means exec worked.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) throw spawn_error(std::strerror(errno));
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(report[0]);
    close(report[1]);
    throw spawn_error(std::strerror(err));
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    close(report[0]);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGCHLD}) std::signal(sig, SIG_DFL);
    execvpe(args[0], args.data(), envp.data());
    int err = errno;
    ssize_t ignored = write(report[1], &err, sizeof err);
    (void)ignored;
    _exit(127);
  }
  close(report[1]);
  int err = 0;
  ssize_t n;
  do {
    n = read(report[0], &err, sizeof err);
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n == static_cast<ssize_t>(sizeof err)) {
    int raw = 0;
    waitpid(pid, &raw, 0);
    throw spawn_error("cannot start '" + argv[0] + "': " + std::strerror(err));
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
}

child::~child() {
  if (!state_ || state_->pid <= 0 || state_->status) return;
  kill(-state_->pid, SIGKILL);
  kill(state_->pid, SIGKILL);
  int raw = 0;
  waitpid(state_->pid, &raw, 0);
  state_->status = decode(raw);
  boost::system::error_code ignored;
  state_->pidfd->cancel(ignored);
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
