// funcie doctor: checks one side's configuration (the developer's, or a function's
// environment before it is deployed) and says what to fix. Each check gives one finding:
// ok, info, warning or FAILED, with the fix for a problem. No finding ever holds a secret:
// broker URLs go through tunnel::redact_url, secrets and AWS keys are never read back.
#pragma once

#include "util/user_error.hpp"

#include "tunnel/backend.hpp"
#include "tunnel/seal.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::doctor {

enum class level { ok, info, warning, failed };

struct finding {
  level severity = level::ok;
  std::string what;    ///< The thing checked: "backend URL", "broker", "secret", ...
  std::string detail;  ///< What was found (never a secret).
  std::string fix;     ///< For a warning or a failure: what to do. May be empty.
};

/// "ok       backend URL: redis://127.0.0.1:6379\n", and a second line "         fix: ..."
/// when there is a fix.
std::string format_finding(const finding& f);

/// The findings of one run, in order; `on_finding` (if set) sees each as it is added, so a
/// slow check does not hold back the lines before it.
class report {
 public:
  std::function<void(const finding&)> on_finding;

  void add(level severity, std::string what, std::string detail, std::string fix = {});
  void add(finding f);
  const std::vector<finding>& findings() const { return findings_; }
  std::size_t count(level severity) const;
  bool failed() const { return count(level::failed) > 0; }

 private:
  std::vector<finding> findings_;
};

/// One line for the end of a run: "funcie doctor: all checks passed" or
/// "funcie doctor: 2 FAILED, 1 warning: fix the FAILED lines above".
std::string summary(const report& r);

using getenv_function = std::function<const char*(const char*)>;

// ---- checks without I/O ------------------------------------------------------------------

/// The backend URL's form (tunnel::check_backend_url).
finding check_backend_url(std::string_view url);
/// The app name; `flag` names where it comes from in the fix ("--app", "FUNCIE_APP").
finding check_app(std::string_view app, std::string_view flag);

struct secret_check {
  finding result;
  tunnel::keyring keys;  ///< Empty when no secret is set or it is unusable.
};
/// The shared secret: from `secret_file` when not empty, else FUNCIE_SECRET and
/// FUNCIE_SECRET_PREVIOUS through `getenv` (tunnel::load_keyring). None: a warning; unusable:
/// FAILED with the fix; usable: ok with its key id. `for_function`: the advice names the
/// function's variables instead of --secret-file.
secret_check check_secret(std::string_view secret_file, bool encrypt, const getenv_function& getenv,
                          bool for_function = false);

// ---- a function's environment (funcie doctor --function-env) -----------------------------

/// An --env-file that cannot be read as KEY=VALUE lines or a JSON object.
class env_file_error : public util::user_error {
 public:
  using util::user_error::user_error;
};

using environment = std::map<std::string, std::string>;

/// A function's environment as text: a JSON object of strings (what `aws lambda
/// get-function-configuration --query Environment.Variables` prints), or KEY=VALUE lines
/// (blank lines and lines starting with '#' skipped, an optional leading "export ", values
/// optionally in single or double quotes). `path` names the file in errors, which never
/// quote a value. Throws env_file_error.
environment parse_environment(std::string_view text, std::string_view path);

/// What the function's environment gives, once checked.
struct function_check {
  /// The backend the function would use (url, app, queues, timing, TLS, keys); nullopt when
  /// the environment does not configure one that works.
  std::optional<tunnel::backend_options> backend;
  bool app_known = true;  ///< False when FUNCIE_APP is unset and no function name was given.
};

/// Checks `env` with the forwarder's own reader (forwarder::config_from_environment) and
/// adds the findings: FUNCIE_BACKEND set, every FUNCIE_* value well-formed, unknown FUNCIE_*
/// names (typos), the app, the secret, TLS and CA file, the SQS queues,
/// AWS_LAMBDA_EXEC_WRAPPER. `function_name` stands in for AWS_LAMBDA_FUNCTION_NAME (which
/// Lambda sets) when the environment lacks it.
function_check check_function_environment(const environment& env, std::string_view function_name,
                                          report& out);

// ---- checks that reach the broker ---------------------------------------------------------

struct reach_options {
  /// Bound of each attempt to reach the broker (connect + AUTH + PING; one SQS call).
  std::chrono::milliseconds timeout{3000};
  /// The environment the AWS settings and credentials come from (this machine's).
  getenv_function getenv;
  /// The backend is the function's: a failure to reach it from here is a warning (the
  /// function reaches it from its own network), not a failure.
  bool from_function = false;
};

/// Reaches the broker: Redis (connect, TLS, AUTH, SELECT, PING, server version) or SQS
/// (settings, region, credentials, GetQueueAttributes on each queue). Adds a finding per
/// step; returns true when the broker answered.
boost::asio::awaitable<bool> check_broker(boost::asio::any_io_executor executor,
                                          tunnel::backend_options backend, reach_options options,
                                          report& out);

/// Who is connected to the app now (tunnel::list_consumers), as information.
boost::asio::awaitable<void> check_consumers(boost::asio::any_io_executor executor,
                                             tunnel::backend_options backend, report& out);

}  // namespace funcie::doctor
