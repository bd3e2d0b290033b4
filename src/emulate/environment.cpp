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
    : executor_(std::move(executor)), config_(config), index_(index) {}

environment::~environment() {
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
  // Watch the process: its exit is posted on a channel that the running invocation races.
  exit_ = std::make_shared<exit_channel>(executor_, 1);
  asio::co_spawn(
      executor_,
      [exit = exit_, pid = process_->pid(),
       wait = process_->wait()]() mutable -> asio::awaitable<void> {
        try {
          auto status = co_await std::move(wait);
          spdlog::debug("runtime pid {} ended: {}", pid, status.describe());
          exit->try_send(boost::system::error_code{}, status);
        } catch (const std::exception&) {
          // The environment was reset first; nobody is waiting.
        }
      },
      asio::detached);
}

void environment::reset() {
  if (api_) api_->close();
  if (exit_) exit_->close();
  process_.reset();  // kills the process group and reaps it
  api_.reset();
  exit_.reset();
}

int environment::runtime_pid() const {
  return process_ ? process_->pid() : 0;
}

asio::awaitable<outcome> environment::exited(const std::string& request_id) {
  auto status = co_await exit_->async_receive(asio::use_awaitable);
  auto text = status.signal == 0 && status.code == 0
                  ? std::string("Runtime exited without providing a reason")
                  : "Runtime exited with error: " + status.describe();
  co_return error_outcome("Runtime.ExitError",
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
  log_->active = false;
  result.log = std::move(log_->text);
  log_->text.clear();
  co_return result;
}

asio::awaitable<outcome> environment::run_invocation(runtime_api::invocation invocation,
                                                     const stream_sink* sink) {
  const auto request_id = invocation.context.request_id;
  const auto init_started = steady_clock::now();
  const bool cold = !process_ || process_->exited();
  if (cold) {
    reset();
    start();
  }
  last_init_ = {};
  auto api = api_.get();

  // Init: until the runtime first asks for work, bounded by Lambda's init timeout.
  asio::steady_timer init_timer(executor_, config_.init_timeout);
  auto ready = co_await (api->wait_ready() || exited(request_id) ||
                         init_timer.async_wait(asio::use_awaitable));
  if (ready.index() == 1) {
    reset();
    co_return std::get<1>(ready);
  }
  if (ready.index() == 2) {
    reset();
    co_return error_outcome(
        "Sandbox.Timedout",
        fmt::format("RequestId: {} Error: Init phase timed out after {} seconds", request_id,
                    seconds_text(config_.init_timeout)));
  }
  if (auto& init_error = std::get<0>(ready)) {
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
  asio::steady_timer timer(executor_, deadline);
  auto done = co_await (api->invoke(std::move(invocation)) || exited(request_id) ||
                        timer.async_wait(asio::use_awaitable));
  switch (done.index()) {
    case 0: {
      auto& r = std::get<0>(done);
      if (r.stream) break;
      if (r.outcome == runtime_api::result::kind::success) {
        co_return outcome{false, std::move(r.body), std::move(r.content_type), {}, false, {}};
      }
      co_return outcome{true, std::move(r.body), "application/json", std::move(r.error_type), false,
                        {}};
    }
    case 1:
      reset();
      co_return std::get<1>(done);
    default:
      co_return co_await timed_out(request_id, forwarded_deadline);
  }

  // A streamed response: each piece goes on as the runtime writes it, until the stream
  // ends, the runtime exits or the deadline passes (the function's timeout holds for the
  // whole stream, as on Lambda).
  const auto stream = std::get<0>(done).stream;
  outcome streamed;
  streamed.streamed = true;
  streamed.content_type = std::get<0>(done).content_type.empty()
                              ? std::string("application/octet-stream")
                              : std::get<0>(done).content_type;
  if (sink) co_await sink->start(streamed.content_type);
  bool too_large = false;
  for (;;) {
    auto piece =
        co_await (stream->read() || exited(request_id) || timer.async_wait(asio::use_awaitable));
    if (piece.index() == 1) {
      reset();
      outcome ended = std::move(std::get<1>(piece));
      ended.streamed = true;
      co_return ended;
    }
    if (piece.index() == 2) {
      outcome late = co_await timed_out(request_id, forwarded_deadline);
      late.streamed = true;
      co_return late;
    }
    auto& bytes = std::get<0>(piece);
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
