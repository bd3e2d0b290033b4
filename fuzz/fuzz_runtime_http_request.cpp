// The Runtime API server's view of a runtime's request: raw HTTP -> route -> error body.
#include "http_message.hpp"

#include "runtime_api/protocol.hpp"

#include <boost/json/parse.hpp>

#include <string>

namespace rt = funcie::runtime_api;
namespace fz = funcie::fuzz;

namespace {

std::string_view view(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

void check_route(const rt::route& route) {
  bool has_id = route.kind == rt::route_kind::response || route.kind == rt::route_kind::error;
  if (has_id != !route.request_id.empty()) fz::fail("request id set on the wrong route");
  if (has_id && !rt::is_valid_request_id(route.request_id)) fz::fail("invalid request id routed");
  // The client builds paths with route_path: what it builds must route back to the same place.
  auto again = rt::parse_route(route.kind == rt::route_kind::next ? "GET" : "POST",
                               rt::route_path(route.kind, route.request_id));
  if (!again || again->kind != route.kind || again->request_id != route.request_id) {
    fz::fail("route_path does not round-trip through parse_route");
  }
}

void check_error_body(std::string_view body, std::string_view type_header) {
  auto error = rt::parse_error(body, type_header);  // never throws on bad bytes
  boost::system::error_code ec;
  if (auto json = boost::json::parse(body, ec); ec || !json.is_object()) {
    // Lenient as Lambda: typed by the header (or "Unhandled"), with no message.
    rt::function_error expected{
        type_header.empty() ? "Unhandled" : std::string(type_header), {}, {}};
    if (error != expected) fz::fail("a body that is no JSON object did not give a bare error");
  }
  // What we serialize goes to callers and over the tunnel: it must be JSON whatever the bytes
  // were (a header may carry any octet), and read back exactly once it is.
  auto text = rt::format_error(error);
  if (auto json = boost::json::parse(text, ec); ec || !json.is_object()) {
    fz::fail("format_error wrote something that is not a JSON object");
  }
  auto back = rt::parse_error(text, "x");
  if (rt::parse_error(rt::format_error(back), "x") != back) {
    fz::fail("format_error does not round-trip through parse_error");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fz::http::request_parser<fz::http::string_body> parser;
  if (!fz::parse_message(parser, data, size)) return 0;
  const auto& request = parser.get();
  try {
    auto route = rt::parse_route(view(request.method_string()), view(request.target()));
    if (!route) return 0;
    check_route(*route);
    if (route->kind == rt::route_kind::error || route->kind == rt::route_kind::init_error) {
      auto type = fz::lookup_in(request)(rt::header::function_error_type);
      check_error_body(request.body(), type.value_or(std::string_view{}));
    }
  } catch (const rt::protocol_error&) {
    // Refused with a clear message: what the server answers 400 with.
  }
  return 0;
}
