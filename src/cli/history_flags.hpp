// The flags of the invocation history (docs/console.md) that connect, invoke and ui share,
// and the store they open.
#pragma once

#include "history/history.hpp"

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>

namespace funcie::cli {

struct history_flags {
  std::string path;  ///< --history; empty: history::default_path
  std::string size;  ///< --history-size; empty: the default bound
  bool off = false;  ///< --no-history
};

/// Adds --history PATH, --history-size SIZE and --no-history to `sub`.
void add_history_flags(CLI::App* sub, history_flags& flags);

/// The store the flags ask for; nullptr with --no-history. Throws std::invalid_argument for
/// a bad size and history::history_error when the file cannot be opened.
std::shared_ptr<history::store> open_history(const history_flags& flags);

/// Writes each row to `store`'s file from a thread of its own (history::recorder); the first
/// failure calls `warn` once with why (on the caller's thread, at the next row), and later
/// rows are dropped (serving never depends on the history). Empty without a store.
std::function<void(history::entry)> recorder_for(const std::shared_ptr<history::store>& store,
                                                 std::function<void(const std::string&)> warn);

}  // namespace funcie::cli
