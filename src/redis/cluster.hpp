// What this process knows about the Redis deployments it talks to: standalone or a cluster,
// and a cluster's slot map. Shared by all connections to the same seeds, so that standalone
// Redis is probed once per process and a cluster's map is refreshed once per change
// (docs/tunnel.md, "Redis Cluster and managed Redis"). Thread-safe.
#pragma once

#include "redis/cluster_map.hpp"
#include "redis/url.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace funcie::redis::cluster {

enum class mode { unknown, standalone, cluster };

struct knowledge {
  mode kind = mode::unknown;
  topology map;
  bool sharded_pubsub = false;  ///< SSUBSCRIBE/SPUBLISH exist (the map came from CLUSTER SHARDS).
};

/// The directory key of a URL's deployment: scheme, user and seed nodes (no password).
std::string deployment_key(const endpoint& e);

/// What is known, with slots learnt from MOVED replies applied.
knowledge known(const std::string& key);
/// The master that serves `slot`, as last learnt (MOVED first, then the map).
std::optional<node> owner(const std::string& key, std::uint16_t slot);
/// Replaces what is known (after a topology query). Forgets the MOVED corrections.
void learn(const std::string& key, knowledge k);
/// A MOVED reply: `slot` is served by `target` now.
void moved(const std::string& key, std::uint16_t slot, const node& target);

}  // namespace funcie::redis::cluster
