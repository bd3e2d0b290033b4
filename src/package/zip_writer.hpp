// Writes a zip with libzip the way Lambda reads one: Unix modes (exec bits, symlinks) in the
// external attributes, and nothing that changes from run to run (sorted entries, one fixed
// timestamp), so the same inputs give the same bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace funcie::package {

struct zip_entry {
  enum class kind { file, directory, symlink };
  std::string name;  ///< path inside the zip: "bundle/libc.so.6", a directory without '/'
  kind type = kind::file;
  unsigned mode = 0644;  ///< permission bits (the file type comes from `type`)
  std::string data;      ///< a file's bytes, or a symlink's target
};

/// Every entry's modification time: 2000-01-01 00:00:00 (zip times are local, no zone).
inline constexpr int zip_entry_year = 2000;

/// Writes `entries`, sorted by name, to `path` (replacing it; libzip writes a temporary file
/// beside it and renames it at the end). Files are deflated (level 9), symlinks and
/// directories stored. Returns the zip's size in bytes. Throws package_error.
std::uint64_t write_zip(const std::string& path, std::vector<zip_entry> entries);

}  // namespace funcie::package
