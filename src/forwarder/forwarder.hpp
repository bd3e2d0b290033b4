// The cloud side of the tunnel, shared by `funcie wrap` and funcie::start: for each
// invocation, offer it to a connected consumer and turn whatever comes back into a Runtime
// API result; or say "run it yourself" when nobody takes it. docs/tunnel.md.
#pragma once

#include "runtime_api/server.hpp"
#include "tunnel/backend.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace funcie::forwarder {

/// A FUNCIE_* variable is malformed; the message names it and says what is allowed.
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct forwarder_config {
  /// Empty: forwarding is off (no FUNCIE_BACKEND); every invocation runs in the cloud.
  tunnel::backend_options backend;
  /// The forwarder answers this long before the Lambda deadline (FUNCIE_DEADLINE_MARGIN_MS).
  std::chrono::milliseconds deadline_margin{500};
  /// The function as Lambda describes it in the environment (AWS_LAMBDA_FUNCTION_NAME...).
  tunnel::function_info function;
  /// FUNCIE_FORWARD_CREDENTIALS=1: the function's AWS credentials travel with each request
  /// (a consumer still uses them only with --forward-credentials).
  bool forward_credentials = false;

  bool enabled() const { return !backend.url.empty(); }
};

/// Reads FUNCIE_BACKEND, FUNCIE_APP (default AWS_LAMBDA_FUNCTION_NAME), FUNCIE_HEARTBEAT_MS,
/// FUNCIE_CONNECT_TIMEOUT_MS, FUNCIE_DEADLINE_MARGIN_MS, FUNCIE_CA_FILE, FUNCIE_TLS_VERIFY,
/// FUNCIE_SECRET, FUNCIE_SECRET_PREVIOUS, FUNCIE_ENCRYPT
/// and Lambda's own variables through `getenv`. `app` overrides FUNCIE_APP when not empty.
/// Throws config_error.
forwarder_config config_from_environment(const std::function<const char*(const char*)>& getenv,
                                         std::string_view app = {});

class forwarder {
 public:
  /// Makes the backend from config.backend when forwarding is on (no I/O yet: it connects
  /// on first use). Throws tunnel::backend_config_error for a URL the backend refuses.
  forwarder(boost::asio::any_io_executor executor, forwarder_config config);
  /// With a backend of the caller's (tests); null means forwarding is off.
  forwarder(forwarder_config config, std::unique_ptr<tunnel::forwarder_backend> backend);
  ~forwarder();
  forwarder(const forwarder&) = delete;
  forwarder& operator=(const forwarder&) = delete;

  /// nullopt: nobody took it (or forwarding is off): run it in the cloud, it will never run
  /// anywhere else. Otherwise the result to post for it: the consumer's answer byte for byte,
  /// or a function error ("Funcie.ConsumerLost", "Funcie.ConsumerLeft", "Funcie.Timeout",
  /// "Funcie.BrokerLost") with a clear message. Never throws.
  boost::asio::awaitable<std::optional<runtime_api::result>> forward(
      const runtime_api::invocation& invocation);

  const forwarder_config& config() const { return config_; }

  /// Why the last invocation that returned nullopt was not taken ("no consumer", "broker
  /// unreachable: ..."), for a caller that must explain it (funcie proxy). Never a secret.
  const std::string& last_not_taken_reason() const { return last_reason_; }

 private:
  forwarder_config config_;
  std::unique_ptr<tunnel::forwarder_backend> backend_;
  std::string last_reason_;
};

}  // namespace funcie::forwarder
