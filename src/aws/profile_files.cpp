#include "aws/profile_files.hpp"

#include <ini.h>

#include <strings.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace funcie::aws {
namespace {

// inih reads lines into a buffer of a size fixed when it was built (200 bytes in Debian's
// libinih), and a session token alone is longer. So it reads through this reader, which
// hands it long values as a marker ("\x01N\x02") and keeps the text on the side; the
// handler puts the text back.
struct line_reader {
  std::string text;
  std::size_t pos = 0;
  std::vector<std::string> long_values;
};

constexpr char marker_open = '\x01';
constexpr char marker_close = '\x02';

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

// As inih does for a value: a ';' after whitespace starts a comment.
std::string_view strip_inline_comment(std::string_view value) {
  for (std::size_t i = 1; i < value.size(); ++i) {
    if (value[i] == ';' && (value[i - 1] == ' ' || value[i - 1] == '\t')) {
      return trim(value.substr(0, i));
    }
  }
  return value;
}

// A line longer than inih's buffer: "name =" then a marker for the rest. A comment, or a
// line without a separator (which inih reports as an error anyway), is cut instead.
std::string shorten(line_reader& r, std::string_view line, std::size_t room) {
  const std::string_view content = trim(line);
  const auto separator = line.find_first_of("=:");
  const bool comment = !content.empty() && (content[0] == ';' || content[0] == '#');
  std::string marker = " ";
  marker += marker_open;
  marker += std::to_string(r.long_values.size());
  marker += marker_close;
  if (comment || separator == std::string_view::npos || separator + 1 + marker.size() + 1 > room) {
    return std::string(line.substr(0, room - 1)) + "\n";
  }
  r.long_values.emplace_back(strip_inline_comment(trim(line.substr(separator + 1))));
  return std::string(line.substr(0, separator + 1)) + marker + "\n";
}

char* read_line(char* buffer, int size, void* stream) {
  auto& r = *static_cast<line_reader*>(stream);
  if (r.pos >= r.text.size() || size < 2) return nullptr;
  const auto newline = r.text.find('\n', r.pos);
  const std::size_t next = newline == std::string::npos ? r.text.size() : newline + 1;
  const std::string_view line(r.text.data() + r.pos, next - r.pos);
  r.pos = next;
  const auto room = static_cast<std::size_t>(size) - 1;
  const std::string out = line.size() <= room ? std::string(line) : shorten(r, line, room);
  std::memcpy(buffer, out.data(), out.size());
  buffer[out.size()] = '\0';
  return buffer;
}

struct parse_state {
  line_reader reader;
  std::map<std::string, ini_section> sections;
  std::string last_section;
  std::string last_name;
};

std::string restore_long_values(const line_reader& r, std::string_view value) {
  std::string out;
  std::size_t i = 0;
  while (i < value.size()) {
    const auto open = value.find(marker_open, i);
    const auto close = open == std::string_view::npos ? open : value.find(marker_close, open);
    if (close == std::string_view::npos) {
      out += value.substr(i);
      break;
    }
    out += value.substr(i, open - i);
    const std::size_t index = std::stoul(std::string(value.substr(open + 1, close - open - 1)));
    if (index < r.long_values.size()) out += r.long_values[index];
    i = close + 1;
  }
  return out;
}

// "profile   dev" -> "profile dev": the CLI splits a section name on whitespace.
std::string normalize_section(std::string_view name) {
  std::string out;
  std::istringstream words{std::string(name)};
  std::string word;
  while (words >> word) {
    if (!out.empty()) out += ' ';
    out += word;
  }
  return out;
}

// inih calls this again with the same section and name for each indented line after a
// setting (INI_ALLOW_MULTILINE): those lines are the setting's sub-properties.
int on_setting(void* user, const char* section, const char* name, const char* value) {
  auto& s = *static_cast<parse_state*>(user);
  const std::string section_name = normalize_section(section);
  std::string text = restore_long_values(s.reader, value);
  std::string& slot = s.sections[section_name][name];
  if (section_name == s.last_section && name == s.last_name) {
    if (!slot.empty()) slot += '\n';
    slot += text;
  } else {
    slot = std::move(text);
  }
  s.last_section = section_name;
  s.last_name = name;
  return 1;
}

std::map<std::string, ini_section> read_ini(const std::string& path) {
  if (path.empty()) return {};
  std::error_code ignored;
  if (!std::filesystem::exists(path, ignored)) return {};
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    throw profile_file_error("cannot read " + path + ": " + std::strerror(errno) +
                             " (fix its permissions, or point the variable that names it "
                             "elsewhere)");
  }
  parse_state state;
  std::ostringstream content;
  content << file.rdbuf();
  state.reader.text = content.str();
  const int error_line = ini_parse_stream(read_line, &state.reader, on_setting, &state);
  if (error_line != 0) {
    throw profile_file_error(path + " line " + std::to_string(error_line) +
                             " is not in the AWS config format ([section] or name = value)");
  }
  return std::move(state.sections);
}

std::string file_path(const getenv_fn& getenv, const char* variable, const char* under_home) {
  const char* home = getenv("HOME");
  if (const char* set = getenv(variable); set != nullptr && *set != '\0') {
    std::string path = set;
    if (path.starts_with("~/") && home != nullptr) path = std::string(home) + path.substr(1);
    return path;
  }
  if (home == nullptr || *home == '\0') return {};
  return std::string(home) + "/.aws/" + under_home;
}

}  // namespace

const std::string* profile_files::find(const std::string& key) const {
  if (auto it = credentials.find(key); it != credentials.end()) return &it->second;
  if (auto it = config.find(key); it != config.end()) return &it->second;
  return nullptr;
}

std::string profile_files::paths() const {
  std::string files;
  if (!credentials_path.empty()) files = credentials_path;
  if (!config_path.empty()) files += (files.empty() ? "" : " and ") + config_path;
  if (files.empty()) files = "no files (HOME is not set)";
  return files;
}

std::string profile_files::describe() const {
  return "profile " + profile + " (" + paths() + ")";
}

profile_files load_profile_files(const getenv_fn& getenv) {
  profile_files out;
  const char* profile = getenv("AWS_PROFILE");
  out.profile_from_env = profile != nullptr && *profile != '\0';
  out.profile = out.profile_from_env ? profile : "default";
  out.config_path = file_path(getenv, "AWS_CONFIG_FILE", "config");
  out.credentials_path = file_path(getenv, "AWS_SHARED_CREDENTIALS_FILE", "credentials");

  out.config_sections = read_ini(out.config_path);
  // "[profile default]" wins over "[default]" when a file has both.
  for (const std::string& name : {std::string("profile ") + out.profile,
                                  out.profile == "default" ? std::string("default") : ""}) {
    auto it = out.config_sections.find(name);
    if (name.empty() || it == out.config_sections.end()) continue;
    out.config.insert(it->second.begin(), it->second.end());
    out.in_config = true;
  }
  auto credential_sections = read_ini(out.credentials_path);
  if (auto it = credential_sections.find(out.profile); it != credential_sections.end()) {
    out.credentials = std::move(it->second);
    out.in_credentials = true;
  }
  return out;
}

std::string sub_property(std::string_view value, std::string_view name) {
  std::size_t start = 0;
  while (start <= value.size()) {
    auto end = value.find('\n', start);
    if (end == std::string_view::npos) end = value.size();
    const std::string_view line = value.substr(start, end - start);
    start = end + 1;
    const auto equals = line.find('=');
    if (equals == std::string_view::npos) continue;
    if (trim(line.substr(0, equals)) == name) return std::string(trim(line.substr(equals + 1)));
  }
  return {};
}

bool is_true(const char* value) {
  return value != nullptr && strcasecmp(value, "true") == 0;
}

}  // namespace funcie::aws
