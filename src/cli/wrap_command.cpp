// funcie wrap: a Runtime API proxy that forwards invocations through the tunnel and runs
// the rest in CMD, the function's own runtime (src/forwarder/wrap.hpp).
#include "cli/command.hpp"
#include "forwarder/wrap.hpp"

#include <memory>
#include <utility>

namespace funcie::cli {

command add_wrap(CLI::App& app) {
  auto options = std::make_shared<forwarder::wrap_options>();
  auto* wrap = app.add_subcommand(
      "wrap",
      "Inside a Lambda function: offers each invocation to a connected consumer (funcie "
      "connect) and runs CMD, the function's own runtime, for the rest. Configured by "
      "FUNCIE_BACKEND, FUNCIE_APP and the other FUNCIE_* variables");
  wrap->add_option("--app", options->app,
                   "The tunnel's app name (default FUNCIE_APP, else AWS_LAMBDA_FUNCTION_NAME)");
  wrap->add_option("command", options->command, "The runtime command, after --")->required();

  return {wrap, [options]() -> int {
            auto upstream = lambda_runtime_api("wrap");
            if (!upstream) return exit_usage;
            options->upstream = std::move(*upstream);
            return forwarder::run_wrap(*options);
          }};
}

}  // namespace funcie::cli
