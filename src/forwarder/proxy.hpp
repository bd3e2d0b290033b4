// `funcie proxy`: the proxy-only bootstrap (seed 003). A Lambda function deployed in place of
// the real one: every invocation goes through the tunnel to `funcie connect` on a developer's
// machine and the caller gets its answer; with nobody connected the caller gets the error
// Funcie.NoConsumer at once. There is no code of the function in the cloud. docs/tunnel.md.
#pragma once

#include <string>

namespace funcie::forwarder {

struct proxy_options {
  /// The real Runtime API (AWS_LAMBDA_RUNTIME_API), host:port.
  std::string upstream;
  /// Overrides FUNCIE_APP when not empty.
  std::string app;
};

/// Serves invocations until SIGTERM or SIGINT (returns 0) or the real Runtime API goes away
/// (returns 1). No FUNCIE_BACKEND, or a bad FUNCIE_* value, is reported to Lambda as the
/// init error "Funcie.ConfigError" and returns exit_config (2). Never throws.
int run_proxy(const proxy_options& options);

}  // namespace funcie::forwarder
