// Runs claimed requests in local execution environments: the developer's CMD, each process
// with its own local Runtime API, through src/emulate's pool. The forwarded context reaches
// the runtime untouched (request id, the cloud's deadline, function ARN, trace id, client
// context, cognito identity, tenant id) and the function's description from the cloud
// becomes its environment (name, version, memory size, region, log group and stream).
#pragma once

#include "consumer/consumer.hpp"
#include "emulate/config.hpp"
#include "emulate/emulator.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::consumer {

struct runtime_pool_options {
  std::vector<std::string> command;  ///< CMD [ARGS...]
  unsigned concurrency = 10;         ///< Execution environments at most (1..1000).
  std::string app;                   ///< The tunnel's app: the function name when none came.
  /// The developer's own variables for the runtime (emulate's --env), checked by
  /// emulate::add_environment.
  std::map<std::string, std::string> environment;
  /// Working directory of CMD; empty: funcie's own.
  std::string working_directory;
  /// Each line CMD writes (environment index from 0, stream 1 or 2); empty: CMD inherits
  /// funcie's stdout and stderr.
  std::function<void(unsigned environment, int stream, std::string_view line)> output;
  /// With output: each read of CMD's pipes waits for it first (emulate's output_room).
  std::function<boost::asio::awaitable<void>()> output_room;
  /// Called when a request is handed to an environment (emulate::function_config::on_invoke).
  std::function<void(unsigned environment, std::string_view request_id)> on_invoke;
  /// Give the handler the function's AWS credentials when a request carries them;
  /// otherwise it gets the developer's own AWS settings (developer_variables).
  bool forward_credentials = false;
};

/// Time kept for an answer's way back to the forwarder: a request still queued, or a failed
/// one held (--hold), is answered this long before the forwarder stops waiting.
inline constexpr std::int64_t answer_transit_ms = 250;

/// What a local handler inherits from funcie connect's environment: the developer's AWS
/// settings (profile, keys, config files, endpoint), so that it calls AWS as the developer,
/// and the sanitizers' options.
const std::vector<std::string>& developer_variables();

/// The function_config of the environments for requests describing `function` (empty
/// fields get emulate's defaults). Exposed for tests.
emulate::function_config config_for(const runtime_pool_options& options,
                                    const tunnel::request& first);

/// What Lambda's REPORT line says of the environment that ran an invocation.
struct environment_report {
  int pid = 0;                        ///< the runtime process, 0 when gone
  std::chrono::microseconds init{0};  ///< the runtime's start, zero when it was warm
};

class runtime_pool {
 public:
  runtime_pool(boost::asio::any_io_executor executor, runtime_pool_options options);
  ~runtime_pool();
  runtime_pool(const runtime_pool&) = delete;
  runtime_pool& operator=(const runtime_pool&) = delete;

  /// Runs `req` in a free environment (made on first use from the first request's
  /// function description). Never throws: a command that cannot start gives
  /// Runtime.InvalidEntrypoint, a pool that is shutting down Funcie.ConsumerLeft.
  boost::asio::awaitable<runtime_api::result> run(const tunnel::request& req);

  /// Environment `index` (as output and on_invoke name it), after its last run.
  std::optional<environment_report> report_of(unsigned index) const;

  /// A runner for consumer::consumer that calls run(); the pool must outlive it.
  runner as_runner();

  /// A reload: every runtime restarts (idle ones now, busy ones when their invocation
  /// ends), so the next invocation runs the code as it is now.
  void restart();

  /// Stops every runtime: SIGTERM, then SIGKILL after `grace`. Later runs fail at once.
  boost::asio::awaitable<void> shut_down(std::chrono::milliseconds grace);

 private:
  boost::asio::any_io_executor executor_;
  runtime_pool_options options_;
  std::unique_ptr<emulate::emulator> emulator_;
  bool shutting_down_ = false;
};

}  // namespace funcie::consumer
