// Runs a helper program to its end and keeps what it printed: the loader's --list, patchelf,
// strip. Blocking, no shell: packaging is a one-shot command, not part of an event loop.
#pragma once

#include <string>
#include <vector>

namespace funcie::package {

struct run_result {
  int exit_code = 0;  ///< 128 + signal when a signal ended it
  std::string out;
  std::string err;
};

/// Runs argv (argv[0] searched in PATH) with this process's environment minus LD_PRELOAD.
/// Throws package_error when it cannot be started ("patchelf was not found: install ...").
run_result run_program(const std::vector<std::string>& argv, const std::string& install_hint);

/// run_program, and a package_error with its stderr when it does not exit 0.
std::string run_checked(const std::vector<std::string>& argv, const std::string& install_hint);

/// The first directory of PATH that has an executable `name`; empty if none.
std::string find_in_path(const std::string& name);

}  // namespace funcie::package
