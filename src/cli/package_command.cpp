// funcie package: the zips to deploy (src/package/package.hpp, docs/packaging.md): a C++
// function with its loader and libraries, the layer with /opt/funcie-wrapper, the proxy.
#include "cli/command.hpp"
#include "package/error.hpp"
#include "package/package.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace funcie::cli {

namespace {

std::string human(std::uint64_t bytes) {
  if (bytes >= 1024 * 1024) return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1048576);
  if (bytes >= 1024) return fmt::format("{:.1f} kB", static_cast<double>(bytes) / 1024);
  return fmt::format("{} B", bytes);
}

}  // namespace

command add_package(CLI::App& app) {
  struct settings {
    package::package_options options;
    bool layer = false;
    bool proxy = false;
    bool no_strip = false;
  };
  auto s = std::make_shared<settings>();
  auto* cmd = app.add_subcommand(
      "package",
      "Makes a zip to deploy: BINARY (a C++ function) with its dynamic loader and every shared "
      "library it needs, or with --layer the layer with /opt/funcie-wrapper "
      "(AWS_LAMBDA_EXEC_WRAPPER), or with --proxy the proxy-only function (docs/packaging.md)");
  cmd->add_option("binary", s->options.binary,
                  "The function's binary (with --layer or --proxy: the funcie-cloud binary to "
                  "package, default the one next to this funcie)");
  cmd->add_option("-o,--output", s->options.output,
                  "The zip to write (default BINARY-NAME.zip, funcie-layer.zip, funcie-proxy.zip)");
  auto* layer =
      cmd->add_flag("--layer", s->layer, "The layer: funcie-cloud as /opt/funcie-wrapper");
  cmd->add_flag("--proxy", s->proxy, "The proxy-only function: funcie-cloud as /var/task/bootstrap")
      ->excludes(layer);
  cmd->add_option("--library", s->options.libraries,
                  "A library the binary only dlopen's, added with its dependencies (repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--no-strip", s->no_strip, "Keep the binary's debug info");

  return {
      cmd, [s]() -> int {
        auto& options = s->options;
        options.kind = s->layer   ? package::package_kind::layer
                       : s->proxy ? package::package_kind::proxy
                                  : package::package_kind::function;
        options.strip = !s->no_strip;
        if (options.kind == package::package_kind::function && options.binary.empty()) {
          fmt::print(stderr,
                     "funcie package: name the function's binary (funcie package BINARY -o "
                     "function.zip), or pass --layer or --proxy\n");
          return exit_usage;
        }
        if (options.output.empty()) {
          options.output = options.kind == package::package_kind::layer ? "funcie-layer.zip"
                           : options.kind == package::package_kind::proxy
                               ? "funcie-proxy.zip"
                               : std::filesystem::path(options.binary).filename().string() + ".zip";
        }
        try {
          const auto summary = package::make_package(options);
          const auto layout = package::layout_of(options.kind);
          fmt::print("funcie package: {} ({}) -> {}, unpacked at {}\n", summary.binary,
                     summary.machine, options.output, layout.root);
          for (const auto& file : summary.files) {
            if (file.source.starts_with("-> ")) {
              fmt::print("  {:<36} {}\n", file.name, file.source);
            } else {
              fmt::print("  {:<36} {:>10}  {}\n", file.name, human(file.size), file.source);
            }
          }
          if (summary.interpreter) {
            fmt::print("  {} starts {} and loads its libraries from {}\n", layout.executable,
                       *summary.interpreter, layout.bundle_path());
          } else {
            fmt::print("  {} is static: no loader or libraries\n", layout.executable);
          }
          fmt::print("wrote {}: {} files, {} unpacked, {} zipped\n", options.output,
                     summary.files.size(), human(summary.unpacked_bytes), human(summary.zip_bytes));
          return exit_ok;
        } catch (const package::package_error& e) {
          fmt::print(stderr, "funcie package: {}\n", e.what());
          return exit_failure;
        }
      }};
}

}  // namespace funcie::cli
