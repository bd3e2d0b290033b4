// A child process in its own process group, watched through a pidfd so that its exit is
// an ordinary awaitable on the event loop (no SIGCHLD handler, no threads).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace funcie::process {

/// The command could not be started (not found, not executable, ...).
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

class child {
 public:
  /// Starts argv[0] (searched in the PATH of `environment`) with exactly `environment`
  /// ("K=V" strings), its own process group, and SIGKILL when funcie dies. Throws
  /// spawn_error with the reason when exec fails.
  child(boost::asio::any_io_executor executor, const std::vector<std::string>& argv,
        const std::vector<std::string>& environment);
  /// Kills the whole process group (SIGKILL) if it still runs, and reaps it.
  ~child();
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  int pid() const;
  /// Completes when the process has exited; reaps it.
  boost::asio::awaitable<exit_status> wait();
  bool exited() const;
  /// Sends `sig` to the whole process group (a runtime such as npx has children).
  void signal(int sig);

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace funcie::process
