// funcie for C++ Lambda functions: one call in main serves the handler in the cloud and on
// the developer's machine. Only standard types appear here.
//
//   int main() {
//     return funcie::start("my-app", [](const funcie::runtime::invocation_request& request) {
//       return funcie::runtime::invocation_response::success(request.payload);
//     });
//   }
//
// In Lambda (AWS_LAMBDA_RUNTIME_API is set) this is the runtime loop of run_handler with the
// forwarder in front: each invocation is offered to a consumer connected to the app's
// tunnel (FUNCIE_BACKEND) and runs in the cloud, in this process, when nobody takes it.
// On a laptop (no AWS_LAMBDA_RUNTIME_API) the same program is that consumer: it joins the
// tunnel and runs the invocations the cloud forwards with the same handler, in a debugger
// if you like, until Ctrl-C.
#pragma once

#include <funcie/runtime/runtime.hpp>

#include <cstddef>
#include <string>

namespace funcie {

/// Knobs of start(); the defaults read everything from the environment, once, when start()
/// is called.
struct start_options {
  /// In Lambda, the runtime loop's knobs, as for run_handler. `run.runtime_api` empty reads
  /// AWS_LAMBDA_RUNTIME_API; when that is not set either, start() runs as the local consumer.
  runtime::run_options run;
  /// The broker's URL (redis://host:6379, rediss://user:password@host:6380, sqs://...).
  /// Empty reads FUNCIE_BACKEND. In Lambda, empty and no FUNCIE_BACKEND means forwarding is
  /// off.
  std::string backend;
};

/// Serves `handler` for the tunnel named `app` (empty: FUNCIE_APP, else the Lambda function's
/// name), in Lambda or locally as described above, and returns the process exit code, as
/// run_handler does: 0 after the Runtime API went away (or `run.max_invocations`) or, run
/// locally, after Ctrl-C; 1 when it cannot run at all; 2 for a bad configuration (a FUNCIE_*
/// variable; in Lambda also reported as the init error "Funcie.ConfigError"). Other settings:
/// FUNCIE_HEARTBEAT_MS, FUNCIE_CONNECT_TIMEOUT_MS, FUNCIE_DEADLINE_MARGIN_MS, FUNCIE_CA_FILE,
/// FUNCIE_TLS_VERIFY (docs/tunnel.md). The handler runs one invocation at a time on the
/// thread that called start(), in Lambda and locally (where the tunnel's event loop runs on
/// a thread of its own meanwhile), and an exception it throws becomes a function error, as
/// with run_handler.
int start(std::string app, runtime::handler_function handler);

/// start() with options.
int start(std::string app, runtime::handler_function handler, const start_options& options);

}  // namespace funcie
