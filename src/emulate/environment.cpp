#include "emulate/environment.hpp"

#include "util/clock.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>

namespace funcie::emulate {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

outcome error_outcome(std::string type, std::string message) {
  runtime_api::function_error error{type, std::move(message), {}};
  return outcome{true, runtime_api::format_error(error), "application/json", std::move(type), false,
                 {}};
}

std::string seconds_text(milliseconds d) {
  return fmt::format("{:.2f}", d.count() / 1000.0);
}

}  // namespace

environment::environment(asio::any_io_executor executor, const function_config& config,
                         unsigned index)
    : executor_(std::move(executor)), config_(config), index_(index), watchdog_(executor_) {
  anchor_->self = this;
}

environment::~environment() {
  anchor_->self = nullptr;
  reset();
}

void environment::start() {
  api_ = std::make_unique<runtime_api::server>(executor_);
  auto env = runtime_environment(config_, api_->address(), new_log_stream_name());
  process::child_options options;
  options.working_directory = config_.working_directory;
  // Each line goes where the configuration says (funcie's own stdout and stderr when it
  // says nothing) and, while an invocation runs, into its log for LogType Tail. A copy of
  // the function, not a reference to config_: the child's readers keep it.
  options.on_line = [output = config_.output, index = index_, log = log_](int stream,
                                                                          std::string_view line) {
    if (output) {
      output(index, stream, line);
    } else {
      std::FILE* to = stream == 2 ? stderr : stdout;
      std::fwrite(line.data(), 1, line.size(), to);
      std::fputc('\n', to);
      std::fflush(to);
    }
    if (log->active) {
      log->text.append(line);
      log->text.push_back('\n');
      // Lambda's tail is the last 4 KB; keep a little more, cut in bulk.
      if (log->text.size() > 64 * 1024) log->text.erase(0, log->text.size() - 8 * 1024);
    }
  };
  options.before_read = config_.output_room;
  process_ = std::make_unique<process::child>(executor_, config_.command, env, std::move(options));
  spdlog::debug("environment {}: started runtime pid {} with Runtime API {}", index_,
                process_->pid(), api_->address());
  // Watch the process: when it ends while an invocation waits on it, that wait is ended by
  // closing the Runtime API, and the invocation reads why from the watch.
  watch_ = std::make_shared<watch>();
  watch_->api = api_.get();
  asio::co_spawn(
      executor_,
      [w = watch_, pid = process_->pid(),
       wait = process_->wait()]() mutable -> asio::awaitable<void> {
        try {
          auto status = co_await std::move(wait);
          spdlog::debug("runtime pid {} ended: {}", pid, status.describe());
          w->exit = status;
          if (w->busy && w->why == interruption::none && w->api != nullptr) {
            w->why = interruption::exited;
            w->api->close();
          }
        } catch (const std::exception&) {
          // The environment was reset first; nobody is waiting.
        }
      },
      asio::detached);
}

void environment::reset() {
  if (watch_) {
    watch_->api = nullptr;
    watch_->busy = false;
  }
  if (api_) api_->close();
  process_.reset();  // kills the process group and reaps it
  api_.reset();
  watch_.reset();
}

int environment::runtime_pid() const {
  return process_ ? process_->pid() : 0;
}

void environment::watch_until(steady_clock::time_point deadline) {
  phase_deadline_ = deadline;
  if (armed_ != steady_clock::time_point{} && armed_ <= deadline) return;
  armed_ = deadline;
  watchdog_.expires_at(deadline);  // a wait in progress ends with operation_aborted
  watchdog_.async_wait([a = anchor_](boost::system::error_code ec) {
    if (ec || a->self == nullptr) return;
    a->self->armed_ = {};
    a->self->on_watchdog();
  });
}

void environment::on_watchdog() {
  if (!watch_ || !watch_->busy) return;  // idle: the next phase arms it again
  if (steady_clock::now() >= phase_deadline_) {
    interrupt(interruption::timed_out);
    return;
  }
  watch_until(phase_deadline_);
}

void environment::interrupt(interruption why) {
  if (!watch_ || watch_->why != interruption::none) return;
  watch_->why = why;
  if (watch_->api != nullptr) watch_->api->close();
}

outcome environment::exit_outcome(const std::string& request_id) const {
  const auto status = watch_ && watch_->exit ? *watch_->exit : process::exit_status{};
  auto text = status.signal == 0 && status.code == 0
                  ? std::string("Runtime exited without providing a reason")
                  : "Runtime exited with error: " + status.describe();
  return error_outcome("Runtime.ExitError",
                       fmt::format("RequestId: {} Error: {}", request_id, text));
}

asio::awaitable<outcome> environment::timed_out(const std::string& request_id,
                                                bool forwarded_deadline) {
  if (forwarded_deadline) {
    spdlog::warn("{} Task timed out at its deadline; resetting environment {}", request_id, index_);
    reset();
    co_return error_outcome(
        "Sandbox.Timedout",
        fmt::format("RequestId: {} Error: Task timed out at its deadline", request_id));
  }
  spdlog::warn("{} Task timed out after {} seconds; resetting environment {}", request_id,
               seconds_text(config_.timeout), index_);
  reset();
  co_return error_outcome("Sandbox.Timedout",
                          fmt::format("RequestId: {} Error: Task timed out after {} seconds",
                                      request_id, seconds_text(config_.timeout)));
}

asio::awaitable<outcome> environment::run(runtime_api::invocation invocation,
                                          const stream_sink* sink) {
  log_->text.clear();
  log_->active = true;
  outcome result;
  try {
    result = co_await run_invocation(std::move(invocation), sink);
  } catch (...) {
    log_->active = false;
    throw;
  }
  // The runtime logs, then posts its response: what it wrote before is in the pipes, but
  // the readers may not have had their turn yet. Lambda's tail has it; so does this one.
  if (process_) process_->collect();
  log_->active = false;
  result.log = std::move(log_->text);
  log_->text.clear();
  co_return result;
}

namespace {

// Marks the runtime's watch busy for the life of one run_invocation().
class busy_guard {
 public:
  template <class Watch>
  explicit busy_guard(const std::shared_ptr<Watch>& w) : clear_([w] { w->busy = false; }) {
    w->busy = true;
  }
  ~busy_guard() { clear_(); }
  busy_guard(const busy_guard&) = delete;
  busy_guard& operator=(const busy_guard&) = delete;

 private:
  std::function<void()> clear_;
};

}  // namespace

asio::awaitable<outcome> environment::run_invocation(runtime_api::invocation invocation,
                                                     const stream_sink* sink) {
  const auto request_id = invocation.context.request_id;
  const auto init_started = steady_clock::now();
  const bool cold = !process_ || process_->exited() || (watch_ && watch_->exit);
  if (cold) {
    reset();
    start();
  }
  last_init_ = {};
  auto api = api_.get();
  const auto w = watch_;
  w->why = interruption::none;
  const busy_guard busy(w);
  // Ends the wait in progress when the runtime exits or the phase's deadline passes: both
  // close the Runtime API (the only way a wait below fails), then `w->why` says which.
  // Nothing is raced, no timer is set per invocation (docs/emulate.md).
  std::exception_ptr failure;

  // Init: until the runtime first asks for work, bounded by Lambda's init timeout. A warm
  // runtime already waits in /next: nothing to wait for.
  std::optional<runtime_api::result> init_error;
  if (!api->ready()) watch_until(steady_clock::now() + config_.init_timeout);
  try {
    init_error = co_await api->wait_ready();
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    if (w->why == interruption::exited) {
      auto ended = exit_outcome(request_id);
      reset();
      co_return ended;
    }
    if (w->why == interruption::timed_out) {
      reset();
      co_return error_outcome(
          "Sandbox.Timedout",
          fmt::format("RequestId: {} Error: Init phase timed out after {} seconds", request_id,
                      seconds_text(config_.init_timeout)));
    }
    std::rethrow_exception(failure);
  }
  if (init_error) {
    reset();
    co_return outcome{true,
                      std::move(init_error->body),
                      "application/json",
                      std::move(init_error->error_type),
                      false,
                      {}};
  }

  if (cold) {
    last_init_ =
        std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - init_started);
  }

  // Invoke: the deadline starts when the runtime takes the event, unless the invocation
  // already carries one (forwarded from the cloud): that one is kept, untouched.
  const bool forwarded_deadline = invocation.context.deadline_ms != 0;
  auto deadline = steady_clock::now() + config_.timeout;
  if (forwarded_deadline) {
    const auto left = milliseconds(
        std::max<std::int64_t>(0, invocation.context.deadline_ms - util::unix_ms_now()));
    if (left.count() == 0) {
      // Already past its deadline: the runtime never sees it and stays ready.
      co_return error_outcome(
          "Sandbox.Timedout",
          fmt::format("RequestId: {} Error: Task timed out: its deadline passed before it "
                      "could start",
                      request_id));
    }
    deadline = steady_clock::now() + left;
  } else {
    invocation.context.deadline_ms =
        std::chrono::duration_cast<milliseconds>(
            (std::chrono::system_clock::now() + config_.timeout).time_since_epoch())
            .count();
  }
  watch_until(deadline);
  // What ends the run when a wait failed: the runtime's exit, the deadline, or neither
  // (then the failure itself goes on).
  auto interrupted = [&]() -> asio::awaitable<outcome> {
    if (w->why == interruption::exited) {
      auto ended = exit_outcome(request_id);
      reset();
      co_return ended;
    }
    if (w->why == interruption::timed_out)
      co_return co_await timed_out(request_id, forwarded_deadline);
    std::rethrow_exception(failure);
  };
  runtime_api::result r;
  try {
    r = co_await api->invoke(std::move(invocation));
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) co_return co_await interrupted();
  if (!r.stream) {
    if (r.outcome == runtime_api::result::kind::success) {
      co_return outcome{false, std::move(r.body), std::move(r.content_type), {}, false, {}};
    }
    co_return outcome{true, std::move(r.body), "application/json", std::move(r.error_type), false,
                      {}};
  }

  // A streamed response: each piece goes on as the runtime writes it, until the stream
  // ends, the runtime exits or the deadline passes (the function's timeout holds for the
  // whole stream, as on Lambda).
  const auto stream = r.stream;
  outcome streamed;
  streamed.streamed = true;
  streamed.content_type =
      r.content_type.empty() ? std::string("application/octet-stream") : r.content_type;
  if (sink) co_await sink->start(streamed.content_type);
  bool too_large = false;
  for (;;) {
    std::optional<std::string> bytes;
    try {
      bytes = co_await stream->read();
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      outcome ended = co_await interrupted();
      ended.streamed = true;
      co_return ended;
    }
    if (!bytes) break;
    if (sink) {
      co_await sink->bytes(*bytes);
    } else if (streamed.body.size() + bytes->size() > runtime_api::max_payload_bytes) {
      too_large = true;  // read on to the end: the runtime is not held up
      std::string().swap(streamed.body);
    } else if (!too_large) {
      streamed.body += *bytes;
    }
  }
  if (const auto& error = stream->error()) {
    // A stream broken off mid-body: the runtime is dying or lost its way; a fresh one takes
    // the next invocation (its exit, when it comes, has nobody left to tell).
    if (error->error_type == "Runtime.TruncatedResponse") reset();
    streamed.function_error = true;
    streamed.error_type = error->error_type;
    streamed.body = stream->error_body();
    streamed.content_type = "application/json";
  } else if (too_large) {
    // A buffered Invoke has Lambda's 6 MB limit, streamed or not.
    outcome refused = error_outcome(
        "Function.ResponseSizeTooLarge",
        fmt::format("Response payload size exceeded maximum allowed payload size ({} bytes).",
                    runtime_api::max_payload_bytes));
    refused.streamed = true;
    co_return refused;
  }
  co_return streamed;
}

void environment::terminate() {
  if (process_ && !process_->exited()) process_->signal(SIGTERM);
}

asio::awaitable<void> environment::shut_down(steady_clock::time_point deadline) {
  // Nothing runs any more: the watchdog would keep the event loop busy until it fires.
  watchdog_.cancel();
  armed_ = {};
  if (!process_ || process_->exited()) {
    reset();
    co_return;
  }
  try {
    asio::steady_timer timer(executor_, deadline);
    // Wait on the process itself: the exit notice may already be taken by a running
    // invocation.
    co_await (process_->wait() || timer.async_wait(asio::use_awaitable));
  } catch (const std::exception&) {
  }
  reset();
}

}  // namespace funcie::emulate
