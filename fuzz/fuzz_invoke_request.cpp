// `funcie emulate`'s view of a Lambda API call: raw HTTP -> operation, function, invocation
// type, log type, client context, and the JSON check of the payload; and the event-stream
// frame it would send the payload back in.
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

// The other operations' routes; and the event-stream encoder, whose frame must read back.
void check_route(std::string_view method, std::string_view target) {
  try {
    auto route = em::parse_api_route(method, target);
    if (route && route->op != em::operation::list_functions &&
        (route->function.name.empty() || route->function.name.size() > 64)) {
      fz::fail("bad function name accepted by parse_api_route");
    }
  } catch (const em::protocol_error&) {
  }
}

void check_event_message(std::string_view payload) {
  auto message = em::encode_event_message({{":event-type", "PayloadChunk"}}, payload);
  auto u32 = [&](std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(message[at + i]);
    return v;
  };
  if (u32(0) != message.size()) fz::fail("event message length is wrong");
  if (u32(8) != em::crc32(std::string_view(message).substr(0, 8))) fz::fail("prelude CRC");
  if (u32(message.size() - 4) !=
      em::crc32(std::string_view(message).substr(0, message.size() - 4))) {
    fz::fail("message CRC");
  }
  if (std::string_view(message).substr(message.size() - 4 - payload.size(), payload.size()) !=
      payload) {
    fz::fail("payload not carried as is");
  }
}

void check_headers(const fz::http::request<fz::http::string_body>& request) {
  auto lookup = fz::lookup_in(request);
  try {
    em::parse_invocation_type(lookup("X-Amz-Invocation-Type").value_or(std::string_view{}));
  } catch (const em::protocol_error&) {
  }
  try {
    em::parse_log_type(lookup("X-Amz-Log-Type").value_or(std::string_view{}));
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
  check_route(view(request.method_string()), view(request.target()));
  check_event_message(request.body());
  check_headers(request);
  check_is_json(request.body());
  return 0;
}
