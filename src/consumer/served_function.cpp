#include "consumer/served_function.hpp"

#include "console/trigger.hpp"
#include "consumer/watcher.hpp"
#include "tunnel/secrets.hpp"
#include "util/clock.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <vector>

#include <unistd.h>

namespace funcie::consumer {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

/// Debounce of --watch: the last event of a burst (a build, a git checkout) counts.
constexpr milliseconds watch_debounce{200};

/// When the forwarder stops waiting (Unix ms): its own figure, else the deadline minus its
/// default margin; 0 when the request carries neither.
std::int64_t forwarder_limit_ms(const tunnel::request& req) {
  if (req.answer_by_ms != 0) return req.answer_by_ms;
  if (req.context.deadline_ms != 0) return req.context.deadline_ms - 500;
  return 0;
}

bool is_success(const runtime_api::result& r) {
  return r.outcome == runtime_api::result::kind::success;
}

std::string seconds_text(std::int64_t ms) {
  return fmt::format("{:.1f} s", static_cast<double>(ms) / 1000.0);
}

/// "src/app.js changed", "src/app.js and 2 more changed": files that still exist first (an
/// editor's temporary files are gone by now), relative to the working directory when under it.
std::string describe_change(const std::vector<std::string>& changed) {
  namespace fs = std::filesystem;
  std::vector<std::string> shown;
  std::error_code ec;
  const auto here = fs::current_path(ec);
  for (const auto& path : changed) {
    if (!fs::exists(path, ec)) continue;
    auto relative = fs::path(path).lexically_relative(here);
    shown.push_back(!relative.empty() && *relative.begin() != ".." ? relative.string() : path);
  }
  if (shown.empty()) shown = changed;
  if (shown.size() == 1) return shown.front() + " changed";
  return fmt::format("{} and {} more changed", shown.front(), shown.size() - 1);
}

}  // namespace

/// Which invocation each environment runs (its last one), and how many lines each has
/// printed: the handler's lines carry the request id, and an invocation's line waits until
/// its environment's output has been read.
struct environments_seen {
  struct seen {
    std::string request_id;
    std::uint64_t lines = 0;
    /// Timers of output_settled waiting on this environment: cancelled when it takes its
    /// next invocation, since what it prints from then on is labelled with the next one.
    std::vector<asio::steady_timer*> settling;
  };
  std::map<unsigned, seen> by_index;
  std::map<std::string, unsigned, std::less<>> index_of;  // request id -> environment
  /// With a history: each running invocation's lines so far (request id -> text).
  bool keep_logs = false;
  std::map<std::string, std::string, std::less<>> logs;
};

/// The most of an invocation's lines the history keeps.
constexpr std::size_t max_recorded_logs = 1024 * 1024;

/// A held request: its id and when the forwarder stops waiting (Unix ms).
struct held {
  std::string request_id;
  std::int64_t until_ms = 0;
};

struct served_function::state {
  asio::any_io_executor executor;
  served_options options;
  std::shared_ptr<environments_seen> seen = std::make_shared<environments_seen>();
  runtime_pool pool;
  std::unique_ptr<consumer> tunnel_consumer;
  std::unique_ptr<watcher> file_watcher;
  std::uint64_t generation = 0;
  // Timers of held requests, in their coroutines' frames.
  std::map<asio::steady_timer*, held> holds;
  bool countdown_running = false;
  bool stopping = false;
  // Console lines waiting for their invocation's output to settle; stop() lets them print,
  // waiting on `lines_printed`, which the last of them cancels.
  int pending_lines = 0;
  asio::steady_timer lines_printed{executor};
  bool warned_credentials = false;
  std::string session;       // the tunnel session, for the history
  std::string secret_state;  // the start block's "secret" line
  bool secret_missing = false;

  state(asio::any_io_executor ex, served_options o)
      : executor(ex), options(std::move(o)), pool(ex, pool_options_for(options, seen)) {
    seen->keep_logs = static_cast<bool>(options.record);
  }

  static runtime_pool_options pool_options_for(const served_options& o,
                                               std::shared_ptr<environments_seen> seen) {
    runtime_pool_options p;
    p.command = o.spec.command;
    p.concurrency = o.spec.concurrency;
    p.app = o.spec.app;
    p.environment = o.spec.environment;
    p.working_directory = o.spec.directory;
    p.forward_credentials = o.spec.forward_credentials;
    p.output = [out = o.out, name = o.spec.name, seen](unsigned environment, int stream,
                                                       std::string_view text) {
      auto& env = seen->by_index[environment];
      ++env.lines;
      const std::string prefix =
          env.request_id.empty()
              ? fmt::format("[{}#{}]", name, environment + 1)
              : fmt::format("[{}#{} {}]", name, environment + 1, env.request_id.substr(0, 8));
      out->handler_output(prefix, text, stream == 2);
      if (seen->keep_logs && !env.request_id.empty()) {
        if (auto log = seen->logs.find(env.request_id); log != seen->logs.end()) {
          if (log->second.size() < max_recorded_logs) {
            log->second.append(text.substr(0, max_recorded_logs - log->second.size()));
            log->second += log->second.size() < max_recorded_logs ? "\n" : "\n[cut at 1 MB]\n";
          }
        }
      }
    };
    if (o.out != nullptr) p.output_room = [out = o.out]() { return out->room(); };
    p.on_invoke = [seen](unsigned environment, std::string_view request_id) {
      auto& env = seen->by_index[environment];
      // The previous invocation's line is printed now, before the next one's output.
      for (auto* timer : env.settling) timer->cancel();
      if (!env.request_id.empty()) seen->index_of.erase(env.request_id);
      env.request_id = std::string(request_id);
      seen->index_of[env.request_id] = environment;
      if (seen->keep_logs) seen->logs.try_emplace(env.request_id);
    };
    return p;
  }

  /// Returns once the output of the environment that ran `request_id` has been read: no
  /// new line for 50 ms while its pipes may be read. What a runtime printed before it
  /// answered is in its pipe when the answer arrives (or, for Node, whose stdout on a pipe is
  /// asynchronous, still in the runtime's own buffer, written as the pipe takes it), but the
  /// event loop may see the answer first. 3 ms and then 15 ms were too short on two busy cores
  /// (the Node runtime paused 15 ms mid-output under ASan in CI). While the terminal is behind,
  /// the pipes are not read (backpressure): that is no quiet and does not count, so the wait
  /// goes on until the console has room again. A runtime that prints without end while the
  /// terminal keeps up gets its line after 5 s of it. Only the console line and the history
  /// wait for this; the answer went back already.
  /// The wait also ends when the environment takes its next invocation (back-to-back
  /// invocations) and nothing more was read since the wait began: each line then comes
  /// right after its own invocation's output, in order, not once the runtime falls quiet
  /// (which, invoked in a loop, it may not for seconds).
  asio::awaitable<void> output_settled(const std::string& request_id) {
    const auto found = seen->index_of.find(request_id);
    if (found == seen->index_of.end()) co_return;
    const unsigned index = found->second;
    asio::steady_timer timer(executor);
    auto& env = seen->by_index[index];
    env.settling.push_back(&timer);
    struct unlisted {
      std::vector<asio::steady_timer*>& list;
      asio::steady_timer* timer;
      ~unlisted() { std::erase(list, timer); }
    } listed{env.settling, &timer};
    constexpr auto quiet = milliseconds(50);
    // Once leaving, the runtime is being stopped: what it printed is read, so no more wait.
    for (int busy = 0; busy < 100 && !stopping;) {
      co_await out().room();
      const auto before = env.lines;
      timer.expires_after(quiet);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (out().behind()) continue;
      // Quiet for 50 ms, or moved on (the timer was cancelled) with nothing new read
      // meanwhile: all it printed is shown. A runtime whose output still flows (it answered
      // before its stdout drained) waits for quiet as before.
      if (env.lines == before) break;
      ++busy;
    }
  }

  console::console& out() { return *options.out; }
  std::string label() const { return options.show_name ? options.spec.name : std::string(); }

  std::string reload_hint() const {
    std::vector<std::string> ways;
    if (!options.spec.watch.empty()) ways.emplace_back("save a watched file");
    ways.emplace_back("press r");
    ways.emplace_back(fmt::format("kill -USR1 {}", ::getpid()));
    std::string text;
    for (std::size_t i = 0; i < ways.size(); ++i) {
      if (i != 0) text += i + 1 == ways.size() ? " or " : ", ";
      text += ways[i];
    }
    return text;
  }

  console::invocation_line make_line(const tunnel::request& req, const console::trigger& what,
                                     milliseconds took, const runtime_api::result& result,
                                     console::outcome kind, std::string note) const {
    console::invocation_line l;
    l.function = label();
    l.request_id = req.context.request_id;
    l.what = what;
    l.took = took;
    l.result = kind;
    if (is_success(result)) {
      l.status = console::response_status(result.body);
    } else {
      auto summary = console::summarize_error(result.body);
      l.error_type = result.error_type.empty() ? summary.type : result.error_type;
      if (l.error_type.empty()) l.error_type = "Unhandled";
      l.error_message = summary.message;
      l.trace = console::error_trace(result.body);
    }
    l.note = std::move(note);
    return l;
  }

  /// The history's row for a finished invocation, without its lines (taken once the
  /// output settled: take_logs).
  std::optional<history::entry> make_entry(const tunnel::request& req, const console::trigger& what,
                                           std::chrono::microseconds elapsed,
                                           const runtime_api::result& result,
                                           console::outcome kind) const {
    if (!options.record) return std::nullopt;
    history::entry e;
    e.app = options.spec.app;
    e.request_id = req.context.request_id;
    e.trigger = what.detail.empty() ? what.source : what.source + " " + what.detail;
    e.received_ms = util::unix_ms_now() - elapsed.count() / 1000;
    e.duration_us = elapsed.count();
    e.outcome = kind == console::outcome::ok        ? "ok"
                : kind == console::outcome::timeout ? "timeout"
                                                    : "error";
    const auto line =
        make_line(req, what, std::chrono::duration_cast<milliseconds>(elapsed), result, kind, {});
    if (line.status != 0) e.status = std::to_string(line.status);
    e.error_type = line.error_type;
    e.error_message = line.error_message;
    e.event = req.payload;
    e.response = result.body;
    e.session = session;
    if (const auto env = seen->index_of.find(e.request_id); env != seen->index_of.end()) {
      e.environment = fmt::format("{}#{}", options.spec.name, env->second + 1);
      if (const auto figures = pool.report_of(env->second)) e.cold = figures->init.count() > 0;
    }
    return e;
  }

  /// Adds the invocation's lines and writes the row.
  void record(history::entry e) {
    if (auto log = seen->logs.find(e.request_id); log != seen->logs.end()) {
      e.logs = std::move(log->second);
      seen->logs.erase(log);
    }
    options.record(std::move(e));
  }

  void line(const tunnel::request& req, const console::trigger& what, milliseconds took,
            const runtime_api::result& result, console::outcome kind, std::string note) {
    out().invocation(make_line(req, what, took, result, kind, std::move(note)));
  }

  /// One warning while an invocation runs, when a quarter of its time is left (at most
  /// 5 s, at least 1 s before the forwarder's limit): a paused debugger is about to lose it.
  std::shared_ptr<asio::steady_timer> arm_deadline_warning(const tunnel::request& req) {
    const auto limit = forwarder_limit_ms(req);
    const auto left = limit - util::unix_ms_now();
    if (limit == 0 || left <= 1000) return nullptr;
    const auto ahead = std::clamp<std::int64_t>(left / 4, 1000, 5000);
    auto timer = std::make_shared<asio::steady_timer>(executor, milliseconds(left - ahead));
    timer->async_wait([this, id = req.context.request_id, limit](boost::system::error_code ec) {
      if (ec || stopping) return;
      out().warn(label(),
                 fmt::format("{} still running, {} before the cloud stops waiting for it: a "
                             "handler paused in a debugger will be answered Funcie.Timeout "
                             "(raise the function's timeout while debugging)",
                             id.substr(0, 8), seconds_text(limit - util::unix_ms_now())));
    });
    return timer;
  }
};

namespace {

using state_ptr = std::shared_ptr<served_function::state>;

/// On a live terminal: the status line says which requests are held and the seconds left
/// to each, or nothing when none is.
void show_holds(const state_ptr& s) {
  if (!s->out().live()) return;
  if (s->holds.empty() || s->stopping) {
    s->out().status({});
    return;
  }
  std::string text = "held";
  for (const auto& [timer, h] : s->holds) {
    const auto left = std::max<std::int64_t>(0, h.until_ms - util::unix_ms_now());
    text += fmt::format(" {} {} s left,", h.request_id.substr(0, 8), (left + 999) / 1000);
  }
  text.back() = ':';
  s->out().status(text + " " + s->reload_hint() + " to run it again");
}

/// While requests are held, on a live terminal: their seconds count down in the status line.
void start_countdown(const state_ptr& s) {
  show_holds(s);
  if (s->countdown_running || !s->out().live()) return;
  s->countdown_running = true;
  asio::co_spawn(
      s->executor,
      [s]() -> asio::awaitable<void> {
        asio::steady_timer tick(s->executor);
        while (!s->holds.empty() && !s->stopping) {
          tick.expires_after(std::chrono::seconds(1));
          boost::system::error_code ec;
          co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          show_holds(s);
        }
        s->countdown_running = false;
      },
      asio::detached);
}

/// The peak resident memory of process `pid` (VmHWM), in MB rounded up; none when gone.
std::optional<unsigned> peak_memory_mb(int pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (!line.starts_with("VmHWM:")) continue;
    const unsigned long kb = std::strtoul(line.c_str() + 6, nullptr, 10);
    return static_cast<unsigned>((kb + 1023) / 1024);
  }
  return std::nullopt;
}

void finish_line(const state_ptr& s, const tunnel::request& req, const console::trigger& what,
                 std::chrono::microseconds elapsed, const runtime_api::result& result,
                 console::outcome kind) {
  // What is printed is made now (the request and the result may be megabytes; they are not
  // kept; the runtime's peak memory is read while it runs), and printed once the handler's
  // output is read.
  const auto took = std::chrono::duration_cast<milliseconds>(elapsed);
  auto line = s->make_line(req, what, took, result, kind, {});
  std::optional<console::report_line> report;
  if (s->options.report) {
    console::report_line r;
    r.request_id = req.context.request_id;
    r.duration = elapsed;
    if (req.function.memory_mb != 0) r.memory_mb = req.function.memory_mb;
    if (const auto env = s->seen->index_of.find(r.request_id); env != s->seen->index_of.end()) {
      if (const auto figures = s->pool.report_of(env->second)) {
        r.max_memory_used_mb = peak_memory_mb(figures->pid);
        // As on Lambda, a cold start's init is not part of the invocation's duration.
        r.init = std::min(figures->init, elapsed);
        r.duration = elapsed - r.init;
      }
    }
    report = std::move(r);
  }
  std::string block_title;
  std::string block;
  if (s->options.verbose) {
    block_title = fmt::format("{} {}", is_success(result) ? "response" : "error",
                              req.context.request_id.substr(0, 8));
    block = console::pretty_payload(result.body);
  }
  auto entry = s->make_entry(req, what, elapsed, result, kind);
  ++s->pending_lines;
  asio::co_spawn(
      s->executor,
      [s, line = std::move(line), report = std::move(report), block_title = std::move(block_title),
       block = std::move(block), entry = std::move(entry)]() mutable -> asio::awaitable<void> {
        struct done {
          served_function::state* state;
          ~done() {
            if (--state->pending_lines == 0) state->lines_printed.cancel();
          }
        } counted{s.get()};
        co_await s->output_settled(line.request_id);
        if (entry) s->record(std::move(*entry));
        s->out().invocation(line);
        if (report) s->out().report(*report);
        if (!block_title.empty()) s->out().payload_block(block_title, block);
      },
      asio::detached);
}

/// A streamed result on its way to the tunnel: its line is printed when the stream ends,
/// with how it ended. One that fails after its first bytes cannot be held (the caller has
/// them already), and the console says so.
class logged_stream final : public runtime_api::piece_source {
 public:
  logged_stream(state_ptr s, const tunnel::request& req, console::trigger what,
                steady_clock::time_point started, std::shared_ptr<runtime_api::piece_source> inner)
      : s_(std::move(s)), what_(what), started_(started), inner_(std::move(inner)) {
    req_.id = req.id;
    req_.app = req.app;
    req_.context = req.context;
    req_.function = req.function;
    req_.answer_by_ms = req.answer_by_ms;
    if (s_->options.record) req_.payload = req.payload;  // the history keeps the event
  }

  asio::awaitable<std::optional<std::string>> read() override {
    std::optional<std::string> bytes = co_await inner_->read();
    if (bytes) {
      streamed_ += bytes->size();
      co_return bytes;
    }
    if (logged_) co_return bytes;
    logged_ = true;
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - started_);
    runtime_api::result r;
    if (const auto& error = inner_->error()) {
      r.outcome = runtime_api::result::kind::function_error;
      r.error_type = error->error_type;
      r.body = inner_->error_body();
      finish_line(
          s_, req_, what_, elapsed, r,
          r.error_type == "Sandbox.Timedout" ? console::outcome::timeout : console::outcome::error);
      if (s_->options.spec.hold) {
        s_->out().warn(s_->label(),
                       fmt::format("{}: not held: it failed after streaming {} bytes to the "
                                   "caller, so it cannot run again; the caller gets this error",
                                   req_.context.request_id.substr(0, 8), streamed_));
      }
    } else {
      r.content_type = "application/octet-stream";
      finish_line(s_, req_, what_, elapsed, r, console::outcome::ok);
    }
    co_return bytes;
  }
  const std::optional<runtime_api::function_error>& error() const override {
    return inner_->error();
  }
  const std::string& error_body() const override { return inner_->error_body(); }

 private:
  state_ptr s_;
  tunnel::request req_;  // without the event
  console::trigger what_;
  steady_clock::time_point started_;
  std::shared_ptr<runtime_api::piece_source> inner_;
  std::size_t streamed_ = 0;
  bool logged_ = false;
};

asio::awaitable<runtime_api::result> serve(state_ptr s, const tunnel::request& req) {
  // Credentials without --forward-credentials: the pool never uses them (config_for).
  if (!req.credentials.empty() && !s->options.spec.forward_credentials) {
    if (!s->warned_credentials) {
      s->warned_credentials = true;
      s->out().warn(s->label(),
                    "the function sends its AWS credentials (FUNCIE_FORWARD_CREDENTIALS is set "
                    "in the function): they are dropped here. Give --forward-credentials to run "
                    "the handler as the function's role, or unset it in the function");
    }
  }
  const auto what = console::guess_trigger(req.payload);
  const auto& id = req.context.request_id;
  if (s->options.verbose) {
    s->out().payload_block(fmt::format("event {}", id.substr(0, 8)),
                           console::pretty_payload(req.payload));
  }

  for (;;) {
    const auto started = steady_clock::now();
    auto warning = s->arm_deadline_warning(req);
    runtime_api::result result = co_await s->pool.run(req);
    if (warning) warning->cancel();
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - started);
    const auto took = std::chrono::duration_cast<milliseconds>(elapsed);
    if (s->stopping) co_return result;  // the caller got Funcie.ConsumerLeft already
    if (result.pieces) {
      // It has streamed: from here on it cannot be held.
      result.pieces = std::make_shared<logged_stream>(s, req, what, started, result.pieces);
      co_return result;
    }

    const bool timed_out = result.error_type == "Sandbox.Timedout";
    const bool holdable = !is_success(result) && s->options.spec.hold && !timed_out &&
                          result.error_type != "Funcie.ConsumerLeft";
    const auto limit = forwarder_limit_ms(req);
    const auto hold_for = limit == 0 ? 0 : limit - answer_transit_ms - util::unix_ms_now();
    if (holdable && hold_for > 0) {
      co_await s->output_settled(id);
      // On a terminal the seconds left count down in the status line; piped, they are said
      // once, here.
      s->line(req, what, took, result, console::outcome::held,
              s->out().live() ? fmt::format("{} to run it again", s->reload_hint())
                              : fmt::format("{} to run it again; {} left", s->reload_hint(),
                                            seconds_text(hold_for)));
      if (s->options.verbose) {
        s->out().payload_block(fmt::format("error {}", id.substr(0, 8)),
                               console::pretty_payload(result.body));
      }
      const auto seen = s->generation;
      asio::steady_timer timer(s->executor, milliseconds(hold_for));
      s->holds[&timer] = held{id, util::unix_ms_now() + hold_for};
      start_countdown(s);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      s->holds.erase(&timer);
      show_holds(s);
      if (s->stopping) co_return result;
      if (s->generation != seen) continue;  // reloaded: the same request runs again
      s->line(req, what, took, result, console::outcome::error,
              "held until the cloud's deadline neared; the caller gets this error");
      if (auto entry = s->make_entry(req, what, elapsed, result, console::outcome::error)) {
        s->record(std::move(*entry));
      }
      co_return result;
    }
    const auto kind = is_success(result) ? console::outcome::ok
                      : timed_out        ? console::outcome::timeout
                                         : console::outcome::error;
    finish_line(s, req, what, elapsed, result, kind);
    co_return result;
  }
}

/// A reload: the runtimes restart and held requests run again.
void reload_state(const state_ptr& s, const std::string& why) {
  ++s->generation;
  s->pool.restart();
  if (s->holds.empty()) {
    s->out().info(s->label(), fmt::format("reloaded ({})", why));
  } else {
    s->out().info(s->label(), fmt::format("reloaded ({}): running {} held request(s) again", why,
                                          s->holds.size()));
  }
  for (auto& [timer, h] : s->holds) timer->cancel();
}

}  // namespace

namespace {

/// After "serving app ...": what is watched, --hold, the secret, how to reload and leave.
void start_block(served_function::state& s) {
  namespace fs = std::filesystem;
  auto& out = s.out();
  const auto& spec = s.options.spec;
  if (spec.watch.empty()) {
    out.field("watch", "nothing (--watch PATH reloads on save; r reloads by hand)");
  } else {
    std::error_code ec;
    const auto here = fs::current_path(ec);
    std::string paths;
    for (const auto& path : spec.watch) {
      auto relative = fs::path(path).lexically_relative(here);
      const std::string shown =
          !relative.empty() && *relative.begin() != ".." ? relative.string() : path;
      paths += (paths.empty() ? "" : ", ") + console::shorten_middle(shown, 48);
    }
    out.field("watch", paths);
  }
  out.field("hold", spec.hold ? "on: failed invocations wait for a reload and run again"
                              : "off: errors go back to the caller at once (--hold keeps them)");
  out.field("secret", s.secret_state, s.secret_missing);
  if (!spec.routes.empty()) {
    // Several routes are alternatives (docs/routing.md).
    std::string routes;
    for (const auto& r : spec.routes) routes += (routes.empty() ? "" : " OR ") + r;
    out.field("route", routes + " (only these; the rest run elsewhere)");
  }
  if (!s.options.controls.empty()) out.field("keys", s.options.controls);
}

}  // namespace

served_function::served_function(asio::any_io_executor executor, served_options options)
    : state_(std::make_shared<state>(executor, std::move(options))) {
  auto& s = *state_;

  consumer_options c;
  c.backend = project::backend_options_of(s.options.spec);
  // The start block says the secret's state in one line (no spdlog lines from here).
  if (const auto& keys = c.backend.keys; keys.enabled()) {
    const auto ids = keys.key_ids();
    s.secret_state = fmt::format(
        "key {}{}: messages {}", ids.front(),
        ids.size() > 1 ? fmt::format(" (also accepting {})", ids[1]) : std::string(),
        keys.encrypts() ? "encrypted and authenticated" : "authenticated, not encrypted");
  } else {
    s.secret_missing = true;
    s.secret_state = "none: the broker can read events and forge answers (--secret-file)";
  }
  c.make_session = s.options.make_session;
  std::weak_ptr<state> weak_state = state_;
  c.on_session = [weak_state](const std::string& session, bool first) {
    auto self = weak_state.lock();
    if (!self) return;
    self->session = session;
    if (self->options.on_session) self->options.on_session(session, first);
    if (first) start_block(*self);
  };
  std::weak_ptr<state> weak = state_;
  s.tunnel_consumer = std::make_unique<consumer>(
      executor, std::move(c),
      [weak](const tunnel::request& req) -> asio::awaitable<runtime_api::result> {
        auto self = weak.lock();
        if (!self) throw std::runtime_error("the function is no longer served");
        co_return co_await serve(self, req);
      });

  if (!s.options.spec.watch.empty()) {
    s.file_watcher = std::make_unique<watcher>(executor, s.options.spec.watch, watch_debounce,
                                               [weak](std::vector<std::string> changed) {
                                                 auto self = weak.lock();
                                                 if (!self || self->stopping || changed.empty())
                                                   return;
                                                 auto why = describe_change(changed);
                                                 reload_state(self, why);
                                               });
  }
}

served_function::~served_function() = default;

const project::function_spec& served_function::spec() const {
  return state_->options.spec;
}

void served_function::reload(const std::string& why) {
  reload_state(state_, why);
}

asio::awaitable<void> served_function::run() {
  auto s = state_;
  co_await s->tunnel_consumer->run();
}

asio::awaitable<void> served_function::stop() {
  auto s = state_;
  if (s->stopping) co_return;
  s->stopping = true;
  s->file_watcher.reset();
  for (auto& [timer, h] : s->holds) timer->cancel();
  try {
    co_await s->tunnel_consumer->stop();
  } catch (const std::exception& e) {
    spdlog::warn("leaving the tunnel of {}: {}", s->options.spec.app, e.what());
  }
  co_await s->pool.shut_down(milliseconds(2000));
  // An invocation answered just before Ctrl-C still gets its line (its output is read now);
  // a terminal that stopped reading does not keep funcie from exiting.
  const auto until = steady_clock::now() + milliseconds(500);
  while (s->pending_lines > 0 && steady_clock::now() < until) {
    s->lines_printed.expires_at(until);
    boost::system::error_code ec;
    co_await s->lines_printed.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace funcie::consumer
