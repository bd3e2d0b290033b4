// `funcie emulate`'s view of a Lambda Invoke call: raw HTTP -> function, invocation type,
// client context, and the JSON check of the payload.
#include "http_message.hpp"

#include "emulate/invoke_protocol.hpp"

#include <boost/json/parse.hpp>

namespace em = funcie::emulate;
namespace fz = funcie::fuzz;

namespace {

std::string_view view(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

// is_json validates without building a tree; it must agree with Boost.JSON's own parse.
void check_is_json(std::string_view bytes) {
  boost::system::error_code ec;
  boost::json::parse(bytes, ec);
  if (em::is_json(bytes) != !ec) fz::fail("is_json disagrees with boost::json::parse");
}

void check_target(std::string_view target) {
  try {
    auto ref = em::parse_invoke_target(target);
    if (ref && (ref->name.empty() || ref->name.size() > 64)) fz::fail("bad function name accepted");
  } catch (const em::protocol_error&) {
  }
}

void check_headers(const fz::http::request<fz::http::string_body>& request) {
  auto lookup = fz::lookup_in(request);
  try {
    em::parse_invocation_type(lookup("X-Amz-Invocation-Type").value_or(std::string_view{}));
  } catch (const em::protocol_error&) {
  }
  if (auto context = lookup("X-Amz-Client-Context")) {
    try {
      auto json = em::decode_client_context(*context);
      if (json.size() > 3583 || !em::is_json(json)) fz::fail("bad client context accepted");
    } catch (const em::protocol_error&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Also straight at the JSON check: most inputs are not HTTP, and this finds JSON faster.
  check_is_json(std::string_view(reinterpret_cast<const char*>(data), size));

  fz::http::request_parser<fz::http::string_body> parser;
  if (!fz::parse_message(parser, data, size)) return 0;
  const auto& request = parser.get();
  check_target(view(request.target()));
  check_headers(request);
  check_is_json(request.body());
  return 0;
}
