// `funcie wrap -- CMD`: a Runtime API proxy for a runtime of any language. CMD gets its own
// Runtime API (ours); each invocation from the real one is offered to the tunnel first and
// handed to CMD unchanged when nobody takes it. docs/tunnel.md.
#pragma once

#include <string>
#include <vector>

namespace funcie::forwarder {

struct wrap_options {
  /// The runtime to run: CMD and its arguments.
  std::vector<std::string> command;
  /// The real Runtime API (AWS_LAMBDA_RUNTIME_API of wrap itself), host:port.
  std::string upstream;
  /// Overrides FUNCIE_APP when not empty.
  std::string app;
};

/// Runs the proxy until CMD exits (returns its exit status, 128+N for signal N), a SIGTERM
/// or SIGINT (passed on to CMD) ends it, or the real Runtime API goes away (returns 1). A bad
/// FUNCIE_* value is the init error "Funcie.ConfigError" and exit_config
/// (forwarder/cloud_runtime.hpp). Never throws.
int run_wrap(const wrap_options& options);

}  // namespace funcie::forwarder
