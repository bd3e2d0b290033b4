// funcie-cloud: the part of funcie that runs inside Lambda, `funcie wrap` and `funcie proxy`
// and nothing else, so that the layer (/opt/funcie-wrapper) and the proxy zip (bootstrap)
// carry no emulator, console, project file, doctor or zip writer (docs/ARCHITECTURE.md).
// Named `bootstrap` or `funcie-wrapper` it acts as the developer's funcie does.
#include "cli/command.hpp"

int main(int argc, char** argv) {
  using namespace funcie::cli;
  const command_factory commands[] = {add_wrap, add_proxy};
  return run_main(argc, argv,
                  "funcie (cloud side): the Runtime API proxy and the proxy-only bootstrap that "
                  "run inside a Lambda function",
                  commands);
}
