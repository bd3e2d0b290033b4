// What every funcie executable shares: the developer's `funcie` (src/cli/main.cpp) and the
// cloud's `funcie-cloud` (src/cloud/main.cpp), which carries only wrap and proxy.
#include "cli/command.hpp"

#include "console/console.hpp"
#include "runtime_api/protocol.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::cli {

int run_guarded(const char* name, const std::function<int()>& body) {
  try {
    return body();
  } catch (const util::user_error& e) {
    fmt::print(stderr, "funcie {}: {}\n", name, e.what());
    return exit_usage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "funcie {}: {}\n", name, e.what());
    return exit_failure;
  }
}

std::optional<std::string> lambda_runtime_api(const char* name) {
  const char* api = std::getenv(std::string(runtime_api::runtime_api_env).c_str());
  if (api != nullptr && *api != '\0') return std::string(api);
  fmt::print(stderr, "funcie {} runs inside Lambda (or funcie emulate): {} is not set\n", name,
             runtime_api::runtime_api_env);
  return std::nullopt;
}

namespace {

std::string_view base_name(const char* path) {
  const std::string_view name(path);
  return name.substr(name.rfind('/') + 1);
}

// Deployed as a function's `bootstrap` (the binary renamed, as Lambda's custom runtimes
// name their entry point), funcie with no arguments is `funcie proxy`.
bool runs_as_bootstrap(int argc, const char* const* argv) {
  return argc == 1 && argv[0] != nullptr && base_name(argv[0]) == "bootstrap";
}

// Deployed as /opt/funcie-wrapper (the layer of `funcie package --layer`), funcie is
// `funcie wrap -- ARGS`: a managed runtime's bootstrap runs AWS_LAMBDA_EXEC_WRAPPER with its
// own command line as the arguments.
bool runs_as_wrapper(int argc, const char* const* argv) {
  return argc >= 1 && argv[0] != nullptr && base_name(argv[0]) == "funcie-wrapper";
}

// The first word that is not an option of funcie itself: what the user meant as the command
// (--log-level takes a value).
std::optional<std::string_view> first_word(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg == "--log-level") {
      ++i;
      continue;
    }
    if (arg == "--") return std::nullopt;
    if (!arg.starts_with('-')) return arg;
  }
  return std::nullopt;
}

// Edits (insert, delete, replace, swap of neighbours) from a to b: for "did you mean".
std::size_t edits(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// `funcie conect`: CLI11 would say only "A subcommand is required". Names the word, the
// nearest command if one is close, and the commands there are.
std::optional<std::string> unknown_command(const CLI::App& app, int argc, const char* const* argv) {
  const auto word = first_word(argc, argv);
  if (!word) return std::nullopt;
  std::string names;
  std::string nearest;
  std::size_t best = 3;  // at most 2 edits away
  for (const auto* sub : app.get_subcommands({})) {
    if (sub->get_name() == *word) return std::nullopt;
    names += names.empty() ? sub->get_name() : ", " + sub->get_name();
    const auto e = edits(*word, sub->get_name());
    if (e < best) {
      best = e;
      nearest = sub->get_name();
    }
  }
  return fmt::format(
      "funcie: unknown command '{}'{}; the commands are {} (funcie --help "
      "says what each does)",
      *word, nearest.empty() ? "" : fmt::format(" (did you mean '{}'?)", nearest), names);
}

void setup_logging(const std::string& level) {
  // Colours as the console has them: only on a terminal, never with NO_COLOR.
  auto logger = spdlog::stderr_color_mt("funcie", funcie::console::wants_colour(stderr)
                                                      ? spdlog::color_mode::always
                                                      : spdlog::color_mode::never);
  logger->set_pattern("%^%H:%M:%S.%e %-5l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

// CLI11 says "Could not convert: --port = abc": say what the flag wants, and where to read
// more, as every other usage error does.
std::string conversion_message(const CLI::App& app, const std::string& said) {
  constexpr std::string_view lead = "Could not convert: ";
  const auto eq = said.find(" = ");
  if (said.rfind(lead, 0) != 0 || eq == std::string::npos) return said;
  const std::string name = said.substr(lead.size(), eq - lead.size());
  const std::string value = said.substr(eq + 3);
  const CLI::Option* option = nullptr;
  std::string where = "funcie";
  for (const auto* sub : app.get_subcommands()) {  // the one parsed
    option = sub->get_option_no_throw(name);
    if (option != nullptr) {
      where += " " + sub->get_name();
      break;
    }
  }
  if (option == nullptr) option = app.get_option_no_throw(name);
  if (option == nullptr) return said;
  const std::string type = option->get_type_name();
  const std::string wanted = type.find("UINT") != std::string::npos    ? "a whole number, 0 or more"
                             : type.find("INT") != std::string::npos   ? "a whole number"
                             : type.find("FLOAT") != std::string::npos ? "a number"
                                                                       : "a value of type " + type;
  std::string text = fmt::format("{}: '{}' is not {}.", name, value, wanted);
  if (!option->get_description().empty()) text += " " + option->get_description() + ".";
  return text + fmt::format(" See '{} --help'.", where);
}

}  // namespace

int run_main(int argc, char** argv, const char* description,
             std::span<const command_factory> factories) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{description};
  app.require_subcommand(1);
  app.fallthrough();  // --log-level after the subcommand too
  app.set_version_flag("--version", "funcie 0.1.0");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  std::vector<command> commands;
  for (const auto& add : factories) commands.push_back(add(app));
  // After the subcommands, which would inherit it.
  app.footer(
      "Named `bootstrap` and run with no arguments (a custom runtime's entry point in a Lambda "
      "function's zip), funcie runs `funcie proxy`. Named `funcie-wrapper` (the layer's "
      "/opt/funcie-wrapper, AWS_LAMBDA_EXEC_WRAPPER), it runs `funcie wrap -- ARGS`.");
  const char* const as_proxy[] = {argv[0], "proxy", nullptr};
  const char* const* args = argv;
  if (runs_as_bootstrap(argc, args)) {
    argc = 2;
    args = as_proxy;
  }
  std::vector<const char*> as_wrap;
  if (runs_as_wrapper(argc, args)) {
    as_wrap = {argv[0], "wrap", "--"};
    as_wrap.insert(as_wrap.end(), argv + 1, argv + argc);
    as_wrap.push_back(nullptr);
    argc = static_cast<int>(as_wrap.size()) - 1;
    args = as_wrap.data();
  }
  if (const auto unknown = unknown_command(app, argc, args)) {
    fmt::print(stderr, "{}\n", *unknown);
    return exit_usage;
  }
  try {
    app.parse(argc, args);
  } catch (const CLI::ConversionError& e) {
    fmt::print(stderr, "{}\n", conversion_message(app, e.what()));
    return exit_usage;
  } catch (const CLI::ParseError& e) {
    // --help and --version print and exit 0; every other parse error (an unknown option, a
    // bad value) is the user's to fix: CLI11's message, then exit 2 as for any usage error.
    return app.exit(e) == 0 ? exit_ok : exit_usage;
  }
  setup_logging(log_level);
  for (const auto& c : commands) {
    if (c.app->parsed()) return c.run();
  }
  return exit_usage;
}

}  // namespace funcie::cli
