// A real Redis Cluster for tests: 3 masters + 3 replicas of /usr/bin/redis-server on free
// loopback ports (each a test::redis_server in its own directory), joined with
// `redis-cli --cluster create`, stopped by pid. A short cluster-node-timeout (1000 ms) keeps
// a failover quick. Header-only.
//
//   funcie::test::redis_cluster cluster;
//   cluster.url(i)           "redis://127.0.0.1:PORT" of node i (any node is a seed)
//   cluster.owner_of(key)    the index of the master that serves the key's slot
//   cluster.kill(i)          SIGKILL node i (a master dies: its replica takes over)
#pragma once

#include "redis/redis_server.hpp"

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace funcie::test {

class redis_cluster {
 public:
  explicit redis_cluster(int masters = 3, int replicas_each = 1, bool tls = false) {
    const int total = masters * (1 + replicas_each);
    for (int i = 0; i < total; ++i) {
      redis_server_options o;
      o.tls = tls;
      if (tls && i > 0) o.certs_from = nodes_[0]->dir().string();
      // The bus port is the port + 10000 unless given: a free port above 55535 would overflow.
      o.extra_args = {"--cluster-enabled",
                      "yes",
                      "--cluster-port",
                      std::to_string(redis_server::free_port()),
                      "--cluster-node-timeout",
                      "1000",
                      "--cluster-config-file",
                      "nodes.conf",
                      "--cluster-replica-validity-factor",
                      "0",
                      "--cluster-allow-replica-migration",
                      "no"};
      if (tls)
        o.extra_args.insert(o.extra_args.end(),
                            {"--tls-cluster", "yes", "--tls-replication", "yes"});
      nodes_.push_back(std::make_unique<redis_server>(o));
    }
    std::vector<std::string> create{"--cluster", "create"};
    for (const auto& n : nodes_) create.push_back(n->host() + ":" + std::to_string(n->port()));
    create.insert(create.end(),
                  {"--cluster-replicas", std::to_string(replicas_each), "--cluster-yes"});
    nodes_[0]->cli(create);
    wait_until_ok();
  }

  std::size_t size() const { return nodes_.size(); }
  redis_server& node(std::size_t i) { return *nodes_.at(i); }
  std::string url(std::size_t i) const { return nodes_.at(i)->url(); }

  /// redis-cli on any live node.
  std::string cli(const std::vector<std::string>& args) {
    for (auto& n : nodes_) {
      if (n->running()) return n->cli(args);
    }
    throw std::runtime_error("redis_cluster: no node is running");
  }

  int slot_of(const std::string& key) { return std::stoi(cli({"CLUSTER", "KEYSLOT", key})); }

  /// The index of the running master that serves `slot` (as that master says), or -1.
  int owner_of_slot(int slot) {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (!nodes_[i]->running()) continue;
      const std::string role = nodes_[i]->cli({"ROLE"});
      if (role.rfind("master", 0) != 0) continue;
      // COUNTKEYSINSLOT answers only on the owner; elsewhere it is fine too, so ask the map.
      const std::string nodes = nodes_[i]->cli({"CLUSTER", "NODES"});
      std::size_t pos = 0;
      while (pos < nodes.size()) {
        std::size_t end = nodes.find('\n', pos);
        if (end == std::string::npos) end = nodes.size();
        const std::string line = nodes.substr(pos, end - pos);
        pos = end + 1;
        if (line.find("myself") == std::string::npos) continue;
        // Ranges are the fields after the 8th.
        std::size_t field = 0, start = 0;
        while (start < line.size()) {
          std::size_t space = line.find(' ', start);
          if (space == std::string::npos) space = line.size();
          const std::string f = line.substr(start, space - start);
          start = space + 1;
          if (++field <= 8 || f.empty() || f[0] == '[') continue;
          const std::size_t dash = f.find('-');
          const int first = std::stoi(f.substr(0, dash));
          const int last = dash == std::string::npos ? first : std::stoi(f.substr(dash + 1));
          if (slot >= first && slot <= last) return static_cast<int>(i);
        }
      }
    }
    return -1;
  }

  int owner_of(const std::string& key) { return owner_of_slot(slot_of(key)); }

  /// Index of a running master other than `not_this`.
  int other_master(int not_this) {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (static_cast<int>(i) == not_this || !nodes_[i]->running()) continue;
      if (nodes_[i]->cli({"ROLE"}).rfind("master", 0) == 0) return static_cast<int>(i);
    }
    return -1;
  }

  /// The node's cluster id (CLUSTER MYID).
  std::string id_of(std::size_t i) {
    std::string id = nodes_.at(i)->cli({"CLUSTER", "MYID"});
    while (!id.empty() && (id.back() == '\n' || id.back() == '\r')) id.pop_back();
    return id;
  }

  /// Waits until every running node reports cluster_state:ok and all slots served.
  void wait_until_ok(std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      bool ok = true;
      for (auto& n : nodes_) {
        if (!n->running()) continue;
        const std::string info = n->cli({"CLUSTER", "INFO"});
        if (info.find("cluster_state:ok") == std::string::npos ||
            info.find("cluster_slots_ok:16384") == std::string::npos) {
          ok = false;
          break;
        }
      }
      if (ok) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("redis_cluster: not ok after " + std::to_string(limit.count()) +
                             " s: " + cli({"CLUSTER", "INFO"}));
  }

 private:
  std::vector<std::unique_ptr<redis_server>> nodes_;
};

}  // namespace funcie::test
