// funcie proxy: the proxy-only bootstrap, deployed in place of the function's own code; every
// invocation goes to `funcie connect` (src/forwarder/proxy.hpp).
#include "cli/command.hpp"
#include "forwarder/proxy.hpp"

#include <memory>
#include <utility>

namespace funcie::cli {

command add_proxy(CLI::App& app) {
  auto options = std::make_shared<forwarder::proxy_options>();
  auto* proxy = app.add_subcommand(
      "proxy",
      "Inside a Lambda function, in place of its code: sends every invocation to `funcie "
      "connect` on your machine and returns its answer; with nobody connected the caller gets "
      "the error Funcie.NoConsumer at once. Deploy the funcie binary renamed `bootstrap` on "
      "provided.al2023: named so and run with no arguments, funcie runs this. Configured by "
      "FUNCIE_BACKEND (required), FUNCIE_APP and the other FUNCIE_* variables");
  proxy->add_option("--app", options->app,
                    "The tunnel's app name (default FUNCIE_APP, else AWS_LAMBDA_FUNCTION_NAME)");

  return {proxy, [options]() -> int {
            auto upstream = lambda_runtime_api("proxy");
            if (!upstream) return exit_usage;
            options->upstream = std::move(*upstream);
            return forwarder::run_proxy(*options);
          }};
}

}  // namespace funcie::cli
