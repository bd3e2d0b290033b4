// A plain custom runtime on run_handler: greets the event it gets, fails an empty one.
#include <funcie/runtime/runtime.hpp>

int main() {
  funcie::runtime::run_handler([](const funcie::runtime::invocation_request& request) {
    if (request.payload.empty()) {
      return funcie::runtime::invocation_response::failure("empty event", "InvalidEvent");
    }
    return funcie::runtime::invocation_response::success("{\"hello\":" + request.payload + "}");
  });
  return 0;
}
