#include "package/package.hpp"

#include "package/elf.hpp"
#include "package/error.hpp"
#include "package/run.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

namespace funcie::package {

namespace fs = std::filesystem;

namespace {

const std::string patchelf_hint = "install patchelf (apt-get install patchelf)";
const std::string strip_hint = "install binutils, or pass --no-strip";

std::string read_file(const fs::path& path, std::size_t limit = std::string::npos) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw package_error(fmt::format("cannot read {}", path.string()));
  std::string data;
  if (limit == std::string::npos) {
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else {
    data.resize(limit);
    in.read(data.data(), static_cast<std::streamsize>(limit));
    data.resize(static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw package_error(fmt::format("cannot read {}", path.string()));
  return data;
}

std::string file_name(const std::string& path) {
  return fs::path(path).filename().string();
}

// A temporary directory removed at the end, where copies are edited.
class scratch_dir {
 public:
  scratch_dir() {
    std::error_code ec;
    std::string pattern = (fs::temp_directory_path(ec) / "funcie-package-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw package_error("cannot make a temporary directory in " +
                          fs::temp_directory_path(ec).string());
    }
    path_ = pattern;
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The binary, or the running funcie; a path that exists and is a regular file.
std::string resolve_binary(const package_options& options) {
  std::string binary = options.binary;
  if (binary.empty()) {
    if (options.kind == package_kind::function) {
      throw package_error("no binary given: funcie package BINARY -o function.zip");
    }
    // The layer and the proxy ship funcie-cloud (wrap and proxy only), built and installed
    // next to the developer's funcie.
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) throw package_error("cannot find the running funcie binary (/proc/self/exe)");
    binary = (self.parent_path() / cloud_binary_name).string();
    if (!fs::exists(binary, ec)) {
      throw package_error(fmt::format(
          "{} is missing: --layer and --proxy package funcie-cloud, which is built and "
          "installed next to funcie (build the target funcie_cloud), or name a funcie-cloud "
          "binary: funcie package --layer PATH/funcie-cloud",
          binary));
    }
  }
  std::error_code ec;
  const auto status = fs::status(binary, ec);
  if (!fs::exists(status)) throw package_error(fmt::format("{}: no such file", binary));
  if (!fs::is_regular_file(status)) throw package_error(fmt::format("{}: not a file", binary));
  return binary;
}

void check_output(const std::string& output) {
  if (output.empty()) throw package_error("no output file given (-o FILE.zip)");
  std::error_code ec;
  if (fs::is_directory(output, ec)) {
    throw package_error(fmt::format("{} is a directory: name the zip file", output));
  }
  fs::path dir = fs::path(output).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec)) {
    throw package_error(
        fmt::format("cannot write {}: {} is not a directory", output, dir.string()));
  }
  // libzip writes a temporary file in the same directory, then renames it.
  if (::access(dir.c_str(), W_OK) != 0 ||
      (fs::exists(output, ec) && ::access(output.c_str(), W_OK) != 0)) {
    throw package_error(fmt::format("cannot write {}: permission denied", output));
  }
}

std::uint16_t host_machine() {
  return parse_elf(read_file("/proc/self/exe", 64 * 1024), "/proc/self/exe").machine;
}

void check_machine(const elf_info& info, const std::string& what) {
  const std::uint16_t host = host_machine();
  if (info.machine != host) {
    throw package_error(fmt::format(
        "{} is built for {}, and this funcie runs on {}: package it with a funcie on an {} "
        "machine (docs/packaging.md, \"arm64\")",
        what, machine_name(info.machine), machine_name(host), machine_name(info.machine)));
  }
}

// True when the library has an RPATH or RUNPATH of its own.
bool has_rpath(const std::string& library) {
  const std::string rpath = run_checked({"patchelf", "--print-rpath", library}, patchelf_hint);
  return rpath.find_first_not_of(" \n") != std::string::npos;
}

}  // namespace

package_layout layout_of(package_kind kind) {
  switch (kind) {
    case package_kind::function:
    case package_kind::proxy:
      return {.root = "/var/task", .executable = "bootstrap", .bundle = "bundle", .symlinks = {}};
    case package_kind::layer:
      return {.root = "/opt",
              .executable = "funcie-wrapper",
              .bundle = "funcie/bundle",
              .symlinks = {zip_entry{.name = "funcie/bin/funcie",
                                     .type = zip_entry::kind::symlink,
                                     .mode = 0777,
                                     .data = "../../funcie-wrapper"}}};
  }
  throw package_error("unknown package kind");
}

std::vector<planned_file> plan_files(const package_layout& layout, const std::string& binary,
                                     const std::optional<std::string>& interpreter,
                                     const std::vector<library>& libraries) {
  std::vector<planned_file> files{{.name = layout.executable, .source = binary, .mode = 0755}};
  if (!interpreter) return files;
  const std::string loader = file_name(*interpreter);
  files.push_back({.name = layout.bundle + "/" + loader, .source = *interpreter, .mode = 0755});
  std::set<std::string> seen{loader};
  for (const auto& lib : libraries) {
    const std::string name = file_name(lib.name);
    if (!seen.insert(name).second) continue;
    files.push_back({.name = layout.bundle + "/" + name, .source = lib.path, .mode = 0644});
  }
  return files;
}

package_summary make_package(const package_options& options) {
  const std::string binary = resolve_binary(options);
  check_output(options.output);
  const package_layout layout = layout_of(options.kind);

  const elf_info info = parse_elf(read_file(binary, 64 * 1024), binary);
  check_machine(info, binary);

  package_summary summary;
  summary.binary = binary;
  summary.machine = machine_name(info.machine);

  std::vector<library> libraries;
  if (info.interpreter) {
    libraries = list_libraries(*info.interpreter, binary);
    for (const auto& extra : options.libraries) {
      const elf_info lib = parse_elf(read_file(extra, 64 * 1024), extra);
      check_machine(lib, extra);
      libraries.push_back({file_name(extra), extra});
      for (auto& dep : list_libraries(*info.interpreter, extra))
        libraries.push_back(std::move(dep));
    }
  } else if (!options.libraries.empty()) {
    throw package_error(fmt::format(
        "{} is a static binary: it cannot load the libraries given with --library", binary));
  }
  const auto files = plan_files(layout, binary, info.interpreter, libraries);

  scratch_dir scratch;
  std::vector<zip_entry> entries;
  std::set<std::string> dirs;
  for (const auto& file : files) {
    std::string data;
    if (file.name == layout.executable) {
      // The binary: a copy, stripped of debug info, told to start the bundled loader and to
      // find every library in the bundle first (DT_RPATH: see docs/packaging.md).
      const std::string copy = (scratch.path() / "binary").string();
      if (options.strip) {
        // funcie's own binary (layer, proxy) loses its symbol table too, a third of its size;
        // a function keeps its symbols for the stack traces it may print.
        const bool own = options.kind != package_kind::function;
        run_checked({"strip", own ? "--strip-all" : "--strip-debug", "-o", copy, binary},
                    strip_hint);
      } else {
        fs::copy_file(binary, copy, fs::copy_options::overwrite_existing);
      }
      if (info.interpreter) {
        summary.interpreter = layout.bundle_path() + "/" + file_name(*info.interpreter);
        run_checked({"patchelf", "--set-interpreter", *summary.interpreter, "--force-rpath",
                     "--set-rpath", layout.bundle_path(), copy},
                    patchelf_hint);
      }
      data = read_file(copy);
    } else if (file.mode == 0644 && has_rpath(file.source)) {
      // A library with its own RPATH/RUNPATH (from a build tree): removed, so that the
      // binary's DT_RPATH finds its dependencies in the bundle too.
      const std::string copy = (scratch.path() / file_name(file.name)).string();
      fs::copy_file(file.source, copy, fs::copy_options::overwrite_existing);
      run_checked({"patchelf", "--remove-rpath", copy}, patchelf_hint);
      data = read_file(copy);
    } else {
      data = read_file(file.source);
    }
    summary.files.push_back({file.name, file.source, data.size()});
    summary.unpacked_bytes += data.size();
    for (auto dir = fs::path(file.name).parent_path(); !dir.empty(); dir = dir.parent_path()) {
      dirs.insert(dir.string());
    }
    entries.push_back({.name = file.name,
                       .type = zip_entry::kind::file,
                       .mode = file.mode,
                       .data = std::move(data)});
  }
  for (const auto& link : layout.symlinks) {
    for (auto dir = fs::path(link.name).parent_path(); !dir.empty(); dir = dir.parent_path()) {
      dirs.insert(dir.string());
    }
    summary.files.push_back({link.name, "-> " + link.data, 0});
    entries.push_back(link);
  }
  for (const auto& dir : dirs) {
    entries.push_back({.name = dir, .type = zip_entry::kind::directory, .mode = 0755, .data = {}});
  }
  summary.zip_bytes = write_zip(options.output, std::move(entries));
  return summary;
}

}  // namespace funcie::package
