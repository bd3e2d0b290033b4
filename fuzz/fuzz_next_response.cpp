// The Runtime API client's view of GET .../invocation/next: raw HTTP -> invocation context.
#include "http_message.hpp"

#include "runtime_api/protocol.hpp"

#include <string>
#include <utility>
#include <vector>

namespace rt = funcie::runtime_api;
namespace fz = funcie::fuzz;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// The server sends what invocation_headers gives; the client must read back the same context.
void check_round_trip(const rt::invocation_context& context) {
  std::string deadline;
  auto headers = rt::invocation_headers(context, deadline);
  auto lookup = [&headers](std::string_view name) -> std::optional<std::string_view> {
    for (const auto& [key, value] : headers) {
      if (iequals(key, name)) return value;
    }
    return std::nullopt;
  };
  if (rt::parse_invocation_headers(lookup) != context) {
    fz::fail("invocation_headers does not round-trip through parse_invocation_headers");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fz::http::response_parser<fz::http::string_body> parser;
  if (!fz::parse_message(parser, data, size)) return 0;
  try {
    auto context = rt::parse_invocation_headers(fz::lookup_in(parser.get()));
    if (!rt::is_valid_request_id(context.request_id)) fz::fail("invalid request id accepted");
    if (context.deadline_ms < 0) fz::fail("negative deadline accepted");
    check_round_trip(context);
  } catch (const rt::protocol_error&) {
    // Refused with a clear message: the client logs it and asks for the next invocation.
  }
  return 0;
}
