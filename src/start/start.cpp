// funcie::start: the runtime loop with the forwarder in Lambda, the consumer elsewhere.
#include "funcie/funcie.hpp"

#include "consumer/consumer.hpp"
#include "forwarder/forwarder.hpp"
#include "runtime/loop.hpp"
#include "tunnel/secrets.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <thread>

namespace funcie {

namespace {

namespace asio = boost::asio;

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_config = 2;

void say(std::string_view line) {
  fmt::print(stderr, "funcie: {}\n", line);
  std::fflush(stderr);
}

forwarder::forwarder_config read_config(const std::string& app, const start_options& options) {
  auto getenv = [&options](const char* name) -> const char* {
    if (!options.backend.empty() && std::string_view(name) == "FUNCIE_BACKEND") {
      return options.backend.c_str();
    }
    return std::getenv(name);
  };
  return forwarder::config_from_environment(getenv, app);
}

// --- In Lambda ---------------------------------------------------------------------------

// `run.runtime_api` is the address start() read.
int serve_in_lambda(const std::string& app, const runtime::handler_function& handler,
                    const start_options& options) {
  try {
    const forwarder::forwarder_config config = read_config(app, options);
    if (!config.enabled()) {
      say("FUNCIE_BACKEND is not set: forwarding is off, every invocation runs here");
    }
    return runtime::run_loop(handler, options.run, [&config](asio::any_io_executor executor) {
      if (!config.enabled()) return runtime::invocation_hook();
      auto fwd = std::make_shared<forwarder::forwarder>(std::move(executor), config);
      return runtime::invocation_hook(
          [fwd](const runtime_api::invocation& invocation) { return fwd->forward(invocation); });
    });
  } catch (const forwarder::config_error& e) {
    say(e.what());
    runtime::report_init_error("Funcie.ConfigError", e.what());
    return exit_config;
  } catch (const std::exception& e) {
    say(e.what());
    return exit_failure;
  }
}

// --- On the developer's machine ------------------------------------------------------------

// Lambda's variables for the function, as the cloud side sent them, for a handler that reads
// them. Set only when they change, since glibc never frees a replaced value.
void set_function_env(const tunnel::function_info& function) {
  auto set = [](const char* name, const std::string& value) {
    if (value.empty()) return;
    const char* current = std::getenv(name);
    if (current == nullptr || value != current) ::setenv(name, value.c_str(), 1);
  };
  set("AWS_LAMBDA_FUNCTION_NAME", function.name);
  set("AWS_LAMBDA_FUNCTION_VERSION", function.version);
  set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
      function.memory_mb != 0 ? std::to_string(function.memory_mb) : std::string());
  set("AWS_REGION", function.region);
  set("AWS_LAMBDA_LOG_GROUP_NAME", function.log_group);
  set("AWS_LAMBDA_LOG_STREAM_NAME", function.log_stream);
}

// Runs on the caller's thread (the thread that called start()): the event loop keeps the
// heartbeats going meanwhile on its own thread. The environment is changed only here.
asio::awaitable<runtime_api::result> call_on_caller(const runtime::handler_function& handler,
                                                    tunnel::request request,
                                                    std::atomic<int>& busy) {
  ++busy;
  set_function_env(request.function);
  runtime::set_trace_env(request.context.trace_id);
  runtime_api::invocation invocation{.context = std::move(request.context),
                                     .payload = std::move(request.payload),
                                     .other_headers = {}};
  const runtime::invocation_request call = runtime::to_request(std::move(invocation));
  runtime_api::result result = runtime::to_result(runtime::call_handler(handler, call));
  --busy;
  co_return result;
}

asio::awaitable<runtime_api::result> run_on_caller(asio::io_context::executor_type caller,
                                                   const runtime::handler_function& handler,
                                                   tunnel::request request,
                                                   std::atomic<int>& busy) {
  auto call = call_on_caller(handler, std::move(request), busy);
  co_return co_await asio::co_spawn(caller, std::move(call), asio::use_awaitable);
}

int serve_locally(const std::string& app, const runtime::handler_function& handler,
                  const start_options& options) {
  forwarder::forwarder_config config;
  try {
    config = read_config(app, options);
  } catch (const forwarder::config_error& e) {
    say(e.what());
    return exit_config;
  }
  if (!config.enabled()) {
    say(fmt::format(
        "there is no {} here, so this program serves the function's invocations from your "
        "machine: set FUNCIE_BACKEND to the broker URL the deployed function uses "
        "(redis://host:6379)",
        runtime_api::runtime_api_env));
    return exit_config;
  }

  // The tunnel's event loop runs on a thread of its own; the handler runs on this thread,
  // one invocation at a time as in Lambda, so that a handler that keeps state per thread (or
  // a debugger's breakpoint) sees the thread that called start().
  asio::io_context io(1);
  asio::io_context caller(1);
  auto caller_work = asio::make_work_guard(caller);
  std::atomic<int> busy{0};
  const std::string where = tunnel::redact_url(config.backend.url);

  consumer::consumer_options consumer_options;
  consumer_options.backend = config.backend;
  tunnel::log_keyring(config.backend.keys, "funcie (local)",
                      "set FUNCIE_SECRET here to the function's FUNCIE_SECRET");
  consumer_options.on_session = [&](const std::string& session, bool first) {
    if (first) {
      fmt::print("funcie: serving app {} through {}\n", config.backend.app, where);
      std::fflush(stdout);
    } else {
      spdlog::info("funcie: connected again to {} (session {})", where, session);
    }
  };
  consumer::runner run = [executor = caller.get_executor(), &handler,
                          &busy](const tunnel::request& request) {
    return run_on_caller(executor, handler, request, busy);
  };
  consumer::consumer local(io.get_executor(), std::move(consumer_options), std::move(run));

  int code = exit_ok;
  // Ctrl-C leaves cleanly (what is held is failed at once); a second one does not wait.
  std::optional<asio::signal_set> signals(std::in_place, io, SIGINT, SIGTERM);
  std::function<void(boost::system::error_code, int)> on_signal;
  bool stopping = false;
  on_signal = [&](boost::system::error_code ec, int) {
    if (ec) return;
    if (stopping) {
      io.stop();
      return;
    }
    stopping = true;
    asio::co_spawn(io, local.stop(), asio::detached);
    signals->async_wait(on_signal);
  };
  signals->async_wait(on_signal);
  asio::co_spawn(io, local.run(), [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const tunnel::backend_config_error& failure) {
        say(failure.what());
        code = exit_config;
      } catch (const std::exception& failure) {
        say(failure.what());
        code = exit_failure;
      }
    }
    io.stop();
  });
  std::thread loop([&] {
    io.run();
    // Requests still queued for the caller were answered (Funcie.ConsumerLeft) and never
    // run; one in the handler now is waited for, and Ctrl-C (default action again) ends it.
    signals.reset();
    if (busy.load() != 0) say("waiting for the handler to return (Ctrl-C to quit at once)");
    caller.stop();
  });
  caller.run();
  loop.join();
  return code;
}

}  // namespace

int start(std::string app, runtime::handler_function handler) {
  return start(std::move(app), std::move(handler), start_options{});
}

int start(std::string app, runtime::handler_function handler, const start_options& options) {
  // The environment is read here, once, before any thread of ours runs.
  start_options resolved = options;
  if (resolved.run.runtime_api.empty()) {
    const char* api = std::getenv(std::string(runtime_api::runtime_api_env).c_str());
    if (api != nullptr) resolved.run.runtime_api = api;
  }
  return resolved.run.runtime_api.empty() ? serve_locally(app, handler, resolved)
                                          : serve_in_lambda(app, handler, resolved);
}

}  // namespace funcie
