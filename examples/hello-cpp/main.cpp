// Hello from C++: a small Lambda function. It takes the name from a plain event
// ({"name": "Ada"}) or from an API Gateway event (query string, path parameter or JSON body)
// and answers {"message": "Hello, Ada, from C++"}. An event without a name is a function
// error of type "InvalidEvent" that says what was expected.
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>

#include "funcie/runtime/runtime.hpp"

namespace {

using funcie::runtime::invocation_request;
using funcie::runtime::invocation_response;

// The string at object[key], if there is one and it is not empty.
std::optional<std::string> text(const boost::json::object& object, std::string_view key) {
  const auto* value = object.if_contains(key);
  const auto* string = value != nullptr ? value->if_string() : nullptr;
  if (string == nullptr || string->empty()) return std::nullopt;
  return std::string(*string);
}

std::optional<std::string> name_in(const boost::json::object& event) {
  if (auto name = text(event, "name")) return name;
  // API Gateway: ?name=Ada, /hello/{name}, or a JSON body {"name": "Ada"}.
  for (const char* parameters : {"queryStringParameters", "pathParameters"}) {
    const auto* value = event.if_contains(parameters);
    if (value != nullptr && value->is_object()) {
      if (auto name = text(value->get_object(), "name")) return name;
    }
  }
  if (auto body = text(event, "body")) {
    boost::system::error_code ec;
    const boost::json::value parsed = boost::json::parse(*body, ec);
    if (!ec && parsed.is_object()) return text(parsed.get_object(), "name");
  }
  return std::nullopt;
}

invocation_response hello(const invocation_request& request) {
  boost::system::error_code ec;
  const boost::json::value event = boost::json::parse(request.payload, ec);
  if (ec || !event.is_object()) {
    return invocation_response::failure("the event is not a JSON object", "InvalidEvent");
  }
  const auto name = name_in(event.get_object());
  if (!name) {
    return invocation_response::failure(
        R"(the event has no "name": send {"name": "Ada"} or call through API Gateway with ?name=Ada)",
        "InvalidEvent");
  }
  const boost::json::object answer{{"message", "Hello, " + *name + ", from C++"}};
  return invocation_response::success(boost::json::serialize(answer));
}

}  // namespace

int main() {
  funcie::runtime::run_handler(hello);
}
