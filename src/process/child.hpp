// A child process in its own process group, watched through a pidfd so that its exit is
// an ordinary awaitable on the event loop (no SIGCHLD handler, no threads). Its stdout and
// stderr can be captured line by line, read by coroutines on the same event loop.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::process {

/// The command could not be started (not found, not executable, bad working directory...).
class spawn_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How a process ended, in the words Lambda uses: "exit status 1", "signal: killed".
struct exit_status {
  int code = 0;    ///< Exit code when it exited.
  int signal = 0;  ///< Signal number when a signal ended it.
  std::string describe() const;
};

/// A captured line longer than this is delivered in pieces of this size.
inline constexpr std::size_t max_line_bytes = 16 * 1024;

struct child_options {
  /// Empty: the child inherits stdout/stderr (and stdin). Set: both go to pipes and each
  /// complete line (without its '\n'; a line longer than max_line_bytes is delivered in
  /// max_line_bytes pieces; a last partial line is delivered at EOF) is passed here, stream
  /// 1 or 2, on the executor; the child's stdin is then /dev/null. Calls end with the child
  /// object: its destructor delivers what the pipes already hold (a crashed runtime's last
  /// words), then never calls again, even if grandchildren keep the pipes open. Must not
  /// throw (what it throws is logged and dropped).
  std::function<void(int stream, std::string_view line)> on_line;
  /// With on_line. Empty: the pipes are read as the child writes. Set: each read of a pipe
  /// first waits for this to complete: while whoever shows the lines is behind (a terminal
  /// that stopped reading), the pipes are not read and the child waits on its own writes
  /// (backpressure, not loss).
  std::function<boost::asio::awaitable<void>()> before_read;
  /// Empty: the parent's. A relative argv[0] ("./bootstrap") is found from here. One that
  /// cannot be entered is a spawn_error naming it.
  std::string working_directory;
};

class child {
 public:
  /// Starts argv[0] (searched in the PATH of `environment`) with exactly `environment`
  /// ("K=V" strings), its own process group, and SIGKILL when funcie dies. Throws
  /// spawn_error with the reason when exec fails.
  child(boost::asio::any_io_executor executor, const std::vector<std::string>& argv,
        const std::vector<std::string>& environment, child_options options = {});
  /// Kills the whole process group (SIGKILL) if it still runs, and reaps it; ends output
  /// capture (see child_options::on_line).
  ~child();
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  int pid() const;
  /// Completes when the process has exited; reaps it.
  boost::asio::awaitable<exit_status> wait();
  bool exited() const;
  /// Sends `sig` to the whole process group (a runtime such as npx has children).
  void signal(int sig);
  /// With on_line: delivers now what the pipes already hold (up to 1 MiB each), without
  /// waiting for the readers' turn on the event loop or for before_read. For a caller that
  /// learns through another channel that the child has written something (a runtime posts
  /// its response after logging): the lines written before that are delivered before the
  /// caller goes on. An unfinished last line stays pending.
  void collect();

  struct state;
  struct output;

 private:
  std::shared_ptr<state> state_;
  std::shared_ptr<output> output_;
};

}  // namespace funcie::process
