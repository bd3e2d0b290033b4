// Key names and scripts of the Redis backend, and the backend factory's checks (no I/O).
#include "backend/redis/keys.hpp"
#include "backend/redis/scripts.hpp"
#include "tunnel/backend.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

namespace funcie {
namespace {

using redis_backend::app_keys;

TEST(RedisKeys, AllKeysOfAnAppShareOneHashTag) {
  const app_keys keys("my-fn.v2_x");
  const std::string id = "0123456789abcdef0123456789abcdef";
  EXPECT_EQ(keys.channel(), "funcie:{my-fn.v2_x}:requests");
  EXPECT_EQ(keys.consumers(), "funcie:{my-fn.v2_x}:consumers");
  EXPECT_EQ(keys.consumer(id), "funcie:{my-fn.v2_x}:consumer:" + id);
  EXPECT_EQ(keys.req(id), "funcie:{my-fn.v2_x}:req:" + id);
  EXPECT_EQ(keys.claim(id), "funcie:{my-fn.v2_x}:claim:" + id);
  EXPECT_EQ(keys.resp(id), "funcie:{my-fn.v2_x}:resp:" + id);
  EXPECT_EQ(keys.inbox(id), "funcie:{my-fn.v2_x}:inbox:" + id);
}

TEST(RedisScripts, Sha1IsWhatScriptLoadAnswers) {
  EXPECT_EQ(redis_backend::sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(redis_backend::sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(redis_backend::sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(redis_backend::sha1_hex(std::string(1000, 'a')),
            "291e9a6c66994949b57ba5e650361e98fc36b1ba");
  const auto& all = redis_backend::all_scripts();
  EXPECT_EQ(all.offer.sha, redis_backend::sha1_hex(all.offer.text));
  EXPECT_EQ(all.offer.sha.size(), 40u);
  EXPECT_NE(all.offer.sha, all.withdraw.sha);
}

tunnel::backend_options options(std::string url, std::string app = "app") {
  tunnel::backend_options o;
  o.url = std::move(url);
  o.app = std::move(app);
  return o;
}

std::string config_error_of(const tunnel::backend_options& o) {
  boost::asio::io_context io;
  try {
    tunnel::make_forwarder_backend(io.get_executor(), o);
  } catch (const tunnel::backend_config_error& e) {
    return e.what();
  }
  return "";
}

TEST(BackendFactory, RefusesOtherSchemesBadAppsAndBadUrlsBeforeAnyIo) {
  EXPECT_EQ(config_error_of(options("nats://queue")),
            "unsupported backend URL scheme 'nats'; use redis://, rediss:// or sqs://");
  EXPECT_NE(config_error_of(options("sqs://queue")).find("just sqs://"), std::string::npos);
  EXPECT_NE(config_error_of(options("localhost:6379")).find("redis://"), std::string::npos);
  EXPECT_NE(config_error_of(options("redis://localhost", "bad app")).find("app name"),
            std::string::npos);
  EXPECT_NE(config_error_of(options("redis://localhost", "")).find("app name"), std::string::npos);
  const auto bad_port = config_error_of(options("redis://:hunter2@localhost:99999"));
  EXPECT_FALSE(bad_port.empty());
  EXPECT_EQ(bad_port.find("hunter2"), std::string::npos);
  EXPECT_EQ(config_error_of(options("redis://localhost:6379")), "");
  EXPECT_EQ(config_error_of(options("rediss://u:p@localhost:6380/2")), "");

  auto short_heartbeat = options("redis://localhost");
  short_heartbeat.timing.heartbeat = std::chrono::milliseconds(10);
  EXPECT_NE(config_error_of(short_heartbeat).find("heartbeat"), std::string::npos);

  boost::asio::io_context io;
  EXPECT_THROW(tunnel::make_consumer_session(io.get_executor(), options("nats://x")),
               tunnel::backend_config_error);
  auto session = tunnel::make_consumer_session(io.get_executor(), options("redis://localhost"));
  EXPECT_TRUE(tunnel::is_valid_id(session->id()));
}

TEST(BackendFactory, RedactUrlNeverReturnsAPassword) {
  EXPECT_EQ(tunnel::redact_url("redis://:hunter2@host:6379").find("hunter2"), std::string::npos);
  EXPECT_EQ(tunnel::redact_url("rediss://alice:hunter2@host/1").find("hunter2"), std::string::npos);
  EXPECT_EQ(tunnel::redact_url("redis://host:6379"), "redis://host:6379");
  EXPECT_EQ(tunnel::redact_url("sqs://key:hunter2@queue/x"), "sqs://key:****@queue/x");
  EXPECT_EQ(tunnel::redact_url("sqs://queue/x"), "sqs://queue/x");
  EXPECT_EQ(tunnel::redact_url("hunter2").find("hunter2"), std::string::npos);
}

}  // namespace
}  // namespace funcie
