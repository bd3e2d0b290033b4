// funcie.toml, the project file, read with toml++ and checked key by key. docs/local.md
// ("Project file", "Reference") is the manual; this is the schema as implemented:
//
//   # Top level: defaults for every function (each may be overridden in a function).
//   backend = "redis://localhost:6379"  # redis://, rediss:// or sqs:// URL; may be left to
//                                       # FUNCIE_BACKEND / --backend (passwords stay out)
//   concurrency = 10                    # integer 1..1000
//   hold = false                        # boolean
//   forward_credentials = false         # boolean
//   heartbeat_ms = 3000                 # integer 300..300000
//   ca_file = "certs/ca.pem"            # relative to the file's directory, must be a file;
//                                       # "" (the default): the system's CAs
//   tls_verify = true                   # boolean
//   secret_file = "~/.config/x.secret"  # the shared secret (docs/security.md), relative to
//                                       # the file's directory; "" (default): FUNCIE_SECRET
//   encrypt = true                      # false: messages signed but not encrypted
//   request_queue = "https://sqs..."    # sqs:// only: the queues' URLs (default: the
//   response_queue = "https://sqs..."   # FUNCIE_REQUEST/RESPONSE_QUEUE_URL variables)
//   route = "/headers/x-dev=ada"        # the invocations this developer wants (a string, or
//                                       # up to 8 alternatives in an array): docs/routing.md
//
//   [functions.NAME]                    # NAME: 1 to 64 of [A-Za-z0-9._-]; at least one
//   app = "NAME"                        # default NAME; same rule; unique across functions
//   command = ["node", "index.mjs"]     # required; an array of strings, or a string run as
//                                       # ["/bin/sh", "-c", "exec " + STRING]
//   dir = "services/orders"             # working directory, relative to the file's directory
//                                       # (default: the file's directory); must exist
//   watch = ["src", "index.mjs"]        # paths relative to dir; each must exist
//   env = { TABLE = "orders-dev" }      # strings, integers and booleans (as text); keys as
//                                       # emulate::add_environment allows them
//
// Every function needs a command. Keys are
// read in the file's order, so the first problem reported is (nearly always) the first in
// the file; every message is "FILE:LINE:COLUMN: what is wrong; what to do". No message
// shows a backend URL: it may hold a password.
#include "project/project.hpp"

#include "emulate/config.hpp"
#include "tunnel/backend.hpp"
#include "tunnel/heartbeat_bounds.hpp"
#include "tunnel/secrets.hpp"

#include "tunnel/envelope.hpp"
#include "tunnel/route.hpp"

#include <fmt/format.h>

#include <cstdlib>

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

namespace funcie::project {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view file_name = "funcie.toml";

/// Keys allowed in a function only.
constexpr std::array<std::string_view, 5> function_only_keys = {"app", "command", "dir", "watch",
                                                                "env"};
/// All the keys of a level, for suggestions: the defaults are allowed in both.
constexpr std::array<std::string_view, 19> top_level_keys = {"backend",
                                                             "concurrency",
                                                             "hold",
                                                             "forward_credentials",
                                                             "heartbeat_ms",
                                                             "ca_file",
                                                             "tls_verify",
                                                             "request_queue",
                                                             "response_queue",
                                                             "secret_file",
                                                             "encrypt",
                                                             "route",
                                                             "functions",
                                                             "sqs_claim_ms",
                                                             "sqs_absent_ms",
                                                             "sqs_presence_ms",
                                                             "sqs_presence_idle_ms",
                                                             "sqs_receive_batch",
                                                             "sqs_max_message_bytes"};
constexpr std::array<std::string_view, 23> function_keys = {"app",
                                                            "command",
                                                            "dir",
                                                            "watch",
                                                            "env",
                                                            "backend",
                                                            "concurrency",
                                                            "hold",
                                                            "forward_credentials",
                                                            "heartbeat_ms",
                                                            "ca_file",
                                                            "tls_verify",
                                                            "request_queue",
                                                            "response_queue",
                                                            "secret_file",
                                                            "encrypt",
                                                            "route",
                                                            "sqs_claim_ms",
                                                            "sqs_absent_ms",
                                                            "sqs_presence_ms",
                                                            "sqs_presence_idle_ms",
                                                            "sqs_receive_batch",
                                                            "sqs_max_message_bytes"};

/// The file being read, for messages and relative paths.
struct source_file {
  std::string name;    ///< As given: errors name it so.
  fs::path directory;  ///< Absolute: relative paths in the file start here.
};

/// `path` made absolute (against the current directory) and lexically normal, without a
/// trailing separator.
fs::path normal(const fs::path& path) {
  std::error_code ec;
  fs::path full = fs::absolute(path, ec);
  if (ec) full = path;
  full = full.lexically_normal();
  if (full.has_relative_path() && !full.has_filename()) full = full.parent_path();
  return full;
}

/// `written` as given in the file, resolved against `base` unless it is absolute.
fs::path resolve(const fs::path& base, const std::string& written) {
  const fs::path path(written);
  return normal(path.is_absolute() ? path : base / path);
}

/// Text from the file, safe to print: control characters escaped, at most `max` bytes
/// (cut on a UTF-8 boundary). With `quotes`, also escapes '"' and '\' and adds quotes.
std::string printable(std::string_view text, std::size_t max = 64, bool quotes = false) {
  bool cut = false;
  if (text.size() > max) {
    std::size_t end = max;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    text = text.substr(0, end);
    cut = true;
  }
  std::string out = quotes ? "\"" : "";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7F) {
      out += fmt::format("\\x{:02x}", byte);
    } else if (quotes && (c == '"' || c == '\\')) {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  if (cut) out += "...";
  if (quotes) out += '"';
  return out;
}

/// A value as the message's "(got ...)" shows it: scalars as written, aggregates by kind.
std::string shown(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return printable(node.as_string()->get(), 40, true);
    case toml::node_type::integer:
      return std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point:
      return fmt::format("{}", node.as_floating_point()->get());
    case toml::node_type::boolean:
      return node.as_boolean()->get() ? "true" : "false";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string where(const source_file& file, const toml::source_region& region) {
  if (region.begin.line == 0) return file.name;
  return fmt::format("{}:{}:{}", file.name, region.begin.line, region.begin.column);
}

[[noreturn]] void fail(const source_file& file, const toml::source_region& region,
                       std::string_view message) {
  throw project_error(fmt::format("{}: {}", where(file, region), message));
}

/// The entries of `table` in the order the file has them (toml++ keeps them by name).
std::vector<std::pair<const toml::key*, const toml::node*>> in_file_order(
    const toml::table& table) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : table) entries.emplace_back(&key, &node);
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const auto& pa = a.first->source().begin;
    const auto& pb = b.first->source().begin;
    return std::tie(pa.line, pa.column) < std::tie(pb.line, pb.column);
  });
  return entries;
}

/// Optimal string alignment distance (edits, adjacent swaps), ignoring ASCII case.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

[[noreturn]] void unknown_key(const source_file& file, const toml::key& key,
                              std::span<const std::string_view> known, std::string_view place,
                              bool top_level) {
  const std::string_view name = key.str();
  if (top_level && std::find(function_only_keys.begin(), function_only_keys.end(), name) !=
                       function_only_keys.end()) {
    fail(file, key.source(),
         fmt::format("'{}' is a key of a function, not of the whole file: move it into a "
                     "[functions.NAME] table",
                     name));
  }
  std::string_view best;
  std::size_t best_distance = 3;
  if (name.size() <= 64) {
    for (auto candidate : known) {
      const auto distance = edit_distance(name, candidate);
      if (distance < best_distance) {
        best = candidate;
        best_distance = distance;
      }
    }
  }
  if (!best.empty()) {
    fail(file, key.source(),
         fmt::format("unknown key '{}' {}; did you mean '{}'?", printable(name), place, best));
  }
  std::string list;
  for (auto candidate : known) list += (list.empty() ? "" : ", ") + std::string(candidate);
  fail(file, key.source(),
       fmt::format("unknown key '{}' {}; remove it (the keys here are {})", printable(name), place,
                   list));
}

std::int64_t read_integer(const source_file& file, std::string_view key, const toml::node& node,
                          std::int64_t low, std::int64_t high) {
  const auto* value = node.as_integer();
  if (value == nullptr || value->get() < low || value->get() > high) {
    fail(
        file, node.source(),
        fmt::format("'{}' must be an integer from {} to {} (got {})", key, low, high, shown(node)));
  }
  return value->get();
}

bool read_bool(const source_file& file, std::string_view key, const toml::node& node) {
  const auto* value = node.as_boolean();
  if (value == nullptr) {
    fail(file, node.source(), fmt::format("'{}' must be true or false (got {})", key, shown(node)));
  }
  return value->get();
}

const std::string& read_string(const source_file& file, std::string_view key,
                               const toml::node& node, std::string_view expected) {
  const auto* value = node.as_string();
  if (value == nullptr) {
    fail(file, node.source(), fmt::format("'{}' must be {} (got {})", key, expected, shown(node)));
  }
  return value->get();
}

/// The broker URL. Checked here so the error has a line; never shown (it may hold a
/// password). The schemes are those tunnel::make_consumer_session knows.
std::string read_backend(const source_file& file, const toml::node& node) {
  constexpr std::string_view example = "e.g. backend = \"redis://localhost:6379\" or \"sqs://\"";
  const auto* value = node.as_string();
  if (value == nullptr) {
    fail(file, node.source(),
         fmt::format("'backend' must be a broker URL string, {} (got {})", example, shown(node)));
  }
  const std::string& url = value->get();
  if (url.empty()) {
    fail(file, node.source(),
         fmt::format("'backend' is empty: give the broker's URL, {}", example));
  }
  try {
    tunnel::check_backend_url(url);
  } catch (const tunnel::backend_config_error& error) {
    // Never holds the password.
    fail(file, node.source(), fmt::format("'backend': {}", error.what()));
  }
  return url;
}

enum class path_kind { any, directory, file };

/// Fails unless `resolved` exists (and is of `kind`); the message names the path as written
/// and as resolved.
void require_path(const source_file& file, const toml::node& node, std::string_view key,
                  const std::string& written, const fs::path& resolved, path_kind kind,
                  std::string_view base) {
  if (written.find('\0') != std::string::npos) {
    fail(file, node.source(),
         fmt::format("'{}' path '{}' holds a NUL character (\\u0000); remove it", key,
                     printable(written, 256)));
  }
  std::error_code ec;
  const auto status = fs::status(resolved, ec);
  const auto shown_path = [&] {
    return fmt::format("'{}' path '{}' (resolved to {})", key, printable(written, 256),
                       printable(resolved.string(), 512));
  };
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
    fail(
        file, node.source(),
        fmt::format("{} cannot be checked: {}; check its permissions", shown_path(), ec.message()));
  }
  if (!fs::exists(status)) {
    fail(file, node.source(),
         fmt::format("{} does not exist; create it or fix the path (relative to {})", shown_path(),
                     base));
  }
  if (kind == path_kind::directory && !fs::is_directory(status)) {
    fail(file, node.source(),
         fmt::format("{} is not a directory; give the function's working directory (relative "
                     "to {})",
                     shown_path(), base));
  }
  if (kind == path_kind::file && fs::is_directory(status)) {
    fail(file, node.source(),
         fmt::format("{} is a directory; give the PEM file of the CA to trust (relative to {})",
                     shown_path(), base));
  }
}

/// `route`: one route or an array of alternatives, each checked (docs/routing.md).
std::vector<std::string> read_routes(const source_file& file, const toml::node& node) {
  std::vector<const toml::node*> items;
  if (const auto* list = node.as_array()) {
    for (const auto& item : *list) items.push_back(&item);
  } else {
    items.push_back(&node);
  }
  if (items.empty() || items.size() > tunnel::max_routes_per_session) {
    fail(file, node.source(),
         fmt::format("'route' must be a route or an array of 1 to {} routes, e.g. "
                     "route = \"/headers/x-dev=ada\"",
                     tunnel::max_routes_per_session));
  }
  std::vector<std::string> routes;
  for (const auto* item : items) {
    const auto* text = item->as_string();
    if (text == nullptr) {
      fail(
          file, item->source(),
          "'route' must be a string (or an array of strings), e.g. route = \"/headers/x-dev=ada\"");
    }
    try {
      tunnel::parse_route(text->get());
    } catch (const tunnel::route_error& e) {
      fail(file, item->source(), fmt::format("route '{}': {}", text->get(), e.what()));
    }
    routes.push_back(text->get());
  }
  return routes;
}

/// Reads an SQS tunable (sqs_claim_ms, ...: a FUNCIE_SQS_* variable's key) into `spec`,
/// checked by the variable's one rule; false when `key` is not one of them.
bool read_sqs_key(const source_file& file, std::string_view key, const toml::node& node,
                  function_spec& spec) {
  for (const auto variable : tunnel::sqs_option_names()) {
    if (tunnel::sqs_option_key(variable) != key) continue;
    const auto* value = node.as_integer();
    try {
      if (value == nullptr) throw tunnel::backend_config_error("not a whole number");
      tunnel::set_sqs_option(spec.sqs, variable, std::to_string(value->get()));
    } catch (const tunnel::backend_config_error& e) {
      std::string message = e.what();
      if (message.starts_with(variable))
        message = std::string(key) + message.substr(variable.size());
      fail(file, node.source(), fmt::format("'{}': {}; fix it or remove it", key, message));
    }
    spec.sqs_given.insert(std::string(variable));
    return true;
  }
  return false;
}

/// Reads one of default_keys into `spec`; false when `key` is not one of them.
bool read_default(const source_file& file, std::string_view key, const toml::node& node,
                  function_spec& spec) {
  if (key == "backend") {
    spec.backend = read_backend(file, node);
  } else if (key == "concurrency") {
    spec.concurrency = static_cast<unsigned>(read_integer(file, key, node, 1, 1000));
  } else if (key == "hold") {
    spec.hold = read_bool(file, key, node);
  } else if (key == "forward_credentials") {
    spec.forward_credentials = read_bool(file, key, node);
  } else if (key == "heartbeat_ms") {
    spec.heartbeat = std::chrono::milliseconds(
        read_integer(file, key, node, tunnel::heartbeat_min_ms, tunnel::heartbeat_max_ms));
  } else if (key == "tls_verify") {
    spec.tls_verify = read_bool(file, key, node);
  } else if (key == "encrypt") {
    spec.encrypt = read_bool(file, key, node);
  } else if (key == "secret_file") {
    const auto& written = read_string(file, key, node, "the path of a secret file");
    if (written.empty()) {
      spec.secret_file.clear();  // FUNCIE_SECRET, overriding a top-level secret_file.
    } else {
      const auto resolved = resolve(file.directory, written);
      require_path(file, node, key, written, resolved, path_kind::file,
                   "the directory of " + std::string(file_name));
      spec.secret_file = resolved.string();
    }
  } else if (key == "request_queue" || key == "response_queue") {
    const auto& url = read_string(file, key, node, "a queue URL");
    if (!url.starts_with("https://") && !url.starts_with("http://")) {
      fail(file, node.source(),
           fmt::format("'{}' must be a queue URL, e.g. "
                       "\"https://sqs.eu-west-1.amazonaws.com/123456789012/funcie-requests\"",
                       key));
    }
    (key == "request_queue" ? spec.request_queue : spec.response_queue) = url;
  } else if (key == "route") {
    spec.routes = read_routes(file, node);
  } else if (key.starts_with("sqs_")) {
    return read_sqs_key(file, key, node, spec);
  } else if (key == "ca_file") {
    const auto& written = read_string(file, key, node, "the path of a PEM file");
    if (written.empty()) {
      spec.ca_file.clear();  // The system's CAs, overriding a top-level ca_file.
    } else {
      const auto resolved = resolve(file.directory, written);
      require_path(file, node, key, written, resolved, path_kind::file,
                   "the directory of " + std::string(file_name));
      spec.ca_file = resolved.string();
    }
  } else {
    return false;
  }
  return true;
}

std::string check_no_nul(const source_file& file, const toml::node& node, std::string_view what,
                         const std::string& text) {
  if (text.find('\0') != std::string::npos) {
    fail(file, node.source(), fmt::format("{} holds a NUL character (\\u0000); remove it", what));
  }
  return text;
}

std::vector<std::string> read_command(const source_file& file, const toml::node& node) {
  constexpr std::string_view example =
      "e.g. command = [\"node\", \"index.mjs\"] or \"./bootstrap\"";
  if (const auto* line = node.as_string()) {
    const auto& text = line->get();
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
      fail(file, node.source(),
           fmt::format("'command' is empty: give the program that runs the handler, {}", example));
    }
    return {"/bin/sh", "-c", "exec " + check_no_nul(file, node, "'command'", text)};
  }
  const auto* array = node.as_array();
  if (array == nullptr) {
    fail(file, node.source(),
         fmt::format("'command' must be an array of strings or a string, {} (got {})", example,
                     shown(node)));
  }
  if (array->empty()) {
    fail(file, node.source(),
         fmt::format("'command' is empty: give the program that runs the handler, {}", example));
  }
  std::vector<std::string> command;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const auto& element = *array->get(i);
    const auto* text = element.as_string();
    if (text == nullptr) {
      fail(file, element.source(),
           fmt::format("'command' must be an array of strings: element {} is {}; quote it", i + 1,
                       shown(element)));
    }
    command.push_back(check_no_nul(file, element, "'command'", text->get()));
  }
  if (command.front().empty()) {
    fail(file, array->get(0)->source(),
         fmt::format("'command' starts with an empty program name; {}", example));
  }
  return command;
}

std::vector<std::string> read_watch(const source_file& file, const toml::node& node,
                                    const fs::path& dir) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    fail(file, node.source(),
         fmt::format("'watch' must be an array of paths, e.g. watch = [\"src\"] (got {})",
                     shown(node)));
  }
  std::vector<std::string> watch;
  for (const auto& element : *array) {
    const auto* text = element.as_string();
    if (text == nullptr || text->get().empty()) {
      fail(file, element.source(),
           fmt::format("'watch' must be an array of paths, e.g. watch = [\"src\"] (got {} in it)",
                       shown(element)));
    }
    const auto resolved = resolve(dir, text->get());
    require_path(file, element, "watch", text->get(), resolved, path_kind::any,
                 "the function's dir");
    watch.push_back(resolved.string());
  }
  return watch;
}

std::map<std::string, std::string> read_env(const source_file& file, const toml::node& node) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    fail(file, node.source(),
         fmt::format("'env' must be a table, e.g. env = {{ TABLE = \"orders-dev\" }} (got {})",
                     shown(node)));
  }
  emulate::function_config checked;
  for (const auto& [key, value] : in_file_order(*table)) {
    const std::string name(key->str());
    std::string text;
    if (const auto* s = value->as_string()) {
      text = check_no_nul(file, *value, fmt::format("env value '{}'", printable(name)), s->get());
    } else if (const auto* i = value->as_integer()) {
      text = std::to_string(i->get());
    } else if (const auto* b = value->as_boolean()) {
      text = b->get() ? "true" : "false";
    } else {
      fail(file, value->source(),
           fmt::format("env value '{}' must be a string, an integer or a boolean (got {}); quote "
                       "it",
                       printable(name), shown(*value)));
    }
    if (name.find('=') != std::string::npos) {
      fail(file, key->source(),
           fmt::format("env key '{}' must start with a letter and hold only letters, digits and "
                       "'_'; rename it",
                       printable(name)));
    }
    try {
      emulate::add_environment(checked, name + "=" + text);
    } catch (const emulate::config_error& error) {
      // Its messages speak of the --env flag: "--env key 'X' is reserved ...".
      std::string_view message = error.what();
      if (message.starts_with("--")) message.remove_prefix(2);
      fail(file, key->source(), fmt::format("{}; rename or remove it", message));
    }
  }
  return checked.environment;
}

/// One [functions.NAME] table over the top-level defaults. `app_at` is where its app is
/// given (the table when it is not), for the duplicate check.
function_spec read_function(const source_file& file, const std::string& name,
                            const toml::table& table, const function_spec& defaults,
                            toml::source_region& app_at) {
  function_spec spec = defaults;
  spec.name = name;
  spec.app = name;
  app_at = table.source();

  // dir first: watch is relative to it, wherever it is in the table.
  fs::path dir = file.directory;
  if (const auto* node = table.get("dir")) {
    const auto& written = read_string(file, "dir", *node, "a directory path");
    if (written.empty()) {
      fail(file, node->source(),
           "'dir' is empty: give the function's working directory, or \".\" for the directory "
           "of " +
               std::string(file_name));
    }
    dir = resolve(file.directory, written);
    require_path(file, *node, "dir", written, dir, path_kind::directory,
                 "the directory of " + std::string(file_name));
  }
  spec.directory = dir.string();

  const std::string place = fmt::format("in [functions.{}]", name);
  for (const auto& [key, node] : in_file_order(table)) {
    const std::string_view k = key->str();
    if (k == "app") {
      spec.app =
          read_string(file, k, *node, "a string of 1 to 64 letters, digits, '.', '_' or '-'");
      if (!tunnel::is_valid_app(spec.app)) {
        fail(file, node->source(),
             fmt::format("'app' must be 1 to 64 letters, digits, '.', '_' or '-' (got {})",
                         shown(*node)));
      }
      app_at = node->source();
    } else if (k == "command") {
      spec.command = read_command(file, *node);
    } else if (k == "dir") {
      // Read above.
    } else if (k == "watch") {
      spec.watch = read_watch(file, *node, dir);
    } else if (k == "env") {
      spec.environment = read_env(file, *node);
    } else if (!read_default(file, k, *node, spec)) {
      unknown_key(file, *key, function_keys, place, false);
    }
  }

  // No backend in the file is allowed: a URL with a password belongs in FUNCIE_BACKEND or
  // --backend, not in a file under version control. funcie connect checks it is given.
  if (spec.command.empty()) {
    fail(file, table.source(),
         fmt::format("function '{}' has no command: add command = [\"PROGRAM\", \"ARG\", ...] "
                     "(what runs the handler, e.g. [\"./bootstrap\"]) to [functions.{}]",
                     name, name));
  }
  return spec;
}

}  // namespace

tunnel::backend_options unsealed_backend_options(const function_spec& spec) {
  tunnel::backend_options backend;
  backend.url = spec.backend;
  backend.app = spec.app;
  backend.timing.heartbeat = spec.heartbeat;
  backend.ca_file = spec.ca_file;
  backend.tls_verify = spec.tls_verify;
  backend.sqs.request_queue_url = spec.request_queue;
  backend.sqs.response_queue_url = spec.response_queue;
  backend.routes = spec.routes;
  backend.sqs_tuning = spec.sqs;
  return backend;
}

tunnel::backend_options backend_options_of(const function_spec& spec) {
  auto backend = unsealed_backend_options(spec);
  backend.keys = tunnel::load_keyring(spec.secret_file, spec.encrypt,
                                      [](const char* name) { return std::getenv(name); });
  return backend;
}

std::optional<std::string> find_project(const std::string& start) {
  fs::path dir = normal(start.empty() ? fs::path(".") : fs::path(start));
  for (;;) {
    const fs::path candidate = dir / file_name;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) return candidate.string();
    if (!dir.has_relative_path()) return std::nullopt;  // Tried the root.
    dir = dir.parent_path();
  }
}

project load_project(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    throw project_error(fmt::format(
        "{}: cannot read it: {}; check the path", path,
        ec ? ec.message() : std::make_error_code(std::errc::no_such_file_or_directory).message()));
  }
  if (!fs::is_regular_file(status)) {
    throw project_error(
        fmt::format("{}: not a regular file; give the path of a {} file", path, file_name));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw project_error(fmt::format("{}: cannot read it: {}; check its permissions", path,
                                    std::error_code(errno, std::generic_category()).message()));
  }
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) {
    throw project_error(fmt::format("{}: cannot read it (an I/O error); check the disk", path));
  }
  return parse_project(text, path);
}

project parse_project(const std::string& text, const std::string& path) {
  const fs::path full = normal(path);
  const source_file file{path, full.parent_path()};

  toml::table root;
  try {
    root = toml::parse(std::string_view(text), std::string_view(path));
  } catch (const toml::parse_error& error) {
    fail(file, error.source(),
         fmt::format("{}; fix the TOML there ({} is TOML 1.0: https://toml.io/en/v1.0.0)",
                     error.description(), file_name));
  }

  function_spec defaults;
  const toml::node* functions = nullptr;
  for (const auto& [key, node] : in_file_order(root)) {
    if (key->str() == "functions") {
      functions = node;
    } else if (!read_default(file, key->str(), *node, defaults)) {
      unknown_key(file, *key, top_level_keys, "at the top level", true);
    }
  }

  constexpr std::string_view no_functions = "no functions: add a [functions.NAME] table";
  if (functions == nullptr) throw project_error(fmt::format("{}: {}", path, no_functions));
  const auto* table = functions->as_table();
  if (table == nullptr) {
    fail(file, functions->source(),
         fmt::format("'functions' must be a table of functions (got {}): write each one as "
                     "[functions.NAME]",
                     shown(*functions)));
  }
  if (table->empty()) fail(file, table->source(), no_functions);

  project result;
  result.path = full.string();
  std::vector<toml::source_region> app_at;
  for (const auto& [key, node] : in_file_order(*table)) {
    const std::string name(key->str());
    if (!tunnel::is_valid_app(name)) {
      fail(file, key->source(),
           fmt::format("function name '{}' must be 1 to 64 letters, digits, '.', '_' or '-'; "
                       "rename it",
                       printable(name)));
    }
    const auto* function = node->as_table();
    if (function == nullptr) {
      fail(file, node->source(),
           fmt::format("'functions.{}' must be a table (got {}): write it as [functions.{}] "
                       "with a command",
                       name, shown(*node), name));
    }
    toml::source_region at;
    result.functions.push_back(read_function(file, name, *function, defaults, at));
    app_at.push_back(at);
  }

  for (std::size_t i = 1; i < result.functions.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      const auto& later = result.functions[i];
      const auto& earlier = result.functions[j];
      if (later.app != earlier.app) continue;
      fail(file, app_at[i],
           fmt::format("function '{}' uses app '{}' like function '{}' (line {}): they would "
                       "compete for the same requests; give one of them another app = \"...\"",
                       later.name, later.app, earlier.name, app_at[j].begin.line));
    }
  }
  return result;
}

}  // namespace funcie::project
