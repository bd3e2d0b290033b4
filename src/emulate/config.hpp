// What `funcie emulate` emulates: one function's configuration, checked as Lambda checks it.
#pragma once

#include "util/user_error.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::emulate {

/// A configuration value a user gave is out of range or malformed; the message says which
/// and what is allowed.
class config_error : public util::user_error {
 public:
  using util::user_error::user_error;
};

struct function_config {
  std::string name;
  std::string region = "us-east-1";
  std::string account = "000000000000";
  std::chrono::milliseconds timeout{3000};  ///< Lambda: 1 s to 900 s.
  std::chrono::milliseconds init_timeout{10000};
  unsigned memory_mb = 128;   ///< Lambda: 128 to 10240.
  unsigned concurrency = 10;  ///< Execution environments at most.
  std::string handler = "function.handler";
  /// What GetFunctionConfiguration reports as Runtime (funcie runs CMD whatever it says).
  std::string runtime = "provided.al2023";
  /// When the emulated function was "deployed" (funcie emulate's start), as Lambda writes
  /// LastModified: "2024-05-01T12:00:00.000+0000".
  std::string last_modified;
  std::map<std::string, std::string> environment;  ///< The function's own variables.
  std::vector<std::string> command;                ///< The runtime: CMD [ARGS...].
  /// Names of variables copied from funcie's own environment when set there: after
  /// Lambda's variables (they win over them, except AWS_LAMBDA_RUNTIME_API), before the
  /// function's own. Not subject to add_environment's reserved keys: it is how a local
  /// handler gets the developer's AWS_PROFILE, AWS_ACCESS_KEY_ID...
  std::vector<std::string> inherit_environment;
  /// Empty: the runtime inherits funcie's stdout and stderr. Set: each line the runtime
  /// writes (without its '\n'), with the environment's index (from 0) and the stream (1
  /// stdout, 2 stderr), on the emulator's executor. Copied into each runtime process.
  std::function<void(unsigned environment_index, int stream, std::string_view line)> output;
  /// With output. Empty: the runtime's pipes are read as it writes. Set: each read waits for
  /// it first (process::child_options::before_read): backpressure from a terminal behind.
  std::function<boost::asio::awaitable<void>()> output_room;
  /// Empty: nothing. Set: called on the emulator's executor when an invocation is handed to
  /// an environment, before it runs, with the environment's index and the request id, so
  /// that the lines `output` gets next can be tied to the invocation that printed them.
  std::function<void(unsigned environment_index, std::string_view request_id)> on_invoke;
  /// Empty: funcie's current directory. Set: the runtime's working directory, where a
  /// relative command is found, and LAMBDA_TASK_ROOT / LAMBDA_RUNTIME_DIR.
  std::string working_directory;
  /// Set only when asked (--credentials-from-profile): AWS_ACCESS_KEY_ID,
  /// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN for the runtime, as Lambda gives a
  /// function its execution role's credentials. Empty: the runtime gets none.
  std::map<std::string, std::string> role_credentials;

  /// arn:aws:lambda:REGION:ACCOUNT:function:NAME
  std::string arn() const;
};

/// Throws config_error naming the first bad value (a working_directory that is not a
/// directory included).
void validate(const function_config& config);

/// Parses "K=V" into the map; throws config_error for a malformed or reserved key.
void add_environment(function_config& config, const std::string& assignment);

/// The environment the runtime process starts with: what Lambda sets, then the variables
/// named in inherit_environment that funcie has, then the function's own variables.
/// `runtime_api` is host:port; `log_stream` names this environment.
std::vector<std::string> runtime_environment(const function_config& config,
                                             const std::string& runtime_api,
                                             const std::string& log_stream);

/// A log stream name as Lambda makes them: "YYYY/MM/DD/[$LATEST]<32 hex>".
std::string new_log_stream_name();

}  // namespace funcie::emulate
