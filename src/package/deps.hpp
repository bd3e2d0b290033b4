// The shared libraries a dynamic binary needs, as its own loader resolves them on this
// machine: `LOADER --list BINARY`, which is what ldd does (the loader maps the libraries and
// runs no code of the binary).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace funcie::package {

struct library {
  std::string name;  ///< the soname the binary asks for: "libssl.so.3"
  std::string path;  ///< where the loader found it: "/lib/x86_64-linux-gnu/libssl.so.3"
  bool operator==(const library&) const = default;
};

struct loader_list {
  std::vector<library> libraries;    ///< in the loader's order, without the loader and the vDSO
  std::vector<std::string> missing;  ///< sonames the loader did not find
};

/// Parses the loader's --list output (ldd's format). Lines "NAME => PATH (0x...)" are
/// libraries, "NAME => not found" missing ones; the vDSO and the loader's own line (a path
/// without "=>") are left out.
loader_list parse_loader_list(std::string_view text);

/// Runs `loader --list binary` and parses it; throws package_error naming the missing
/// libraries, or with the loader's message when it fails.
std::vector<library> list_libraries(const std::string& loader, const std::string& binary);

}  // namespace funcie::package
