// funcie connect: joins one app's tunnel (a command after --) or every function of a
// funcie.toml project, and runs the invocations it receives in the developer's own runtimes
// on this machine. docs/local.md is the design and the manual.
#include "cli/command.hpp"
#include "cli/history_flags.hpp"
#include "cli/target_flags.hpp"
#include "console/console.hpp"
#include "consumer/served_function.hpp"
#include "emulate/config.hpp"
#include "project/project.hpp"
#include "tunnel/backend.hpp"
#include "tunnel/heartbeat_bounds.hpp"
#include "tunnel/route.hpp"
#include "ui/console_page.hpp"

#include <fmt/format.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>

namespace funcie::cli {

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

struct connect_options {
  target_flags target;  // --backend, --app, the queues, TLS, the secret, --config, --only
  // A flag not given leaves a function's own value: the same defaults as a spec's.
  unsigned concurrency = project::function_spec{}.concurrency;
  long heartbeat_ms = static_cast<long>(project::function_spec{}.heartbeat.count());
  std::vector<std::string> env_assignments;
  std::vector<std::string> watch;
  bool hold = false;
  bool verbose = false;
  bool report = false;
  bool forward_credentials = false;
  std::vector<std::string> routes;  // --route (repeatable: alternatives)
  std::vector<std::string> command;
  history_flags history;
  bool ui = false;
};

/// Which of connect's own options the user gave: those win over the project file.
struct given_options {
  bool concurrency, heartbeat, hold, forward_credentials;
};

std::string absolute_existing(const std::string& path, const char* what) {
  std::error_code ec;
  auto full = fs::absolute(path, ec);
  if (ec || !fs::exists(full, ec)) {
    throw usage_error(fmt::format("{}: '{}' does not exist", what, path));
  }
  return full.lexically_normal().string();
}

/// The checks every function gets, from the command line or from a project file.
void check_spec(const project::function_spec& spec) {
  if (spec.concurrency < 1 || spec.concurrency > 1000) {
    throw usage_error("--concurrency must be between 1 and 1000");
  }
  if (spec.heartbeat.count() < tunnel::heartbeat_min_ms ||
      spec.heartbeat.count() > tunnel::heartbeat_max_ms) {
    throw usage_error(fmt::format("--heartbeat-ms must be between {} and {} (default {})",
                                  tunnel::heartbeat_min_ms, tunnel::heartbeat_max_ms,
                                  tunnel::heartbeat_default_ms));
  }
  if (spec.routes.size() > tunnel::max_routes_per_session) {
    throw usage_error(fmt::format("at most {} --route flags (alternatives) per session",
                                  tunnel::max_routes_per_session));
  }
  for (const auto& text : spec.routes) {
    try {
      tunnel::parse_route(text);
    } catch (const tunnel::route_error& e) {
      throw usage_error(fmt::format("--route '{}': {}", text, e.what()));
    }
  }
  check_target(spec, process_getenv);  // broker, app, CA file, secret, URL and options
}

/// Where `program` (the runtime command's first word) would be found: a path with a '/' is
/// taken from `directory` (the runtime's working directory), a bare name from PATH. Empty
/// when it is not there or not executable.
std::string find_program(const std::string& program, const std::string& directory) {
  std::error_code ec;
  const auto executable = [&](const fs::path& p) {
    return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
  };
  if (program.find('/') != std::string::npos) {
    fs::path p(program);
    if (p.is_relative() && !directory.empty()) p = fs::path(directory) / p;
    return executable(p) ? p.string() : std::string();
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const auto colon = dirs.find(':');
    const std::string dir(dirs.substr(0, colon));
    const fs::path p = fs::path(dir.empty() ? "." : dir) / program;
    if (executable(p)) return p.string();
    if (colon == std::string_view::npos) return {};
    dirs.remove_prefix(colon + 1);
  }
}

/// The functions to serve: the one on the command line, or the project's.
std::vector<project::function_spec> specs_for(const connect_options& o, const given_options& g) {
  emulate::function_config env_check;
  for (const auto& assignment : o.env_assignments) {
    emulate::add_environment(env_check, assignment);
  }
  std::vector<std::string> watch;
  for (const auto& path : o.watch) watch.push_back(absolute_existing(path, "--watch"));

  std::optional<std::string> project_path;
  if (!o.command.empty()) {
    if (!o.target.config.empty() || !o.target.only.empty()) {
      throw usage_error("--config and --only read a project file: give them without a command");
    }
  } else {
    if (!o.target.app.empty()) {
      throw usage_error(
          "--app names the function of a command given after '--'; to serve some of a "
          "project's functions, use --only NAME");
    }
    std::error_code ec;
    project_path = o.target.config.empty() ? project::find_project(fs::current_path(ec).string())
                                           : std::optional<std::string>(o.target.config);
    if (!project_path) {
      throw usage_error(
          "no runtime command and no funcie.toml here or above: give the command after "
          "'--' (funcie connect --backend URL --app NAME -- ./bootstrap) or write a "
          "funcie.toml (docs/local.md)");
    }
  }
  // The target flags first (the one precedence: flag, project, FUNCIE_*), then connect's own.
  auto specs = resolve_targets(o.target, project_path, process_getenv);
  for (auto& spec : specs) {
    if (!o.command.empty()) spec.command = o.command;
    if (g.concurrency) spec.concurrency = o.concurrency;
    if (g.heartbeat) spec.heartbeat = milliseconds(o.heartbeat_ms);
    if (g.hold) spec.hold = o.hold;
    if (g.forward_credentials) spec.forward_credentials = o.forward_credentials;
    if (!o.routes.empty()) spec.routes = o.routes;
    for (const auto& [key, value] : env_check.environment) spec.environment[key] = value;
    spec.watch.insert(spec.watch.end(), watch.begin(), watch.end());
  }
  for (const auto& spec : specs) check_spec(spec);
  return specs;
}

/// The terminal funcie connect runs on. Single keys ('r' reloads) while it is in the
/// foreground: canonical mode and echo off, signals (Ctrl-C) kept. Everything is given back
/// as it was found, on every way out (restore() runs at the end of run_connect, before the
/// immediate exit of a second Ctrl-C, and in the destructor when an exception unwinds).
///
/// Keys are read from a descriptor of our own (/proc/self/fd/0 opened again), never from a
/// dup of stdin: a dup shares the open file description with the shell and with our own
/// stdout and stderr, and the O_NONBLOCK that an event loop sets on it would make the
/// console's writes fail short on a busy terminal, and stay set after exit.
class terminal {
 public:
  terminal(asio::io_context& io, std::function<void(char)> on_key, std::function<void()> on_gone) {
    for (int fd = 0; fd < 3; ++fd) status_flags_[fd] = ::fcntl(fd, F_GETFL);
    if (::isatty(STDIN_FILENO) == 0 || ::tcgetpgrp(STDIN_FILENO) != ::getpgrp()) return;
    const int fd = ::open("/proc/self/fd/0", O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return;
    if (::tcgetattr(fd, &saved_) != 0) {
      ::close(fd);
      return;
    }
    termios raw = saved_;
    raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (::tcsetattr(fd, TCSANOW, &raw) != 0) {
      ::close(fd);
      return;
    }
    raw_mode_ = raw;
    raw_ = true;
    input_ = std::make_shared<asio::posix::stream_descriptor>(io, fd);
    asio::co_spawn(
        io,
        [input = input_, on_key = std::move(on_key),
         on_gone = std::move(on_gone)]() -> asio::awaitable<void> {
          char buffer[64];
          for (;;) {
            std::size_t n = 0;
            try {
              n = co_await input->async_read_some(asio::buffer(buffer), asio::use_awaitable);
            } catch (const boost::system::system_error& e) {
              // End of file or EIO: the terminal hung up (its window closed). Closed by
              // restore(): nothing to do.
              if (e.code() != asio::error::operation_aborted && input->is_open()) on_gone();
              co_return;
            }
            for (std::size_t i = 0; i < n; ++i) on_key(buffer[i]);
          }
        },
        asio::detached);
  }
  ~terminal() { restore(); }
  terminal(const terminal&) = delete;
  terminal& operator=(const terminal&) = delete;

  /// Whether keys are read.
  bool active() const { return raw_; }

  /// After a stop (Ctrl-Z) and `fg`: the shell gave the terminal back in its own line mode
  /// (it restores its settings when a job stops), so single keys are set again, if funcie
  /// is in the terminal's foreground (`bg` leaves the terminal to the shell).
  void resumed() {
    if (!raw_ || !input_) return;
    const int fd = input_->native_handle();
    if (::tcgetpgrp(fd) != ::getpgrp()) return;
    ::tcsetattr(fd, TCSANOW, &raw_mode_);
  }

  void restore() {
    if (input_) {
      if (raw_) ::tcsetattr(input_->native_handle(), TCSANOW, &saved_);
      boost::system::error_code ignored;
      input_->close(ignored);
      input_.reset();
    }
    raw_ = false;
    // Nothing here changes them; a library or a runtime that did gets them back as found.
    for (int fd = 0; fd < 3; ++fd) {
      if (status_flags_[fd] >= 0 && ::fcntl(fd, F_GETFL) != status_flags_[fd]) {
        ::fcntl(fd, F_SETFL, status_flags_[fd]);
      }
    }
  }

 private:
  termios saved_{};
  termios raw_mode_{};
  bool raw_ = false;
  int status_flags_[3] = {-1, -1, -1};
  std::shared_ptr<asio::posix::stream_descriptor> input_;
};

/// funcie's log lines go through the console while funcie connect runs: written whole like
/// every other line, never dropped, above the status line (a held request's countdown).
class console_sink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit console_sink(console::console& out) : out_(out) { set_pattern_("%H:%M:%S.%e %-5l %v"); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t text;
    formatter_->format(msg, text);
    out_.print_to(stderr, std::string_view(text.data(), text.size()));
  }
  void flush_() override {}

 private:
  console::console& out_;
};

/// Puts the console's sink in place of the default logger's for its lifetime.
class logs_through {
 public:
  explicit logs_through(console::console& out) : logger_(spdlog::default_logger()) {
    saved_ = logger_->sinks();
    logger_->sinks() = {std::make_shared<console_sink>(out)};
  }
  ~logs_through() { logger_->sinks() = saved_; }
  logs_through(const logs_through&) = delete;
  logs_through& operator=(const logs_through&) = delete;

 private:
  std::shared_ptr<spdlog::logger> logger_;
  std::vector<spdlog::sink_ptr> saved_;
};

int run_connect(std::vector<project::function_spec> specs, bool verbose, bool report,
                std::shared_ptr<history::store> history, bool ui) {
  asio::io_context io;
  auto executor = io.get_executor();
  // The terminal is written without blocking the event loop: one that stops reading
  // (Ctrl-S, a pane in copy mode) holds back the runtimes' output, never the heartbeats.
  // Declared before the console, which writes through it until its destructor; its own
  // destructor writes what is left, waiting for the terminal.
  console::output_queue written(executor);
  console::console out(stderr, console::wants_colour(stderr), console::local_time_of_day,
                       console::wants_live(stderr));
  out.write_through(written);
  logs_through logs(out);
  const bool several = specs.size() > 1;

  for (const auto& spec : specs) {
    if (spec.forward_credentials) {
      out.warn(several ? spec.name : std::string(),
               "--forward-credentials: requests that carry the function's AWS credentials run "
               "as the function's role on this machine, with everything that role may do");
    }
  }

  // A runtime command that is not there (a typo, a binary not built yet) fails every
  // invocation with Runtime.InvalidEntrypoint: said now, not at the first invocation.
  for (const auto& spec : specs) {
    if (spec.command.empty() || !find_program(spec.command.front(), spec.directory).empty()) {
      continue;
    }
    const auto& program = spec.command.front();
    out.warn(several ? spec.name : std::string(),
             program.find('/') != std::string::npos
                 ? fmt::format("the runtime command '{}' is not an executable file{}: each "
                               "invocation fails (Runtime.InvalidEntrypoint) until it is",
                               program,
                               spec.directory.empty() ? std::string()
                                                      : fmt::format(" in {}", spec.directory))
                 : fmt::format("the runtime command '{}' is not found on PATH: each invocation "
                               "fails (Runtime.InvalidEntrypoint) until it is; check the "
                               "command after '--'",
                               program));
  }

  // One writer (a thread of its own) for every function served.
  const auto record = recorder_for(history, [&out](const std::string& why) { out.warn({}, why); });
  std::vector<std::unique_ptr<consumer::served_function>> served;
  // --ui: the page (docs/console.md), its Replay running the same commands.
  std::unique_ptr<ui::console_page> page;
  if (ui) {
    ui::page_options p;
    p.store = history;
    p.functions = specs;
    p.fixtures_dir = ui::fixtures_dir_here();
    p.output = [&out](const std::string& app, int stream, std::string_view line) {
      out.handler_output(fmt::format("[{} replay]", app), line, stream == 2);
    };
    page = std::make_unique<ui::console_page>(executor, std::move(p));
    out.print_to(stdout, fmt::format("console {}\n", page->url()));
  }
  auto reload_all = [&](const std::string& why) {
    for (auto& f : served) f->reload(why);
  };
  int exit_code = exit_ok;
  bool leaving = false;
  auto leave = [&](std::string_view why) {
    if (leaving) return;
    leaving = true;
    out.status({});
    out.info({}, fmt::format("{}: leaving the tunnel and stopping the runtimes", why));
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          if (page) co_await page->stop();
          for (auto& f : served) co_await f->stop();
          // What the runtimes printed is shown before funcie ends (a second Ctrl-C does not
          // wait for a terminal that stopped reading).
          co_await out.drained();
          io.stop();
        },
        asio::detached);
  };
  // A terminal that goes away (its window closed, the ssh connection cut) takes the
  // developer with it: leave, as on Ctrl-C, rather than run on unseen and keep taking
  // invocations. The kernel's SIGHUP says so first; a read or a write that fails says it
  // when no SIGHUP came (funcie connect is not in the terminal's foreground).
  out.on_output_gone([&] { leave("the output is gone (terminal closed)"); });
  terminal term(
      io,
      [&](char key) {
        if (key == 'r' || key == 'R') reload_all("r pressed");
      },
      [&] { leave("the terminal closed"); });
  const std::string controls =
      term.active()
          ? fmt::format("r reloads, Ctrl-C leaves (pid {}; kill -USR1 reloads too)", ::getpid())
          : fmt::format("kill -USR1 {0} reloads, Ctrl-C or kill {0} leaves (pid {0})", ::getpid());

  for (auto& spec : specs) {
    consumer::served_options options;
    options.out = &out;
    options.show_name = several;
    options.verbose = verbose;
    options.report = report || verbose;
    const auto url = tunnel::redact_url(spec.backend);
    options.on_session = [&out, app = spec.app, url](const std::string& session, bool first) {
      // The first line of the start block (on stdout: scripts wait for it there).
      out.print_to(stdout,
                   fmt::format("{} app {} {} {} (session {})\n", first ? "serving" : "reconnected",
                               app, first ? "through" : "to", console::shorten_middle(url, 48),
                               session.substr(0, 8)));
    };
    options.controls = controls;
    options.record = record;
    options.spec = std::move(spec);
    served.push_back(std::make_unique<consumer::served_function>(executor, std::move(options)));
  }

  // Ctrl-C is handled before anything starts; a second one exits at once. SIGHUP (the
  // terminal closed) leaves as Ctrl-C does; SIGUSR1 reloads.
  // Under nohup (SIGHUP ignored from the start) a hangup is left ignored. SIGCONT (`fg`
  // after Ctrl-Z) sets the terminal's single keys again.
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGUSR1);
  signals.add(SIGCONT);
  struct sigaction hangup {};
  if (::sigaction(SIGHUP, nullptr, &hangup) != 0 || hangup.sa_handler != SIG_IGN) {
    signals.add(SIGHUP);
  }
  std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec,
                                                                      int sig) {
    if (ec) return;
    signals.async_wait(on_signal);
    if (sig == SIGUSR1) {
      if (!leaving) reload_all("SIGUSR1");
      return;
    }
    if (sig == SIGCONT) {
      if (!leaving) term.resumed();
      return;
    }
    if (leaving) {
      if (sig == SIGHUP) return;  // already leaving; a hangup is no reason to hurry
      term.restore();
      fmt::print(stderr, "funcie connect: interrupted again; exiting at once\n");
      std::fflush(stderr);
      std::_Exit(128 + sig);
    }
    leave(sig == SIGINT   ? "interrupted"
          : sig == SIGHUP ? "hangup (the terminal closed)"
                          : "terminated");
  };
  signals.async_wait(on_signal);

  for (auto& f : served) {
    asio::co_spawn(io, f->run(), [&, name = f->spec().name](std::exception_ptr e) {
      if (!e) return;  // stopped: leave() finishes the work
      try {
        std::rethrow_exception(e);
      } catch (const tunnel::backend_config_error& error) {
        out.print_to(stderr, fmt::format("funcie connect: {}: {}\n", name, error.what()));
        exit_code = exit_usage;
      } catch (const std::exception& error) {
        out.print_to(stderr, fmt::format("funcie connect: {}: {}\n", name, error.what()));
        exit_code = exit_failure;
      }
      leave("could not serve");
    });
  }

  io.run();
  term.restore();
  return exit_code;
}

/// --history, --no-history and --ui (docs/console.md): opens the history, then serves.
int run_with_history(std::vector<project::function_spec> specs, const connect_options& o) {
  auto usage = [](const std::exception& e) {
    fmt::print(stderr, "funcie connect: {}\n", e.what());
    return exit_usage;
  };
  if (o.ui && o.history.off) {
    return usage(std::invalid_argument("--ui shows the history: not with --no-history"));
  }
  std::shared_ptr<history::store> history;
  try {
    history = open_history(o.history);
  } catch (const std::invalid_argument& e) {
    return usage(e);
  } catch (const history::history_error& e) {
    if (o.ui) return usage(e);
    fmt::print(stderr, "funcie connect: {}; serving without a history\n", e.what());
  }
  return run_connect(std::move(specs), o.verbose, o.report, std::move(history), o.ui);
}

}  // namespace

command add_connect(CLI::App& app) {
  auto o = std::make_shared<connect_options>();
  auto* sub = app.add_subcommand(
      "connect",
      "Joins an app's tunnel and runs the invocations forwarded from the cloud in CMD, the "
      "function's runtime on this machine, through a local Lambda Runtime API. Without CMD, "
      "serves every function of funcie.toml");
  target_help help;
  help.app = "With a command: the app (tunnel) name the function forwards to (default: FUNCIE_APP)";
  help.config = "Without a command: the project file (default: funcie.toml here or above)";
  help.only = "Serve only this function of the project (repeatable)";
  add_target_flags(sub, o->target, help);
  auto* concurrency =
      sub->add_option("--concurrency", o->concurrency,
                      "Execution environments at most, each its own CMD process (1-1000)")
          ->capture_default_str();
  auto* heartbeat =
      sub->add_option("--heartbeat-ms", o->heartbeat_ms,
                      "Within this bound a vanished consumer has what it holds failed (ms)")
          ->capture_default_str();
  sub->add_option("--env", o->env_assignments, "KEY=VALUE for the runtime's environment")
      ->allow_extra_args(false);
  sub->add_option("--watch", o->watch,
                  "Restart the runtimes when a file under PATH changes (repeatable)")
      ->allow_extra_args(false);
  auto* hold = sub->add_flag(
      "--hold", o->hold,
      "A failed or crashed invocation waits for a reload and runs again, until it succeeds or "
      "its deadline nears");
  sub->add_flag("--verbose,-v", o->verbose,
                "Show each event and response, pretty-printed, and the --report figures");
  sub->add_flag("--report", o->report,
                "Show Lambda's REPORT figures under each invocation: duration, billed duration, "
                "memory size, the runtime's peak memory, init duration after a cold start");
  auto* forward =
      sub->add_flag("--forward-credentials", o->forward_credentials,
                    "Give the handler the function's AWS credentials when the function sends them "
                    "(FUNCIE_FORWARD_CREDENTIALS=1 in the function)");
  sub->add_option("--route", o->routes,
                  "The invocations this session wants, e.g. '/headers/x-dev=ada' (repeatable: "
                  "alternatives; docs/routing.md)")
      ->allow_extra_args(false);
  sub->add_option("command", o->command, "The runtime command, after --");
  add_history_flags(sub, o->history);
  sub->add_flag("--ui", o->ui,
                "Serve the console page on 127.0.0.1 too (funcie ui): its URL is printed");

  return {sub, [=]() -> int {
            return run_guarded("connect", [&]() -> int {
              given_options g{concurrency->count() > 0, heartbeat->count() > 0, hold->count() > 0,
                              forward->count() > 0};
              // A bad flag, project file, backend URL or environment: one line, exit 2.
              auto usage = [](const std::exception& e) {
                fmt::print(stderr, "funcie connect: {}\n", e.what());
                return exit_usage;
              };
              std::vector<project::function_spec> specs;
              try {
                specs = specs_for(*o, g);
              } catch (const util::user_error& e) {
                return usage(e);
              }
              return run_with_history(std::move(specs), *o);
            });
          }};
}

}  // namespace funcie::cli
