// Redis Cluster client arithmetic and parsing: key slots (the cluster specification's
// CRC16), the topology replies of CLUSTER SHARDS / CLUSTER SLOTS, and MOVED / ASK.
#include "redis/cluster_map.hpp"
#include "redis/connection.hpp"

#include <gtest/gtest.h>

#include <string>

namespace cl = funcie::redis::cluster;
using funcie::redis::reply;

namespace {

reply text(std::string s) {
  reply r;
  r.type = reply::kind::string;
  r.str = std::move(s);
  return r;
}
reply number(long long n) {
  reply r;
  r.type = reply::kind::integer;
  r.integer = n;
  return r;
}
reply list(std::vector<reply> items) {
  reply r;
  r.type = reply::kind::array;
  r.elements = std::move(items);
  return r;
}

TEST(RedisCluster, Crc16MatchesTheSpecification) {
  // The cluster specification: "the output for '123456789' is 31C3".
  EXPECT_EQ(cl::crc16("123456789"), 0x31C3);
  EXPECT_EQ(cl::crc16(""), 0);
}

TEST(RedisCluster, KeySlotsMatchRedis) {
  // Values from CLUSTER KEYSLOT on redis-server 7.0.
  EXPECT_EQ(cl::key_slot("123456789"), 12739);
  EXPECT_EQ(cl::key_slot("funcie:{a}:requests"), 15495);
  EXPECT_EQ(cl::key_slot("funcie:{b}:requests"), 3300);
  EXPECT_EQ(cl::key_slot("foo"), 12182);
  // Hash tags: the first {...} that is not empty decides; "{}" does not count.
  EXPECT_EQ(cl::key_slot("{user1000}.following"), cl::key_slot("{user1000}.followers"));
  EXPECT_EQ(cl::key_slot("foo{}{bar}"), cl::key_slot("foo{}{bar}"));
  EXPECT_NE(cl::key_slot("foo{}{bar}"), cl::key_slot("bar"));
  EXPECT_EQ(cl::key_slot("foo{{bar}}zap"), cl::key_slot("{bar"));
  EXPECT_EQ(cl::key_slot("foo{bar}{zap}"), cl::key_slot("bar"));
  EXPECT_EQ(cl::key_slot("funcie:{a}:x"), cl::key_slot("a"));
}

reply shard(long long first, long long last, std::vector<reply> nodes) {
  return list(
      {text("slots"), list({number(first), number(last)}), text("nodes"), list(std::move(nodes))});
}
reply shard_node(std::string endpoint, long long port, std::string role, std::string health) {
  return list({text("id"), text("abc"), text("port"), number(port), text("ip"), text("10.0.0.9"),
               text("endpoint"), text(std::move(endpoint)), text("role"), text(std::move(role)),
               text("replication-offset"), number(0), text("health"), text(std::move(health))});
}

TEST(RedisCluster, ParsesClusterShards) {
  const cl::node asked{"seed", 7000};
  reply r = list({
      shard(0, 5460,
            {shard_node("127.0.0.1", 7001, "replica", "online"),
             shard_node("127.0.0.1", 7000, "master", "online")}),
      shard(5461, 16383, {shard_node("?", 7002, "master", "online")}),
  });
  const cl::topology t = cl::parse_shards(r, asked, false);
  ASSERT_EQ(t.ranges.size(), 2u);
  EXPECT_EQ(t.masters, 2u);
  EXPECT_EQ(t.owner(0), (cl::node{"127.0.0.1", 7000}));
  EXPECT_EQ(t.owner(5460), (cl::node{"127.0.0.1", 7000}));
  EXPECT_EQ(t.owner(5461), (cl::node{"seed", 7002}));  // "?": the host we asked
  EXPECT_EQ(t.owner(16383), (cl::node{"seed", 7002}));
}

TEST(RedisCluster, ShardsWithAFailedMasterServeNothing) {
  reply r = list({shard(0, 16383, {shard_node("h", 7000, "master", "fail")})});
  const cl::topology t = cl::parse_shards(r, {"seed", 1}, false);
  EXPECT_FALSE(t.owner(100).has_value());
}

TEST(RedisCluster, ParsesClusterSlots) {
  reply r = list({
      list({number(0), number(8000), list({text("10.0.0.1"), number(7000), text("id1")}),
            list({text("10.0.0.2"), number(7001), text("id2")})}),
      list({number(8001), number(16383), list({text(""), number(7002), text("id3")})}),
  });
  const cl::topology t = cl::parse_slots(r, {"seed", 1});
  EXPECT_EQ(t.masters, 2u);
  EXPECT_EQ(t.owner(8000), (cl::node{"10.0.0.1", 7000}));
  EXPECT_EQ(t.owner(8001), (cl::node{"seed", 7002}));
}

TEST(RedisCluster, BadTopologiesAreRefusedWithAReason) {
  const cl::node asked{"seed", 1};
  EXPECT_THROW(cl::parse_shards(text("x"), asked, false), cl::topology_error);
  EXPECT_THROW(cl::parse_shards(list({shard(0, 99999, {shard_node("h", 1, "master", "online")})}),
                                asked, false),
               cl::topology_error);
  EXPECT_THROW(cl::parse_shards(list({shard(0, 10, {shard_node("h", 0, "master", "online")})}),
                                asked, false),
               cl::topology_error);
  EXPECT_THROW(cl::parse_shards(list({shard(0, 10, {shard_node("h/../x", 1, "master", "online")})}),
                                asked, false),
               cl::topology_error);
  EXPECT_THROW(cl::parse_slots(list({list({number(5), number(1)})}), asked), cl::topology_error);
  EXPECT_THROW(
      cl::parse_slots(list({list({number(10), number(1), list({text("h"), number(1)})})}), asked),
      cl::topology_error);
}

TEST(RedisCluster, ParsesRedirections) {
  const cl::node here{"here", 7000};
  auto moved = cl::parse_redirect("MOVED 3999 127.0.0.1:6381", here);
  ASSERT_TRUE(moved);
  EXPECT_FALSE(moved->ask);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->target, (cl::node{"127.0.0.1", 6381}));
  auto ask = cl::parse_redirect("ASK 3999 [::1]:6381", here);
  ASSERT_TRUE(ask);
  EXPECT_TRUE(ask->ask);
  EXPECT_EQ(ask->target, (cl::node{"::1", 6381}));
  auto unknown_host = cl::parse_redirect("MOVED 1 :6390", here);
  ASSERT_TRUE(unknown_host);
  EXPECT_EQ(unknown_host->target, (cl::node{"here", 6390}));
  EXPECT_FALSE(cl::parse_redirect("ERR wrong number of arguments", here));
  EXPECT_FALSE(cl::parse_redirect("MOVED 16384 h:1", here));
  EXPECT_FALSE(cl::parse_redirect("MOVED 1 h:0", here));
  EXPECT_FALSE(cl::parse_redirect("MOVED 1 h", here));
  EXPECT_FALSE(cl::parse_redirect("MOVED x h:1", here));
}

}  // namespace
