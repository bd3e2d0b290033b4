// The Redis backend against a real Redis Cluster (3 masters + 3 replicas of Debian's
// redis-server, tests/redis/redis_cluster.hpp): the tunnel's semantics when the app's slot
// lives on a node the URL does not name, when the consumer crashes and comes back, when the
// slot's master dies and its replica takes over, and when the slot moves to another master
// (docs/tunnel.md, "Redis Cluster and managed Redis").
#include "../support/async.hpp"
#include "backend/redis/keys.hpp"
#include "redis/cluster_map.hpp"
#include "redis/connection.hpp"
#include "redis/redis_cluster.hpp"
#include "redis/redis_server.hpp"
#include "tunnel/backend.hpp"
#include "util/ids.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>

namespace funcie {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using kind = tunnel::forward_outcome::kind;
using funcie::test::sleep_for;

double ms_since(steady::time_point start) {
  return std::chrono::duration<double, std::milli>(steady::now() - start).count();
}

std::string binary(std::size_t size, unsigned seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 31 + seed) & 0xFF);
  return out;
}

tunnel::request make_request(const std::string& app, std::string payload) {
  tunnel::request req;
  req.id = util::random_hex(32);
  req.app = app;
  req.sent_ms = 1;
  req.context.request_id = util::new_request_id();
  req.context.deadline_ms = 4102444800000;
  req.context.function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:" + app;
  req.function.name = app;
  req.payload = std::move(payload);
  return req;
}

struct handler_log {
  std::vector<std::string> handled;  ///< Request ids, in the order claimed.
  int sessions = 0;                  ///< Sessions opened (reconnects + 1).
  bool ended = false;
  bool waiting = false;  ///< In next(): the session may be destroyed now.
  std::string end_reason;
};

/// A local consumer: claims requests and answers each with the payload reversed.
asio::awaitable<void> serve(tunnel::consumer_session* session, std::shared_ptr<handler_log> log) {
  while (true) {
    tunnel::request req;
    log->waiting = true;
    try {
      req = co_await session->next();
    } catch (const tunnel::backend_error& e) {
      log->waiting = false;
      log->ended = true;
      log->end_reason = e.what();
      co_return;
    }
    log->waiting = false;
    log->handled.push_back(req.id);
    tunnel::response answer;
    answer.id = req.id;
    answer.app = req.app;
    answer.consumer = session->id();
    answer.content_type = "application/octet-stream";
    answer.body = req.payload;
    std::reverse(answer.body.begin(), answer.body.end());
    // A session that is over throws here: this serving ends, as a killed consumer would.
    co_await session->respond(answer);
  }
}

/// `funcie connect` in small: a session, and a new one whenever it ends, until `stop`.
struct reconnecting_consumer {
  std::shared_ptr<handler_log> log = std::make_shared<handler_log>();
  std::unique_ptr<tunnel::consumer_session> current;
  bool stop = false;
  bool stopped = false;
};

asio::awaitable<void> keep_serving(asio::any_io_executor ex, tunnel::backend_options o,
                                   std::shared_ptr<reconnecting_consumer> c) {
  while (!c->stop) {
    c->current = tunnel::make_consumer_session(ex, o);
    bool opened = false;
    try {
      co_await c->current->open();
      opened = true;
    } catch (const tunnel::backend_error&) {
    }
    if (opened) {
      ++c->log->sessions;
      try {
        co_await serve(c->current.get(), c->log);
      } catch (const tunnel::backend_error&) {
        // respond() failed: the session is over
      }
    }
    if (!c->stop) co_await sleep_for(100ms);
  }
  if (c->current) co_await c->current->close();
  c->stopped = true;
}

class RedisCluster : public ::testing::Test {
 protected:
  asio::io_context io;  // first: outlives everything that uses it
  test::redis_cluster cluster;

  /// An app whose slot is served by a master other than node `seed`.
  std::string app_elsewhere(std::size_t seed) {
    for (int i = 0;; ++i) {
      std::string app = "app-" + std::to_string(i);
      const int owner = cluster.owner_of(redis_backend::app_keys(app).channel());
      if (owner >= 0 && static_cast<std::size_t>(owner) != seed) return app;
    }
  }

  /// A master (an index) that is not the owner of `app`'s slot.
  std::size_t seed_not_owning(const std::string& app) {
    const int owner = cluster.owner_of(redis_backend::app_keys(app).channel());
    return static_cast<std::size_t>(cluster.other_master(owner));
  }

  tunnel::backend_options options(const std::string& app, const std::string& url,
                                  milliseconds heartbeat = 600ms) const {
    tunnel::backend_options o;
    o.url = url;
    o.app = app;
    o.timing.heartbeat = heartbeat;
    return o;
  }

  template <class Body>
  void run(Body&& body, std::chrono::seconds limit = 60s) {
    test::run_on(io, std::forward<Body>(body), limit);
  }

  asio::awaitable<std::shared_ptr<reconnecting_consumer>> start_consumer(
      const tunnel::backend_options& o) {
    auto c = std::make_shared<reconnecting_consumer>();
    asio::co_spawn(io, keep_serving(io.get_executor(), o, c), asio::detached);
    while (c->log->sessions == 0) co_await sleep_for(10ms);
    co_return c;
  }

  asio::awaitable<void> stop_consumer(std::shared_ptr<reconnecting_consumer> c) {
    c->stop = true;
    if (c->current) co_await c->current->close();
    while (!c->stopped) co_await sleep_for(10ms);
  }
};

TEST_F(RedisCluster, AnAppOnANodeNotInTheUrlRunsInTheCloudAloneAndLocallyWhenConnected) {
  const std::string app = app_elsewhere(0);
  const std::size_t seed = seed_not_owning(app);
  const int owner = cluster.owner_of(redis_backend::app_keys(app).channel());
  const std::string url = cluster.url(seed);
  ASSERT_NE(static_cast<int>(seed), owner);
  run([&]() -> asio::awaitable<void> {
    // The default 3 s heartbeat bound: 6 MB each way on one thread under ASan on a busy
    // machine can keep the session's heartbeat from running for more than 600 ms.
    const auto o = options(app, url, 3000ms);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    // Nobody connected: the cloud, at once.
    const auto start = steady::now();
    auto alone = co_await forwarder->forward(make_request(app, "{}"), steady::now() + 10s);
    EXPECT_EQ(alone.outcome, kind::not_taken) << alone.reason << alone.message;
    EXPECT_EQ(alone.reason, "no consumer");
    std::printf(
        "[ figures  ] cluster, app slot on another node: first no-consumer forward %.1f ms\n",
        ms_since(start));

    auto consumer = co_await start_consumer(o);
    // The subscription is sharded, on the slot's master.
    const std::string shard = cluster.node(owner).cli(
        {"PUBSUB", "SHARDNUMSUB", redis_backend::app_keys(app).channel(consumer->current->id())});
    EXPECT_NE(shard.find("\n1\n"), std::string::npos) << shard;

    // Status sees the session.
    auto listed = co_await tunnel::list_consumers(io.get_executor(), o);
    EXPECT_EQ(listed.size(), 1u);
    if (!listed.empty()) {
      EXPECT_EQ(listed[0].session, consumer->current->id());
    }

    // Local, byte for byte, up to 6 MB both ways.
    for (std::size_t size :
         {std::size_t{3}, std::size_t{64 * 1024 + 1}, std::size_t{6 * 1024 * 1024}}) {
      const auto req = make_request(app, binary(size, static_cast<unsigned>(size)));
      const auto begun = steady::now();
      auto out = co_await forwarder->forward(req, steady::now() + 20s);
      EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
      std::string expected = req.payload;
      std::reverse(expected.begin(), expected.end());
      EXPECT_TRUE(out.answer.body == expected) << "the answer of " << size << " bytes differs";
      std::printf("[ figures  ] cluster: %zu-byte request and response forwarded in %.1f ms\n",
                  size, ms_since(begun));
    }

    // Round trips, for bench/README.md.
    std::vector<double> costs;
    for (int i = 0; i < 100; ++i) {
      const auto begun = steady::now();
      auto out = co_await forwarder->forward(make_request(app, "{}"), steady::now() + 10s);
      EXPECT_EQ(out.outcome, kind::answered);
      costs.push_back(ms_since(begun));
    }
    std::sort(costs.begin(), costs.end());
    std::printf("[ figures  ] cluster: forwarded invocation median %.3f ms, p99 %.3f ms\n",
                costs[50], costs[98]);

    // A second consumer: each request claimed once.
    auto second = co_await start_consumer(o);
    int done = 0;
    for (int i = 0; i < 40; ++i) {
      asio::co_spawn(
          io,
          [&, i]() -> asio::awaitable<void> {
            auto out = co_await forwarder->forward(make_request(app, std::to_string(i)),
                                                   steady::now() + 10s);
            EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
            ++done;
          },
          asio::detached);
    }
    while (done < 40) co_await sleep_for(5ms);
    std::set<std::string> all(consumer->log->handled.begin(), consumer->log->handled.end());
    all.insert(second->log->handled.begin(), second->log->handled.end());
    EXPECT_EQ(all.size(), consumer->log->handled.size() + second->log->handled.size())
        << "a request ran twice";
    co_await stop_consumer(second);
    co_await stop_consumer(consumer);

    // Gone: the cloud again at once.
    auto after = co_await forwarder->forward(make_request(app, "{}"), steady::now() + 10s);
    EXPECT_EQ(after.outcome, kind::not_taken) << after.reason << after.message;
    std::vector<double> none;
    for (int i = 0; i < 100; ++i) {
      const auto begun = steady::now();
      co_await forwarder->forward(make_request(app, binary(100 * 1024, 1)), steady::now() + 10s);
      none.push_back(ms_since(begun));
    }
    std::sort(none.begin(), none.end());
    std::printf(
        "[ figures  ] cluster: not_taken (no consumer, 100 KiB) median %.3f ms, p99 %.3f ms\n",
        none[50], none[98]);
  });
}

TEST_F(RedisCluster, ASeedListSkipsADeadSeedAndAKilledConsumerIsReplacedByANewSession) {
  const std::string app = app_elsewhere(0);
  const std::size_t seed = seed_not_owning(app);
  // The first seed listens nowhere.
  const std::string url = "redis://127.0.0.1:" + std::to_string(test::redis_server::free_port()) +
                          ",127.0.0.1:" + std::to_string(cluster.node(seed).port());
  run([&]() -> asio::awaitable<void> {
    const auto o = options(app, url);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    auto session = tunnel::make_consumer_session(io.get_executor(), o);
    co_await session->open();
    auto log = std::make_shared<handler_log>();
    asio::co_spawn(io, serve(session.get(), log), asio::detached);
    auto out = co_await forwarder->forward(make_request(app, "abc"), steady::now() + 10s);
    EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
    EXPECT_EQ(out.answer.body, "cba");

    while (!log->waiting) co_await sleep_for(5ms);  // its respond() has returned
    session.reset();                                // killed: connections closed, no goodbye
    co_await sleep_for(50ms);
    auto cloud = co_await forwarder->forward(make_request(app, "x"), steady::now() + 10s);
    EXPECT_EQ(cloud.outcome, kind::not_taken) << cloud.reason << cloud.message;

    auto again = tunnel::make_consumer_session(io.get_executor(), o);
    co_await again->open();
    auto log2 = std::make_shared<handler_log>();
    asio::co_spawn(io, serve(again.get(), log2), asio::detached);
    auto back = co_await forwarder->forward(make_request(app, "xyz"), steady::now() + 10s);
    EXPECT_EQ(back.outcome, kind::answered) << back.reason << back.message;
    EXPECT_EQ(back.answer.consumer, again->id());
    while (!log2->waiting) co_await sleep_for(5ms);
    co_await again->close();
  });
}

TEST_F(RedisCluster, WithoutClusterShardsTheClassicPubSubOnTheSlotsMasterIsUsed) {
  // As on Redis before 7.0: only CLUSTER SLOTS answers (here an ACL refuses CLUSTER SHARDS).
  const std::string app = app_elsewhere(0);
  const std::size_t seed = seed_not_owning(app);
  const int owner = cluster.owner_of(redis_backend::app_keys(app).channel());
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    cluster.node(i).cli(
        {"ACL", "SETUSER", "old", "on", ">oldpass", "~*", "&*", "+@all", "-cluster|shards"});
  }
  const std::string url =
      "redis://old:oldpass@127.0.0.1:" + std::to_string(cluster.node(seed).port());
  run([&]() -> asio::awaitable<void> {
    const auto o = options(app, url);
    auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
    auto alone = co_await forwarder->forward(make_request(app, "{}"), steady::now() + 10s);
    EXPECT_EQ(alone.outcome, kind::not_taken) << alone.reason << alone.message;
    auto consumer = co_await start_consumer(o);
    const std::string channel = redis_backend::app_keys(app).channel(consumer->current->id());
    const std::string classic = cluster.node(owner).cli({"PUBSUB", "NUMSUB", channel});
    EXPECT_NE(classic.find("\n1\n"), std::string::npos) << classic;
    const std::string sharded = cluster.node(owner).cli({"PUBSUB", "SHARDNUMSUB", channel});
    EXPECT_NE(sharded.find("\n0\n"), std::string::npos) << sharded;
    for (int i = 0; i < 5; ++i) {
      auto out = co_await forwarder->forward(make_request(app, "abc"), steady::now() + 10s);
      EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
      EXPECT_EQ(out.answer.body, "cba");
    }
    co_await stop_consumer(consumer);
    auto after = co_await forwarder->forward(make_request(app, "{}"), steady::now() + 10s);
    EXPECT_EQ(after.outcome, kind::not_taken) << after.reason << after.message;
  });
}

/// Invocations every `gap` until `stop`; checks each gets exactly one outcome by its deadline
/// and that none ran both locally and in the cloud (not_taken) or twice locally.
struct stream_result {
  std::map<std::string, tunnel::forward_outcome> outcomes;
  std::map<std::string, steady::time_point> answered_at;
  int late = 0;
  int issued = 0;
};

asio::awaitable<void> invoke_steadily(tunnel::forwarder_backend* forwarder, std::string app,
                                      std::shared_ptr<stream_result> result, const bool* stop,
                                      milliseconds gap) {
  auto ex = co_await asio::this_coro::executor;
  while (!*stop) {
    ++result->issued;
    asio::co_spawn(
        ex,
        [forwarder, app, result]() -> asio::awaitable<void> {
          const auto req = make_request(app, util::random_hex(8));
          const auto give_up_at = steady::now() + 4s;
          auto out = co_await forwarder->forward(req, give_up_at);
          if (steady::now() > give_up_at + 1s) ++result->late;
          if (out.outcome == kind::answered) result->answered_at[req.id] = steady::now();
          result->outcomes.emplace(req.id, std::move(out));
        },
        asio::detached);
    co_await sleep_for(gap);
  }
}

/// Waits until every invocation issued has its outcome (each is due by its deadline, 4 s
/// after it was issued; a missing one is reported by check_exactly_one_outcome).
asio::awaitable<void> all_outcomes_in(const stream_result& r) {
  const auto until = steady::now() + 6s;
  while (static_cast<int>(r.outcomes.size()) < r.issued && steady::now() < until) {
    co_await sleep_for(20ms);
  }
}

/// Milliseconds from `since` to the latest answer after it (invocations answered locally
/// again), looked for every 50 ms for up to `bound`; nullopt when none came.
asio::awaitable<std::optional<double>> local_again_after(const stream_result& r,
                                                         steady::time_point since,
                                                         milliseconds bound) {
  while (steady::now() - since < bound) {
    co_await sleep_for(50ms);
    auto last = std::max_element(r.answered_at.begin(), r.answered_at.end(),
                                 [](auto& a, auto& b) { return a.second < b.second; });
    if (last != r.answered_at.end() && last->second > since + 100ms) {
      co_return std::chrono::duration<double, std::milli>(last->second - since).count();
    }
  }
  co_return std::nullopt;
}

void check_exactly_one_outcome(const stream_result& r, const handler_log& log) {
  EXPECT_EQ(static_cast<int>(r.outcomes.size()), r.issued) << "an invocation got no outcome";
  EXPECT_EQ(r.late, 0) << "an outcome came after the deadline";
  std::map<std::string, int> runs;
  for (const auto& id : log.handled) ++runs[id];
  int local = 0, cloud = 0, failed = 0;
  for (const auto& [id, out] : r.outcomes) {
    const int ran = runs.count(id) ? runs.at(id) : 0;
    EXPECT_LE(ran, 1) << "request " << id << " ran twice locally";
    switch (out.outcome) {
      case kind::answered:
        ++local;
        EXPECT_EQ(ran, 1);
        break;
      case kind::not_taken:
        ++cloud;
        EXPECT_EQ(ran, 0) << "request " << id << " ran locally and would run in the cloud";
        break;
      default:
        ++failed;
        EXPECT_TRUE(out.error_type.starts_with("Funcie.")) << out.error_type << out.message;
        break;
    }
  }
  std::printf("[ figures  ] %d invocations: %d local, %d cloud, %d failed (Funcie.*)\n", r.issued,
              local, cloud, failed);
}

TEST_F(RedisCluster, TheSlotsMasterDiesMidStreamAndTheTunnelGoesOnWithExactlyOneOutcomeEach) {
  const std::string app = app_elsewhere(0);
  const int owner = cluster.owner_of(redis_backend::app_keys(app).channel());
  const std::size_t seed = seed_not_owning(app);
  run(
      [&]() -> asio::awaitable<void> {
        const auto o = options(app, cluster.url(seed));
        auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
        auto consumer = co_await start_consumer(o);
        auto result = std::make_shared<stream_result>();
        bool stop = false;
        asio::co_spawn(io, invoke_steadily(forwarder.get(), app, result, &stop, 25ms),
                       asio::detached);
        co_await sleep_for(500ms);
        const auto killed = steady::now();
        cluster.node(owner).kill();
        // Until the replica is promoted and both sides found it, then some more.
        const std::optional<double> resumed = co_await local_again_after(*result, killed, 20000ms);
        co_await sleep_for(500ms);
        stop = true;
        co_await all_outcomes_in(*result);
        EXPECT_TRUE(resumed) << "no invocation was answered locally after the failover";
        std::printf(
            "[ figures  ] failover: invocations local again %.0f ms after the master died\n",
            resumed.value_or(-1));
        check_exactly_one_outcome(*result, *consumer->log);
        co_await stop_consumer(consumer);
      },
      90s);
}

TEST_F(RedisCluster, TheSlotMovesToAnotherMasterMidStreamWithExactlyOneOutcomeEach) {
  const std::string app = app_elsewhere(0);
  const std::string channel = redis_backend::app_keys(app).channel();
  const int slot = cluster.slot_of(channel);
  const int source = cluster.owner_of(channel);
  const int target = cluster.other_master(source);
  const std::size_t seed = static_cast<std::size_t>(cluster.other_master(-1));
  run(
      [&]() -> asio::awaitable<void> {
        const auto o = options(app, cluster.url(seed));
        auto forwarder = tunnel::make_forwarder_backend(io.get_executor(), o);
        auto consumer = co_await start_consumer(o);
        auto result = std::make_shared<stream_result>();
        bool stop = false;
        asio::co_spawn(io, invoke_steadily(forwarder.get(), app, result, &stop, 25ms),
                       asio::detached);
        co_await sleep_for(500ms);
        // The resharding steps of the cluster specification, with keys moving meanwhile.
        const std::string s = std::to_string(slot);
        const std::string source_id = cluster.id_of(source);
        const std::string target_id = cluster.id_of(target);
        auto& src = cluster.node(source);
        auto& dst = cluster.node(target);
        // A routed connection opened before: it must follow ASK, then MOVED, by itself.
        redis::connect_options routed;
        routed.server = redis::parse_url(cluster.url(seed));
        routed.route_key = channel;
        auto probe = co_await redis::connection::connect(io.get_executor(), routed);
        const std::string probe_key = redis_backend::app_keys(app).prefix() + "probe";
        std::vector<std::string_view> set{"SET", probe_key, "before"};
        co_await probe->execute_checked(set);
        const std::string source_name = probe->server_name();
        dst.cli({"CLUSTER", "SETSLOT", s, "IMPORTING", source_id});
        src.cli({"CLUSTER", "SETSLOT", s, "MIGRATING", target_id});
        for (int round = 0; round < 100; ++round) {
          const std::string keys = src.cli({"CLUSTER", "GETKEYSINSLOT", s, "100"});
          if (keys.empty() || keys == "\n") break;
          std::vector<std::string> migrate{
              "MIGRATE", dst.host(), std::to_string(dst.port()), "", "0", "5000", "KEYS"};
          std::size_t pos = 0;
          while (pos < keys.size()) {
            std::size_t end = keys.find('\n', pos);
            if (end == std::string::npos) end = keys.size();
            if (end > pos) migrate.push_back(keys.substr(pos, end - pos));
            pos = end + 1;
          }
          if (migrate.size() == 7) break;
          try {
            src.cli(migrate);
          } catch (const std::exception&) {
            // a key expired meanwhile: the next round retries
          }
          co_await sleep_for(20ms);  // invocations go on between the batches
        }
        // Every key moved, the slot not yet: the source answers ASK.
        std::vector<std::string_view> get{"GET", probe_key};
        const redis::reply asked = co_await probe->execute_checked(get);
        EXPECT_EQ(asked.str, "before") << "ASK was not followed";
        EXPECT_EQ(probe->server_name(), source_name);
        for (std::size_t i = 0; i < cluster.size(); ++i) {
          if (!cluster.node(i).running()) continue;
          cluster.node(i).cli({"CLUSTER", "SETSLOT", s, "NODE", target_id});
        }
        const auto moved = steady::now();
        // The slot is the target's: MOVED, and the connection moves there.
        const redis::reply after_move = co_await probe->execute_checked(get);
        EXPECT_EQ(after_move.str, "before") << "MOVED was not followed";
        EXPECT_EQ(probe->server_name(), "127.0.0.1:" + std::to_string(dst.port()));
        probe->close();
        const std::optional<double> resumed = co_await local_again_after(*result, moved, 15000ms);
        co_await sleep_for(500ms);
        stop = true;
        co_await all_outcomes_in(*result);
        EXPECT_TRUE(resumed) << "no invocation was answered locally after the slot moved";
        std::printf("[ figures  ] slot moved: invocations local again %.0f ms after\n",
                    resumed.value_or(-1));
        EXPECT_EQ(cluster.owner_of(channel), target);
        check_exactly_one_outcome(*result, *consumer->log);
        co_await stop_consumer(consumer);
      },
      90s);
}

TEST(RedisStandaloneRouting, AStandaloneServerIsAskedOncePerProcessAndServesAsBefore) {
  test::redis_server server;
  test::run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        redis::connect_options c;
        c.server = redis::parse_url(server.url());
        c.route_key = "funcie:{standalone}:requests";
        for (int i = 0; i < 5; ++i) {
          auto conn = co_await redis::connection::connect(io.get_executor(), c);
          EXPECT_FALSE(conn->clustered());
          std::vector<std::string_view> set{"SET", "funcie:{standalone}:k", "v"};
          co_await conn->execute_checked(set);
          co_await conn->subscribe("funcie:{standalone}:requests");
          conn->close();
        }
      },
      20s);
  const std::string stats = server.cli({"INFO", "commandstats"});
  EXPECT_NE(stats.find("cmdstat_cluster|shards:calls=1,"), std::string::npos) << stats;
  EXPECT_NE(stats.find("cmdstat_subscribe:calls=5,"), std::string::npos) << stats;
}

}  // namespace
}  // namespace funcie

namespace funcie {
namespace {

// The users of docs/tunnel.md ("The minimal ACL"), word for word, for app APP.
std::vector<std::string> acl_of(const std::string& user, const std::string& password,
                                const std::string& app, bool developer) {
  std::vector<std::string> args{"ACL",
                                "SETUSER",
                                user,
                                "on",
                                ">" + password,
                                "resetkeys",
                                "~funcie:{" + app + "}:*",
                                "resetchannels",
                                "&funcie:{" + app + "}:*",
                                "-@all"};
  const char* function_rights =
      "+eval +evalsha +time +zremrangebyscore +zrangebyscore +zcard +set +get +del +exists "
      "+publish +spublish +subscribe +ssubscribe +rpush +lrem +pttl +pexpire "
      "+blpop +lpop +cluster|shards +cluster|slots +client|setname +ping";
  const char* developer_rights =
      "+eval +evalsha +time +zadd +zrem +zremrangebyscore +zcard +zrangebyscore +set +get +getdel "
      "+del +exists +pttl +pexpire +rpush +blpop +blmpop +subscribe +ssubscribe +publish +spublish "
      "+cluster|shards "
      "+cluster|slots +client|setname +ping";
  std::string rights = developer ? developer_rights : function_rights;
  std::size_t pos = 0;
  while (pos < rights.size()) {
    std::size_t space = rights.find(' ', pos);
    if (space == std::string::npos) space = rights.size();
    args.push_back(rights.substr(pos, space - pos));
    pos = space + 1;
  }
  return args;
}

TEST(RedisClusterTls, TheDocumentedMinimalAclUsersWorkOverTlsOnEveryNode) {
  test::redis_cluster cluster(3, 1, /*tls=*/true);
  // An app whose slot is not on node 0, the seed.
  std::string app;
  for (int i = 0; app.empty(); ++i) {
    std::string candidate = "tls-app-" + std::to_string(i);
    if (cluster.owner_of(redis_backend::app_keys(candidate).channel()) != 0) app = candidate;
  }
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    cluster.node(i).cli(acl_of("funcie-fn", "fnpass", app, false));
    cluster.node(i).cli(acl_of("funcie-dev", "devpass", app, true));
  }
  const std::string host_port = "127.0.0.1:" + std::to_string(cluster.node(0).port());
  auto options = [&](const std::string& user, const std::string& password) {
    tunnel::backend_options o;
    o.url = "rediss://" + user + ":" + password + "@" + host_port;
    o.app = app;
    o.ca_file = cluster.node(0).ca_file();
    o.timing.heartbeat = 600ms;
    return o;
  };
  test::run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        auto forwarder =
            tunnel::make_forwarder_backend(io.get_executor(), options("funcie-fn", "fnpass"));
        auto alone = co_await forwarder->forward(make_request(app, "{}"), steady::now() + 10s);
        EXPECT_EQ(alone.outcome, kind::not_taken) << alone.reason << alone.message;
        EXPECT_EQ(alone.reason, "no consumer");
        auto session =
            tunnel::make_consumer_session(io.get_executor(), options("funcie-dev", "devpass"));
        co_await session->open();
        auto log = std::make_shared<handler_log>();
        asio::co_spawn(io, serve(session.get(), log), asio::detached);
        for (std::size_t size : {std::size_t{5}, std::size_t{200 * 1024}}) {
          const auto req = make_request(app, binary(size, 7));
          auto out = co_await forwarder->forward(req, steady::now() + 10s);
          EXPECT_EQ(out.outcome, kind::answered) << out.reason << out.message;
          std::string expected = req.payload;
          std::reverse(expected.begin(), expected.end());
          EXPECT_TRUE(out.answer.body == expected);
        }
        auto listed =
            co_await tunnel::list_consumers(io.get_executor(), options("funcie-dev", "devpass"));
        EXPECT_EQ(listed.size(), 1u);
        co_await session->close();
        // Another app's keys are out of these users' reach.
        auto other = options("funcie-fn", "fnpass");
        other.app = app + "-other";
        auto stranger = tunnel::make_forwarder_backend(io.get_executor(), other);
        auto refused =
            co_await stranger->forward(make_request(other.app, "{}"), steady::now() + 10s);
        EXPECT_EQ(refused.outcome, kind::not_taken);
        EXPECT_NE((refused.reason + refused.message).find("NOPERM"), std::string::npos)
            << refused.reason << refused.message;
      },
      60s);
}

}  // namespace
}  // namespace funcie
