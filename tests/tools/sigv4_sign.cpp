// Signs requests with funcie's SigV4, for tests/integration/sigv4_smithy.test.mjs. Reads
// one JSON request per line on stdin:
//   {"method","host","path","query","headers":[[name,value]…],"payload","region","service",
//    "time":"2015-08-30T12:36:00Z","access_key_id","secret_access_key","session_token"}
// and prints one JSON line per request, in order:
//   {"authorization","amz_date","security_token","canonical_request"} or {"error": "…"}.
#include "aws/credentials.hpp"
#include "aws/sigv4.hpp"

#include <boost/json.hpp>

#include <ctime>
#include <iostream>
#include <stdexcept>
#include <string>

namespace aws = funcie::aws;
namespace json = boost::json;

namespace {

std::string text(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return (v != nullptr && v->is_string()) ? std::string(v->get_string()) : std::string();
}

std::chrono::system_clock::time_point parse_time(const std::string& iso) {
  std::tm tm{};
  if (std::sscanf(iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    throw std::invalid_argument("time is not ISO 8601: " + iso);
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

json::object sign_one(const json::object& request) {
  aws::signing_input in;
  in.method = text(request, "method");
  in.host = text(request, "host");
  in.path = text(request, "path");
  in.query = text(request, "query");
  if (const json::value* headers = request.if_contains("headers")) {
    for (const json::value& pair : headers->as_array()) {
      const json::array& kv = pair.as_array();
      in.headers.emplace_back(std::string(kv.at(0).as_string()), std::string(kv.at(1).as_string()));
    }
  }
  const std::string payload = text(request, "payload");
  in.payload = payload;
  in.region = text(request, "region");
  in.service = text(request, "service");
  in.time = parse_time(text(request, "time"));
  aws::credentials creds;
  creds.access_key_id = text(request, "access_key_id");
  creds.secret_access_key = text(request, "secret_access_key");
  creds.session_token = text(request, "session_token");

  const aws::signature s = aws::sign(in, creds);
  return json::object{{"authorization", s.authorization},
                      {"amz_date", s.amz_date},
                      {"security_token", s.security_token},
                      {"canonical_request", s.canonical_request}};
}

}  // namespace

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    json::object answer;
    try {
      answer = sign_one(json::parse(line).as_object());
    } catch (const std::exception& e) {
      answer = json::object{{"error", e.what()}};
    }
    std::cout << json::serialize(answer) << '\n';
  }
  std::cout.flush();
  return 0;
}
