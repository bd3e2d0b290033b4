// One function `funcie connect` serves: its consumer session, its pool of local runtimes,
// its watcher, and what happens to each invocation on the way (one console line, the
// deadline warning, --hold's replay loop). docs/local.md is the design.
#pragma once

#include "console/console.hpp"
#include "consumer/consumer.hpp"
#include "consumer/runtime_pool.hpp"
#include "history/history.hpp"
#include "project/project.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <string>

namespace funcie::consumer {

struct served_options {
  project::function_spec spec;
  console::console* out = nullptr;  ///< Where lines go; must outlive the served_function.
  bool show_name = false;           ///< Several functions: lines name theirs.
  bool verbose = false;             ///< Events and responses pretty-printed under the line.
  bool report = false;              ///< Lambda's REPORT figures under each invocation's line.
  /// Made per session (tests give a fake); empty: the spec's backend.
  std::function<std::unique_ptr<tunnel::consumer_session>()> make_session;
  /// Called with each new session (first: the first one), before the start block.
  std::function<void(const std::string& session_id, bool first)> on_session;
  /// Each finished invocation (its final outcome after --hold), with the event, the result
  /// and the handler's lines while it ran (docs/console.md); empty: nothing is kept.
  std::function<void(history::entry)> record;
  /// The last line of the start block: how to reload and leave ("r reloads, Ctrl-C
  /// leaves"); empty: none.
  std::string controls;
};

class served_function {
 public:
  served_function(boost::asio::any_io_executor executor, served_options options);
  ~served_function();
  served_function(const served_function&) = delete;
  served_function& operator=(const served_function&) = delete;

  /// Serves until stop(); throws tunnel::backend_config_error for a bad configuration.
  boost::asio::awaitable<void> run();

  /// Leaves the tunnel (held requests answered Funcie.ConsumerLeft), stops the runtimes.
  boost::asio::awaitable<void> stop();

  /// Restarts the runtimes and runs held requests again; `why` is shown ("src/app.js
  /// changed", "r pressed").
  void reload(const std::string& why);

  const project::function_spec& spec() const;

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace funcie::consumer
