#include "history/local_run.hpp"

#include "console/trigger.hpp"
#include "consumer/runtime_pool.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <fmt/format.h>

#include <map>

namespace funcie::history {

namespace asio = boost::asio;

struct local_runner::state {
  local_run_options options;
  // Lines of the invocation each environment runs (one environment: at most one).
  std::map<unsigned, std::string> running;
  std::map<unsigned, std::string> logs;
  std::unique_ptr<consumer::runtime_pool> pool;
};

local_runner::local_runner(asio::any_io_executor executor, local_run_options options)
    : state_(std::make_shared<state>()) {
  state_->options = std::move(options);
  const auto& spec = state_->options.spec;
  consumer::runtime_pool_options p;
  p.command = spec.command;
  p.concurrency = 1;
  p.app = spec.app;
  p.environment = spec.environment;
  p.working_directory = spec.directory;
  std::weak_ptr<state> weak = state_;
  p.output = [weak](unsigned environment, int stream, std::string_view line) {
    auto s = weak.lock();
    if (!s) return;
    auto& log = s->logs[environment];
    if (log.size() < 1024 * 1024) {
      log.append(line);
      log += '\n';
    }
    if (s->options.output) s->options.output(stream, line);
  };
  p.on_invoke = [weak](unsigned environment, std::string_view) {
    if (auto s = weak.lock()) s->logs[environment].clear();
  };
  state_->pool = std::make_unique<consumer::runtime_pool>(executor, std::move(p));
}

local_runner::~local_runner() = default;

const project::function_spec& local_runner::spec() const {
  return state_->options.spec;
}

asio::awaitable<entry> local_runner::run(std::string event) {
  auto s = state_;
  tunnel::request req;
  req.id = util::random_hex(32);
  req.app = s->options.spec.app;
  req.context.request_id = util::new_request_id();
  req.context.trace_id = util::new_trace_id();
  const auto received = util::unix_ms_now();
  req.context.deadline_ms = received + s->options.timeout.count();
  req.payload = std::move(event);
  const auto started = std::chrono::steady_clock::now();
  auto result = co_await s->pool->run(req);
  const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);

  entry e;
  e.app = s->options.spec.app;
  e.request_id = req.context.request_id;
  const auto what = console::guess_trigger(req.payload);
  e.trigger = what.detail.empty() ? what.source : what.source + " " + what.detail;
  e.received_ms = received;
  e.duration_us = elapsed.count();
  e.source = "invoke";
  e.environment = fmt::format("{}#1", s->options.spec.name);
  if (auto figures = s->pool->report_of(0)) e.cold = figures->init.count() > 0;
  const bool ok = result.outcome == runtime_api::result::kind::success;
  e.outcome = ok ? "ok" : result.error_type == "Sandbox.Timedout" ? "timeout" : "error";
  if (ok) {
    if (const int status = console::response_status(result.body); status != 0) {
      e.status = std::to_string(status);
    }
  } else {
    const auto summary = console::summarize_error(result.body);
    e.error_type = result.error_type.empty() ? summary.type : result.error_type;
    if (e.error_type.empty()) e.error_type = "Unhandled";
    e.error_message = summary.message;
  }
  e.event = std::move(req.payload);
  e.response = std::move(result.body);
  e.logs = std::move(s->logs[0]);
  s->logs[0].clear();
  co_return e;
}

asio::awaitable<void> local_runner::shut_down() {
  co_await state_->pool->shut_down(std::chrono::milliseconds(1000));
}

}  // namespace funcie::history
