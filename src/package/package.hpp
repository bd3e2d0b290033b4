// `funcie package`: a zip Lambda can run, made of a binary, its dynamic loader and every
// shared library it needs, with the binary edited to start that loader (docs/packaging.md).
#pragma once

#include "package/deps.hpp"
#include "package/zip_writer.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace funcie::package {

enum class package_kind {
  function,  ///< a C++ function for a custom runtime, unpacked at /var/task
  layer,     ///< funcie as /opt/funcie-wrapper (AWS_LAMBDA_EXEC_WRAPPER), unpacked at /opt
  proxy,     ///< funcie as /var/task/bootstrap: the proxy-only function
};

/// Where one kind of zip puts things. Paths inside the zip are relative to `root`.
struct package_layout {
  std::string root;                 ///< where Lambda unpacks it: "/var/task" or "/opt"
  std::string executable;           ///< the edited binary: "bootstrap", "funcie-wrapper"
  std::string bundle;               ///< the loader and the libraries: "bundle", "funcie/bundle"
  std::vector<zip_entry> symlinks;  ///< more names for the binary (the layer's funcie/bin/funcie)

  /// The absolute directory the binary's DT_RPATH names: "/var/task/bundle".
  std::string bundle_path() const { return root + "/" + bundle; }
};

package_layout layout_of(package_kind kind);

/// What goes into the zip, before any file is read (pure): the binary under its entry-point
/// name (0755), the loader named after the interpreter's file name (0755), then each
/// library once under the name the loader asked for (0644), skipping the loader's own name.
struct planned_file {
  std::string name;    ///< inside the zip
  std::string source;  ///< on this machine
  unsigned mode = 0644;
};
std::vector<planned_file> plan_files(const package_layout& layout, const std::string& binary,
                                     const std::optional<std::string>& interpreter,
                                     const std::vector<library>& libraries);

/// The cloud side's binary (wrap and proxy), which the layer and the proxy zip ship.
inline constexpr const char* cloud_binary_name = "funcie-cloud";

struct package_options {
  package_kind kind = package_kind::function;
  /// The binary; empty for layer and proxy: funcie-cloud in the running funcie's directory.
  std::string binary;
  std::string output;
  /// Libraries that are only dlopen'd: added with their own dependencies.
  std::vector<std::string> libraries;
  /// Strip the binary's debug info (strip --strip-debug; layer and proxy: --strip-all).
  bool strip = true;
};

struct package_summary {
  struct file {
    std::string name;
    std::string source;
    std::uint64_t size = 0;
  };
  std::vector<file> files;
  std::uint64_t unpacked_bytes = 0;
  std::uint64_t zip_bytes = 0;
  std::string binary;  ///< the binary that was packaged
  std::string machine;
  std::optional<std::string> interpreter;  ///< the binary's new PT_INTERP; none when static
};

/// Makes the zip. Throws package_error saying what is wrong (no such binary, not an ELF
/// program, another architecture, missing libraries, patchelf missing, output not writable).
package_summary make_package(const package_options& options);

}  // namespace funcie::package
