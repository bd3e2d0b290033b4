#include "redis/cluster_map.hpp"

#include <algorithm>
#include <charconv>
#include <set>

namespace funcie::redis::cluster {
namespace {

bool is_text(const reply& r) {
  return r.type == reply::kind::string || r.type == reply::kind::status;
}

/// An integer given as a RESP integer or as digits.
std::optional<long long> as_number(const reply& r) {
  if (r.type == reply::kind::integer) return r.integer;
  if (!is_text(r)) return std::nullopt;
  long long value = 0;
  const char* end = r.str.data() + r.str.size();
  auto [ptr, ec] = std::from_chars(r.str.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

std::uint16_t as_slot(const reply& r, const char* what) {
  const auto value = as_number(r);
  if (!value || *value < 0 || *value >= slot_count) {
    throw topology_error(std::string("the topology gives ") + what + " that is not a slot number");
  }
  return static_cast<std::uint16_t>(*value);
}

std::uint16_t as_port(const reply& r) {
  const auto value = as_number(r);
  if (!value || *value < 1 || *value > 65535) {
    throw topology_error("the topology gives a node a port that is not from 1 to 65535");
  }
  return static_cast<std::uint16_t>(*value);
}

/// Hosts the topology names are connected to: keep them to what a host name or address may
/// hold (a hostile server must not steer us to odd strings).
std::string as_host(const reply& r, const node& asked) {
  if (r.type == reply::kind::nil) return asked.host;
  if (!is_text(r)) throw topology_error("the topology gives a node a host that is not text");
  if (r.str.empty() || r.str == "?") return asked.host;
  if (r.str.size() > 255) throw topology_error("the topology gives a node a host that is too long");
  for (char c : r.str) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == ':';
    if (!ok) throw topology_error("the topology gives a node a host with a character not allowed");
  }
  return r.str;
}

/// A flat [name, value, name, value...] array (a RESP2 map): the value of `name`, or null.
const reply* field(const reply& map, std::string_view name) {
  for (std::size_t i = 0; i + 1 < map.elements.size(); i += 2) {
    if (is_text(map.elements[i]) && map.elements[i].str == name) return &map.elements[i + 1];
  }
  return nullptr;
}

topology finish(std::vector<slot_range> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const slot_range& a, const slot_range& b) { return a.first < b.first; });
  topology out;
  std::set<std::pair<std::string, std::uint16_t>> masters;
  for (const auto& r : ranges) masters.emplace(r.master.host, r.master.port);
  out.masters = masters.size();
  out.ranges = std::move(ranges);
  return out;
}

}  // namespace

std::uint16_t crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (unsigned char byte : data) {
    crc ^= static_cast<std::uint16_t>(byte) << 8;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::uint16_t key_slot(std::string_view key) {
  const std::size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const std::size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return static_cast<std::uint16_t>(crc16(key) % slot_count);
}

std::string describe(const node& n) {
  if (n.host.find(':') != std::string::npos) return "[" + n.host + "]:" + std::to_string(n.port);
  return n.host + ":" + std::to_string(n.port);
}

std::optional<node> topology::owner(std::uint16_t slot) const {
  for (const auto& r : ranges) {
    if (slot >= r.first && slot <= r.last) return r.master;
  }
  return std::nullopt;
}

topology parse_shards(const reply& r, const node& asked, bool tls) {
  if (r.type != reply::kind::array) throw topology_error("CLUSTER SHARDS did not answer a list");
  std::vector<slot_range> ranges;
  for (const reply& shard : r.elements) {
    if (shard.type != reply::kind::array) throw topology_error("a shard is not a map");
    const reply* slots = field(shard, "slots");
    const reply* nodes = field(shard, "nodes");
    if (slots == nullptr || nodes == nullptr || slots->type != reply::kind::array ||
        nodes->type != reply::kind::array || slots->elements.size() % 2 != 0) {
      throw topology_error("a shard lacks its slots or nodes");
    }
    std::optional<node> master;
    for (const reply& n : nodes->elements) {
      if (n.type != reply::kind::array) throw topology_error("a shard's node is not a map");
      const reply* role = field(n, "role");
      const reply* health = field(n, "health");
      if (role == nullptr || !is_text(*role) || role->str != "master") continue;
      if (health != nullptr && is_text(*health) && health->str == "fail") continue;
      const reply* endpoint = field(n, "endpoint");
      if (endpoint == nullptr) endpoint = field(n, "ip");
      const reply* port = tls ? field(n, "tls-port") : field(n, "port");
      if (port == nullptr) port = tls ? field(n, "port") : field(n, "tls-port");
      if (port == nullptr) throw topology_error("a shard's master has no port");
      node m;
      m.host = endpoint == nullptr ? asked.host : as_host(*endpoint, asked);
      m.port = as_port(*port);
      master = std::move(m);
      break;
    }
    if (!master) continue;  // a shard without a live master (failover under way)
    for (std::size_t i = 0; i < slots->elements.size(); i += 2) {
      slot_range range;
      range.first = as_slot(slots->elements[i], "a range start");
      range.last = as_slot(slots->elements[i + 1], "a range end");
      if (range.last < range.first)
        throw topology_error("a shard's slot range ends before it starts");
      range.master = *master;
      ranges.push_back(std::move(range));
    }
  }
  return finish(std::move(ranges));
}

topology parse_slots(const reply& r, const node& asked) {
  if (r.type != reply::kind::array) throw topology_error("CLUSTER SLOTS did not answer a list");
  std::vector<slot_range> ranges;
  for (const reply& entry : r.elements) {
    if (entry.type != reply::kind::array || entry.elements.size() < 3 ||
        entry.elements[2].type != reply::kind::array || entry.elements[2].elements.size() < 2) {
      throw topology_error("a CLUSTER SLOTS entry is not [first, last, [host, port, ...], ...]");
    }
    slot_range range;
    range.first = as_slot(entry.elements[0], "a range start");
    range.last = as_slot(entry.elements[1], "a range end");
    if (range.last < range.first) throw topology_error("a slot range ends before it starts");
    const reply& master = entry.elements[2];
    range.master.host = as_host(master.elements[0], asked);
    range.master.port = as_port(master.elements[1]);
    ranges.push_back(std::move(range));
  }
  return finish(std::move(ranges));
}

std::optional<redirect> parse_redirect(std::string_view text, const node& asked) {
  redirect out;
  if (text.starts_with("MOVED ")) {
    text.remove_prefix(6);
  } else if (text.starts_with("ASK ")) {
    out.ask = true;
    text.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const std::size_t space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string_view slot_text = text.substr(0, space);
  std::string_view address = text.substr(space + 1);
  unsigned slot = 0;
  auto [ptr, ec] = std::from_chars(slot_text.data(), slot_text.data() + slot_text.size(), slot);
  if (ec != std::errc() || ptr != slot_text.data() + slot_text.size() || slot >= slot_count) {
    return std::nullopt;
  }
  out.slot = static_cast<std::uint16_t>(slot);
  const std::size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = address.substr(0, colon);
  const std::string_view port_text = address.substr(colon + 1);
  unsigned port = 0;
  auto [pptr, pec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (pec != std::errc() || pptr != port_text.data() + port_text.size() || port < 1 ||
      port > 65535) {
    return std::nullopt;
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  reply host_reply;
  host_reply.type = reply::kind::string;
  host_reply.str = std::string(host);
  try {
    out.target.host = as_host(host_reply, asked);
  } catch (const topology_error&) {
    return std::nullopt;
  }
  out.target.port = static_cast<std::uint16_t>(port);
  return out;
}

}  // namespace funcie::redis::cluster
