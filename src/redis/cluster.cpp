#include "redis/cluster.hpp"

#include <map>
#include <mutex>

namespace funcie::redis::cluster {
namespace {

struct entry {
  knowledge what;
  std::map<std::uint16_t, node> corrections;  ///< From MOVED, until the next learn().
};

std::mutex directory_mutex;
std::map<std::string, entry>& directory() {
  static std::map<std::string, entry> d;
  return d;
}

}  // namespace

std::string deployment_key(const endpoint& e) {
  std::string key = e.tls ? "rediss://" : "redis://";
  key += e.user;
  key += '@';
  key += describe(e);
  for (const auto& s : e.more_seeds) key += "," + describe(node{s.host, s.port});
  return key;
}

knowledge known(const std::string& key) {
  std::lock_guard lock(directory_mutex);
  auto it = directory().find(key);
  if (it == directory().end()) return {};
  return it->second.what;
}

std::optional<node> owner(const std::string& key, std::uint16_t slot) {
  std::lock_guard lock(directory_mutex);
  auto it = directory().find(key);
  if (it == directory().end()) return std::nullopt;
  if (auto c = it->second.corrections.find(slot); c != it->second.corrections.end()) {
    return c->second;
  }
  return it->second.what.map.owner(slot);
}

void learn(const std::string& key, knowledge k) {
  std::lock_guard lock(directory_mutex);
  auto& e = directory()[key];
  e.what = std::move(k);
  e.corrections.clear();
}

void moved(const std::string& key, std::uint16_t slot, const node& target) {
  std::lock_guard lock(directory_mutex);
  directory()[key].corrections[slot] = target;
}

}  // namespace funcie::redis::cluster
