// Redis URLs (FUNCIE_REDIS_URL, --redis): parse_url throws url_error and nothing else, its
// messages do not depend on the password, redact() never throws, and a redacted URL parses to
// the same endpoint with the password "****".
#include "redis/url.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace rd = funcie::redis;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

struct outcome {
  std::optional<rd::endpoint> endpoint;
  std::string message;
};

outcome parse(std::string_view url) {
  outcome out;
  try {
    out.endpoint = rd::parse_url(url);
  } catch (const rd::url_error& e) {
    out.message = e.what();
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view url(reinterpret_cast<const char*>(data), size);
  outcome original = parse(url);
  std::string redacted = rd::redact(url);
  outcome again = parse(redacted);

  if (original.endpoint) {
    const rd::endpoint& e = *original.endpoint;
    if (e.host.empty()) fail("empty host accepted");
    if (e.port == 0) fail("port 0 accepted");
    if (e.db < 0) fail("negative db accepted");
    if (rd::describe(e).empty()) fail("empty description");
    if (!again.endpoint) fail("a redacted URL does not parse");
    rd::endpoint expected = e;
    if (!expected.password.empty()) expected.password = "****";
    if (!(*again.endpoint == expected)) fail("a redacted URL parses to another endpoint");
  } else if (original.message.find("in the password") == std::string::npos) {
    // The failure was not about the password: replacing it must not change the message.
    if (again.endpoint || again.message != original.message) {
      fail("the error message depends on the password");
    }
  }
  return 0;
}
