#include "cli/history_flags.hpp"

#include "history/recorder.hpp"

#include <cstdlib>

namespace funcie::cli {

void add_history_flags(CLI::App* sub, history_flags& flags) {
  sub->add_option("--history", flags.path,
                  "The invocation history's file (default: FUNCIE_HISTORY, else "
                  "$XDG_STATE_HOME/funcie/history.sqlite3)");
  sub->add_option("--history-size", flags.size,
                  "The history's bound, oldest invocations dropped first (e.g. 300M, 1G; "
                  "default: FUNCIE_HISTORY_SIZE, else 256M)");
  sub->add_flag("--no-history", flags.off, "Record nothing");
}

std::shared_ptr<history::store> open_history(const history_flags& flags) {
  if (flags.off) return nullptr;
  // --history-size, else FUNCIE_HISTORY_SIZE (set once in a shell profile), else 256M.
  const char* variable = std::getenv("FUNCIE_HISTORY_SIZE");
  const std::string size =
      !flags.size.empty() ? flags.size : std::string(variable != nullptr ? variable : "");
  const auto bound = size.empty() ? history::default_bound : history::parse_size(size);
  const auto path = flags.path.empty()
                        ? history::default_path([](const char* name) { return std::getenv(name); })
                        : flags.path;
  return std::make_shared<history::store>(path, bound);
}

std::function<void(history::entry)> recorder_for(const std::shared_ptr<history::store>& store,
                                                 std::function<void(const std::string&)> warn) {
  if (!store) return {};
  std::shared_ptr<history::recorder> writer;
  try {
    writer = std::make_shared<history::recorder>(store->path(), store->bound());
  } catch (const std::exception& e) {
    warn(std::string(e.what()) + "; nothing is recorded this session");
    return {};
  }
  auto warned = std::make_shared<bool>(false);
  return [writer, warn = std::move(warn), warned](history::entry e) {
    if (writer->record(std::move(e)) || *warned) return;
    *warned = true;
    const auto why = writer->error();
    warn(why.empty() ? std::string("the history's disk is far behind: invocations are not recorded "
                                   "until it catches up")
                     : why + "; nothing more is recorded this session");
  };
}

}  // namespace funcie::cli
