// One file per subcommand: each adds its options to the app and returns what runs it once
// the command line is parsed. main.cpp holds only what all subcommands share.
#pragma once

#include "util/user_error.hpp"

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <span>
#include <string>

namespace funcie::cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

/// A bad flag or combination of flags: one line, exit 2 (as every util::user_error).
class usage_error : public util::user_error {
 public:
  using util::user_error::user_error;
};

struct command {
  CLI::App* app = nullptr;
  /// Called after parsing when this subcommand was chosen; returns the exit code.
  std::function<int()> run;
};

command add_emulate(CLI::App& app);
command add_wrap(CLI::App& app);
command add_connect(CLI::App& app);
command add_status(CLI::App& app);
command add_proxy(CLI::App& app);
command add_package(CLI::App& app);
command add_doctor(CLI::App& app);
command add_secret(CLI::App& app);
command add_invoke(CLI::App& app);
command add_ui(CLI::App& app);

using command_factory = command (*)(CLI::App&);

/// The main of a funcie executable with these subcommands: the shared options (--log-level,
/// --version), the names `bootstrap` (runs proxy) and `funcie-wrapper` (runs wrap --), the
/// logger, then the chosen subcommand. Returns the exit code.
int run_main(int argc, char** argv, const char* description,
             std::span<const command_factory> factories);

/// Runs `body` and turns an escaping exception into one line on stderr, "funcie NAME: ...",
/// and exit_usage for what the user can fix (util::user_error), exit_failure for the rest,
/// so that no subcommand ends with an uncaught exception.
int run_guarded(const char* name, const std::function<int()>& body);

/// AWS_LAMBDA_RUNTIME_API, for a subcommand that runs inside Lambda (wrap, proxy); nullopt
/// after saying on stderr that `funcie NAME` runs inside Lambda and it is not set.
std::optional<std::string> lambda_runtime_api(const char* name);

}  // namespace funcie::cli
