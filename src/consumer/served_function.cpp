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
#include <filesystem>
#include <set>

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

struct served_function::state {
  asio::any_io_executor executor;
  served_options options;
  runtime_pool pool;
  std::unique_ptr<consumer> tunnel_consumer;
  std::unique_ptr<watcher> file_watcher;
  std::uint64_t generation = 0;
  std::set<asio::steady_timer*> holds;  // timers of held requests, in their coroutines' frames
  bool stopping = false;
  bool warned_credentials = false;

  state(asio::any_io_executor ex, served_options o)
      : executor(ex), options(std::move(o)), pool(ex, pool_options_for(options)) {}

  static runtime_pool_options pool_options_for(const served_options& o) {
    runtime_pool_options p;
    p.command = o.spec.command;
    p.concurrency = o.spec.concurrency;
    p.app = o.spec.app;
    p.environment = o.spec.environment;
    p.working_directory = o.spec.directory;
    p.forward_credentials = o.spec.forward_credentials;
    p.output = [out = o.out, name = o.spec.name](unsigned environment, int stream,
                                                 std::string_view text) {
      out->handler_output(fmt::format("[{}#{}]", name, environment + 1), text, stream == 2);
    };
    return p;
  }

  console::console& out() { return *options.out; }
  std::string label() const { return options.show_name ? options.spec.name : std::string(); }

  std::string reload_hint() const {
    std::vector<std::string> ways;
    if (!options.spec.watch.empty()) ways.emplace_back("save a watched file");
    ways.emplace_back("press r");
    ways.emplace_back(fmt::format("kill -HUP {}", ::getpid()));
    std::string text;
    for (std::size_t i = 0; i < ways.size(); ++i) {
      if (i != 0) text += i + 1 == ways.size() ? " or " : ", ";
      text += ways[i];
    }
    return text;
  }

  void line(const tunnel::request& req, const console::trigger& what, milliseconds took,
            const runtime_api::result& result, console::outcome kind, std::string note) {
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
    }
    l.note = std::move(note);
    out().invocation(l);
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
  if (s->options.verbose) s->out().payload_block("event", console::pretty_payload(req.payload));

  for (;;) {
    const auto started = steady_clock::now();
    auto warning = s->arm_deadline_warning(req);
    runtime_api::result result = co_await s->pool.run(req);
    if (warning) warning->cancel();
    const auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - started);
    if (s->stopping) co_return result;  // the caller got Funcie.ConsumerLeft already

    const bool timed_out = result.error_type == "Sandbox.Timedout";
    const bool holdable = !is_success(result) && s->options.spec.hold && !timed_out &&
                          result.error_type != "Funcie.ConsumerLeft";
    const auto limit = forwarder_limit_ms(req);
    const auto hold_for = limit == 0 ? 0 : limit - answer_transit_ms - util::unix_ms_now();
    if (holdable && hold_for > 0) {
      s->line(req, what, took, result, console::outcome::held,
              fmt::format("{} to run it again; {} left", s->reload_hint(), seconds_text(hold_for)));
      if (s->options.verbose) {
        s->out().payload_block("error", console::pretty_payload(result.body));
      }
      const auto seen = s->generation;
      asio::steady_timer timer(s->executor, milliseconds(hold_for));
      s->holds.insert(&timer);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      s->holds.erase(&timer);
      if (s->stopping) co_return result;
      if (s->generation != seen) continue;  // reloaded: the same request runs again
      s->line(req, what, took, result, console::outcome::error,
              "held until the cloud's deadline neared; the caller gets this error");
      co_return result;
    }
    const auto kind = is_success(result) ? console::outcome::ok
                      : timed_out        ? console::outcome::timeout
                                         : console::outcome::error;
    s->line(req, what, took, result, kind, {});
    if (s->options.verbose) {
      s->out().payload_block(is_success(result) ? "response" : "error",
                             console::pretty_payload(result.body));
    }
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
  for (auto* timer : s->holds) timer->cancel();
}

}  // namespace

served_function::served_function(asio::any_io_executor executor, served_options options)
    : state_(std::make_shared<state>(executor, std::move(options))) {
  auto& s = *state_;

  consumer_options c;
  c.backend = project::backend_options_of(s.options.spec);
  tunnel::log_keyring(c.backend.keys,
                      s.options.show_name ? "funcie connect (" + s.options.spec.name + ")"
                                          : std::string("funcie connect"),
                      "give --secret-file (or FUNCIE_SECRET) with the function's FUNCIE_SECRET");
  c.make_session = s.options.make_session;
  c.on_session = s.options.on_session;
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
  for (auto* timer : s->holds) timer->cancel();
  try {
    co_await s->tunnel_consumer->stop();
  } catch (const std::exception& e) {
    spdlog::warn("leaving the tunnel of {}: {}", s->options.spec.app, e.what());
  }
  co_await s->pool.shut_down(milliseconds(2000));
}

}  // namespace funcie::consumer
