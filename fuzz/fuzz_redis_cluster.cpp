// A cluster node's topology and redirection replies (src/redis/cluster_map.hpp): the input is
// RESP, as a server (maybe hostile) sends it, parsed as CLUSTER SHARDS and CLUSTER SLOTS;
// an error reply is parsed as MOVED / ASK. Only topology_error may be thrown, and every node
// named must have a port and a host of allowed characters.
#include "redis/cluster_map.hpp"
#include "redis/reply.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace cl = funcie::redis::cluster;

namespace {

void check(const cl::topology& t) {
  for (const auto& r : t.ranges) {
    if (r.first > r.last || r.last >= cl::slot_count) std::abort();
    if (r.master.port == 0 || r.master.host.empty()) std::abort();
    if (t.owner(r.first) == std::nullopt) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const cl::node asked{"seed", 7000};
  (void)cl::key_slot(text);
  if (auto r = cl::parse_redirect(text, asked)) {
    if (r->target.port == 0 || r->target.host.empty() || r->slot >= cl::slot_count) std::abort();
  }
  funcie::redis::reply_reader reader;
  reader.feed(text.data(), text.size());
  try {
    while (auto reply = reader.next()) {
      try {
        check(cl::parse_shards(*reply, asked, size % 2 == 0));
      } catch (const cl::topology_error&) {
      }
      try {
        check(cl::parse_slots(*reply, asked));
      } catch (const cl::topology_error&) {
      }
    }
  } catch (const funcie::redis::reply_error&) {
  }
  return 0;
}
