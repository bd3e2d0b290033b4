// One function's handler run on this machine without any broker: `funcie invoke` and the
// page's Replay (docs/console.md). The same local execution environments `funcie connect`
// uses (consumer::runtime_pool), one at a time, each run a fresh request id and deadline;
// the result comes back as a history row (not yet recorded).
#pragma once

#include "history/history.hpp"
#include "project/project.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace funcie::history {

struct local_run_options {
  project::function_spec spec;  ///< command, directory, environment; app names the rows
  std::chrono::milliseconds timeout{30000};
  /// Each line the handler prints (stream 1 or 2); empty: dropped (they are in the row).
  std::function<void(int stream, std::string_view line)> output;
};

class local_runner {
 public:
  local_runner(boost::asio::any_io_executor executor, local_run_options options);
  ~local_runner();
  local_runner(const local_runner&) = delete;
  local_runner& operator=(const local_runner&) = delete;

  /// Runs `event` to its end. The row has outcome, response or error, the handler's lines,
  /// duration and source "invoke"; its id is 0 (record it to get one). Never throws for a
  /// handler's failure: a command that cannot start is an error row
  /// (Runtime.InvalidEntrypoint).
  boost::asio::awaitable<entry> run(std::string event);

  /// Stops the runtime (SIGTERM, then SIGKILL after a second).
  boost::asio::awaitable<void> shut_down();

  const project::function_spec& spec() const;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace funcie::history
