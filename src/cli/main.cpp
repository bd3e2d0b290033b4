// funcie: the developer's binary, one subcommand per job (src/cli/*_command.cpp). The cloud
// side's wrap and proxy are also in the smaller funcie-cloud (src/cloud/main.cpp), which
// the layer and the proxy zip ship.
#include "cli/command.hpp"

int main(int argc, char** argv) {
  using namespace funcie::cli;
  const command_factory commands[] = {add_emulate, add_wrap,   add_proxy,  add_connect, add_status,
                                      add_package, add_doctor, add_secret, add_invoke,  add_ui};
  return run_main(argc, argv,
                  "funcie: develop AWS Lambda functions live, on your machine, invoked by the "
                  "cloud",
                  commands);
}
