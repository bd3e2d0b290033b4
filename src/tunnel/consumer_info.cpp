#include "tunnel/consumer_info.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <limits>

namespace funcie::tunnel {

std::string encode_consumer_card(const consumer_card& card) {
  boost::json::object info;
  if (card.at_ms) info["at_ms"] = *card.at_ms;
  info["host"] = card.host;
  info["pid"] = card.pid;
  info["since_ms"] = card.since_ms;
  info["in_flight"] = card.in_flight;
  if (card.ttl_ms) info["ttl_ms"] = *card.ttl_ms;
  if (!card.session.empty()) info["session"] = card.session;
  if (!card.routes.empty()) {
    boost::json::array routes;
    for (const auto& r : card.routes) routes.emplace_back(r);
    info["routes"] = std::move(routes);
  }
  info["version"] = 1;
  return boost::json::serialize(info);
}

namespace {

std::optional<std::int64_t> integer(const boost::json::object& object, std::string_view field) {
  const auto* v = object.if_contains(field);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() &&
      v->as_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return static_cast<std::int64_t>(v->as_uint64());
  }
  return std::nullopt;
}

}  // namespace

std::optional<consumer_card> decode_consumer_card(std::string_view json) {
  boost::system::error_code ec;
  const boost::json::value value = boost::json::parse(json, ec);
  const auto* object = ec ? nullptr : value.if_object();
  if (object == nullptr) return std::nullopt;
  consumer_card card;
  if (const auto* h = object->if_contains("host"); h != nullptr && h->is_string()) {
    card.host = std::string(h->as_string());
  }
  card.pid = integer(*object, "pid").value_or(0);
  card.since_ms = integer(*object, "since_ms").value_or(0);
  card.in_flight = integer(*object, "in_flight").value_or(0);
  card.ttl_ms = integer(*object, "ttl_ms");
  card.at_ms = integer(*object, "at_ms");
  if (const auto* id = object->if_contains("session"); id != nullptr && id->is_string()) {
    card.session = std::string(id->as_string());
  }
  if (const auto* routes = object->if_contains("routes"); routes != nullptr && routes->is_array()) {
    for (const auto& r : routes->as_array()) {
      if (r.is_string()) card.routes.emplace_back(r.as_string());
    }
  }
  return card;
}

}  // namespace funcie::tunnel
