// funcie::start with the handler of hello.cpp: links funcie::start from the installed package.
#include <funcie/funcie.hpp>

int main() {
  return funcie::start("downstream", [](const funcie::runtime::invocation_request& request) {
    return funcie::runtime::invocation_response::success(request.payload);
  });
}
