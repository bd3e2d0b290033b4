#include "package/deps.hpp"

#include "package/error.hpp"
#include "package/run.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace funcie::package {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// "PATH (0x00007f...)" -> "PATH"
std::string_view without_address(std::string_view s) {
  if (s.ends_with(")")) {
    if (const auto open = s.rfind(" ("); open != std::string_view::npos) s = s.substr(0, open);
  }
  return trim(s);
}

}  // namespace

loader_list parse_loader_list(std::string_view text) {
  loader_list result;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    const std::string_view line = trim(text.substr(0, eol));
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    if (line.empty()) continue;
    const auto arrow = line.find(" => ");
    if (arrow == std::string_view::npos) continue;  // the vDSO, the loader itself
    const std::string_view name = trim(line.substr(0, arrow));
    const std::string_view where = without_address(line.substr(arrow + 4));
    if (where == "not found") {
      result.missing.emplace_back(name);
    } else if (!where.empty() && where.front() == '/') {
      result.libraries.push_back({std::string(name), std::string(where)});
    }
    // "libfoo.so => (0x...)", a vDSO under a name, has no file: left out.
  }
  return result;
}

std::vector<library> list_libraries(const std::string& loader, const std::string& binary) {
  auto run = run_program({loader, "--list", binary}, "");
  auto listed = parse_loader_list(run.out);
  if (!listed.missing.empty()) {
    throw package_error(fmt::format(
        "{} needs libraries this machine does not have: {} (install them, or build where "
        "they are)",
        binary, fmt::join(listed.missing, ", ")));
  }
  if (run.exit_code != 0) {
    std::string why = run.err;
    while (!why.empty() && why.back() == '\n') why.pop_back();
    throw package_error(fmt::format("{} --list {} failed (exit status {}): {}", loader, binary,
                                    run.exit_code, why));
  }
  return std::move(listed.libraries);
}

}  // namespace funcie::package
