// A hello function on funcie::start: deployed, it answers from the cloud unless you run the
// same binary on your machine (with FUNCIE_BACKEND set), which then answers for it.
//   {"message": "hello from the cloud"}  or  {"message": "hello from your machine"}
#include <funcie/funcie.hpp>

#include <cstdlib>
#include <string>

int main() {
  using funcie::runtime::invocation_request;
  using funcie::runtime::invocation_response;
  return funcie::start("hello", [](const invocation_request&) {
    const bool in_cloud = std::getenv("AWS_LAMBDA_RUNTIME_API") != nullptr;
    const std::string where = in_cloud ? "the cloud" : "your machine";
    return invocation_response::success(R"({"message":"hello from )" + where + R"("})");
  });
}
