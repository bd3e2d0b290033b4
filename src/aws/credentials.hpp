// The AWS credential chain as AWS SDKs resolve it, first match wins:
//   1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
//   2. the profile (AWS_PROFILE, else "default") in the shared credentials file
//      (AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials) and config file (AWS_CONFIG_FILE,
//      ~/.aws/config, sections "[profile NAME]"): static keys, then credential_process
//   3. the container endpoint: AWS_CONTAINER_CREDENTIALS_FULL_URI or
//      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (169.254.170.2), with
//      AWS_CONTAINER_AUTHORIZATION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
//   4. the instance metadata service, IMDSv2 (token then role then keys), endpoint
//      AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254; off with
//      AWS_EC2_METADATA_DISABLED=true
// Temporary credentials are refreshed 5 minutes before they expire. No message of this
// module ever contains a secret key or a session token.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace funcie::aws {

struct credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  ///< Empty for long-term keys.
  /// When temporary credentials expire; nullopt for keys that do not.
  std::optional<std::chrono::system_clock::time_point> expires;
  /// Where they came from, for messages: "environment", "profile dev (~/.aws/credentials)",
  /// "credential_process of profile dev", "container endpoint", "instance metadata".
  std::string source;
};

/// No source had credentials, or one was broken. The message lists what was tried and
/// what to do; it never contains a secret.
class credentials_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Reads an environment variable; returns nullptr when unset (std::getenv's contract).
using getenv_fn = std::function<const char*(const char*)>;

/// Bounds of the sources that run something or ask a server.
struct credential_options {
  /// How long credential_process may run (it may be a tool that logs in through the
  /// browser; the AWS CLI sets no bound at all).
  std::chrono::milliseconds process_timeout{60000};
  /// Each request to the container endpoint or the instance metadata service. Short, so
  /// that a laptop without those is not slowed (AWS SDKs use 1 s too).
  std::chrono::milliseconds metadata_timeout{1000};
  /// While cached credentials are inside the 5-minute margin but still valid, the chain is
  /// walked again at most this often (a source that only hands out short-lived ones is not
  /// asked before every request).
  std::chrono::milliseconds min_refresh_interval{10000};
};

/// The chain above. Thread-compatible; use it from one executor.
class credential_provider {
 public:
  credential_provider(boost::asio::any_io_executor executor, getenv_fn getenv);
  credential_provider(boost::asio::any_io_executor executor, getenv_fn getenv,
                      credential_options options);
  ~credential_provider();
  credential_provider(const credential_provider&) = delete;
  credential_provider& operator=(const credential_provider&) = delete;

  /// Credentials valid for at least the next 5 minutes (cached; the chain is walked again
  /// when they near expiry). Concurrent callers share one resolution. Throws
  /// credentials_error.
  boost::asio::awaitable<credentials> get();

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace funcie::aws
