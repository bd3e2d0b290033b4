#include "forwarder/proxy.hpp"

#include "forwarder/cloud_runtime.hpp"
#include "forwarder/forwarder.hpp"
#include "runtime_api/server.hpp"
#include "tunnel/backend.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <exception>

namespace funcie::forwarder {

namespace {

namespace asio = boost::asio;

// What the caller gets when nobody took the invocation: there is no code here to run it.
asio::awaitable<fallback::outcome> no_consumer(const forwarder& fwd,
                                               runtime_api::invocation invocation) {
  const forwarder_config& config = fwd.config();
  const std::string& app = config.backend.app;
  const std::string& request_id = invocation.context.request_id;
  const std::string where = tunnel::redact_url(config.backend.url);
  // Why: nobody claimed it, or the broker could not be used (the reason names it, never
  // with a password).
  const std::string& reason = fwd.last_not_taken_reason();
  spdlog::warn("{}: nobody is connected to app {} through {} ({})", request_id, app, where, reason);
  runtime_api::function_error error{
      .error_type = "Funcie.NoConsumer",
      .error_message = fmt::format(
          "RequestId: {} Error: nobody is connected to app '{}' through {} ({}): run `funcie "
          "connect --backend URL --app {} -- CMD` on your machine and invoke again",
          request_id, app, where, reason.empty() ? std::string("no consumer") : reason, app),
      .stack_trace = {}};
  fallback::outcome failed;
  failed.result.outcome = runtime_api::result::kind::function_error;
  failed.result.body = runtime_api::format_error(error);
  failed.result.error_type = std::move(error.error_type);
  co_return failed;
}

// Lambda's shutdown (or Ctrl-C under a test): nothing of ours is in flight that must finish.
asio::awaitable<int> stop(int sig) {
  spdlog::debug("proxy: {}", sig == SIGINT ? "interrupted" : "terminated");
  co_return 0;
}

}  // namespace

int run_proxy(const proxy_options& options) {
  try {
    cloud_runtime cloud("proxy", options.upstream);
    const forwarder* fwd = cloud.open_forwarder(options.app);
    if (fwd == nullptr) return exit_config;
    const forwarder_config& config = fwd->config();
    if (!config.enabled()) {
      return cloud.report_config_error(
          "FUNCIE_BACKEND is not set: the proxy sends every invocation to `funcie connect` "
          "through a broker and needs its URL (redis://host:6379)");
    }
    const fallback nobody{.run =
                              [fwd](runtime_api::invocation invocation) {
                                return no_consumer(*fwd, std::move(invocation));
                              },
                          .ended = {}};
    return cloud.run(cloud.serve(nobody), stop);
  } catch (const std::exception& e) {
    fmt::print(stderr, "funcie proxy: {}\n", e.what());
    return exit_failure;
  }
}

}  // namespace funcie::forwarder
