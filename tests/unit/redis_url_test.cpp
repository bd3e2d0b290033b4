// Redis URLs: every part, percent-decoding, IPv6, and errors that never show the password.
#include "redis/url.hpp"

#include <gtest/gtest.h>

#include <string>

namespace rd = funcie::redis;

namespace {

std::string error_of(std::string_view url) {
  try {
    rd::parse_url(url);
  } catch (const rd::url_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(RedisUrl, HostOnlyTakesDefaults) {
  auto e = rd::parse_url("redis://localhost");
  EXPECT_FALSE(e.tls);
  EXPECT_EQ(e.host, "localhost");
  EXPECT_EQ(e.port, 6379);
  EXPECT_EQ(e.user, "");
  EXPECT_EQ(e.password, "");
  EXPECT_EQ(e.db, 0);
}

TEST(RedisUrl, AllParts) {
  auto e = rd::parse_url("rediss://alice:s3cret@cache.example.com:6380/3");
  EXPECT_TRUE(e.tls);
  EXPECT_EQ(e.host, "cache.example.com");
  EXPECT_EQ(e.port, 6380);
  EXPECT_EQ(e.user, "alice");
  EXPECT_EQ(e.password, "s3cret");
  EXPECT_EQ(e.db, 3);
}

TEST(RedisUrl, SchemeIsCaseInsensitive) {
  EXPECT_TRUE(rd::parse_url("REDISS://h").tls);
  EXPECT_FALSE(rd::parse_url("Redis://h").tls);
}

TEST(RedisUrl, PasswordWithoutUser) {
  auto e = rd::parse_url("redis://:pw@127.0.0.1:7000");
  EXPECT_EQ(e.user, "");
  EXPECT_EQ(e.password, "pw");
  EXPECT_EQ(e.port, 7000);
}

TEST(RedisUrl, UserWithEmptyPassword) {
  auto e = rd::parse_url("redis://bob:@h");
  EXPECT_EQ(e.user, "bob");
  EXPECT_EQ(e.password, "");
}

TEST(RedisUrl, PercentDecodesUserAndPassword) {
  auto e = rd::parse_url("redis://us%40er:p%3Aa%2Fs%25s%00x@h");
  EXPECT_EQ(e.user, "us@er");
  EXPECT_EQ(e.password, std::string("p:a/s%s\0x", 9));
}

TEST(RedisUrl, PasswordMayHoldRawSeparators) {
  // The user info ends at the last '@'; the first ':' splits user from password.
  auto e = rd::parse_url("redis://u:a@b:c/d?e#f@host:1/2");
  EXPECT_EQ(e.user, "u");
  EXPECT_EQ(e.password, "a@b:c/d?e#f");
  EXPECT_EQ(e.host, "host");
  EXPECT_EQ(e.port, 1);
  EXPECT_EQ(e.db, 2);
}

TEST(RedisUrl, Ipv6InBrackets) {
  auto e = rd::parse_url("redis://[::1]:6390/1");
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 6390);
  EXPECT_EQ(e.db, 1);
  EXPECT_EQ(rd::parse_url("redis://[fe80::1:2]").port, 6379);
  EXPECT_EQ(rd::describe(e), "[::1]:6390");
}

TEST(RedisUrl, PortRange) {
  EXPECT_EQ(rd::parse_url("redis://h:1").port, 1);
  EXPECT_EQ(rd::parse_url("redis://h:65535").port, 65535);
  EXPECT_EQ(rd::parse_url("redis://h:00080").port, 80);
  for (const char* bad : {"redis://h:0", "redis://h:65536", "redis://h:", "redis://h:-1",
                          "redis://h:12a", "redis://h:99999999999999999999999"}) {
    EXPECT_NE(error_of(bad).find("port"), std::string::npos) << bad;
  }
}

TEST(RedisUrl, Db) {
  EXPECT_EQ(rd::parse_url("redis://h/").db, 0);
  EXPECT_EQ(rd::parse_url("redis://h/15").db, 15);
  EXPECT_EQ(rd::parse_url("redis://h/2147483647").db, 2147483647);
  for (const char* bad : {"redis://h/-1", "redis://h/x", "redis://h/1/2", "redis://h/2147483648"}) {
    EXPECT_NE(error_of(bad).find("db"), std::string::npos) << bad;
  }
}

TEST(RedisUrl, Errors) {
  EXPECT_NE(error_of("http://h").find("scheme"), std::string::npos);
  EXPECT_NE(error_of("h:6379").find("scheme"), std::string::npos);
  EXPECT_NE(error_of("").find("scheme"), std::string::npos);
  EXPECT_NE(error_of("redis://").find("host"), std::string::npos);
  EXPECT_NE(error_of("redis://:pw@").find("host"), std::string::npos);
  EXPECT_NE(error_of("redis://:6379").find("host"), std::string::npos);
  EXPECT_NE(error_of("redis://[::1").find("IPv6"), std::string::npos);
  EXPECT_NE(error_of("redis://[]:1").find("host"), std::string::npos);
  EXPECT_NE(error_of("redis://[zz]").find("IPv6"), std::string::npos);
  EXPECT_NE(error_of("redis://[::1]x").find("IPv6"), std::string::npos);
  EXPECT_NE(error_of("redis://::1").find("brackets"), std::string::npos);
  EXPECT_NE(error_of("redis://ho st").find("host"), std::string::npos);
  EXPECT_NE(error_of("redis://h?db=1").find("query"), std::string::npos);
  EXPECT_NE(error_of("redis://h/1?x").find("query"), std::string::npos);
  EXPECT_NE(error_of("redis://u:p%zz@h").find("password"), std::string::npos);
  EXPECT_NE(error_of("redis://u:p%2@h").find("password"), std::string::npos);
  EXPECT_NE(error_of("redis://u%g0:p@h").find("user"), std::string::npos);
  EXPECT_NE(error_of("redis://justapassword@h").find("user info"), std::string::npos);
}

TEST(RedisUrl, ErrorsNeverShowThePassword) {
  for (const char* url :
       {"redis://u:hunter2hunter2@h:0", "redis://u:hunter2hunter2@h/x", "redis://u:hunter2hunter2@",
        "redis://u:hunter2hunter2%@h", "redis://hunter2hunter2@h", "redis://:hunter2/hunter2@h:x",
        "hunter2hunter2", "redis://:hunter2hunter2@[::1"}) {
    std::string message = error_of(url);
    EXPECT_NE(message, "(no error)") << url;
    EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
  }
}

TEST(RedisUrl, Redact) {
  EXPECT_EQ(rd::redact("redis://u:s3cret@h:1/2"), "redis://u:****@h:1/2");
  EXPECT_EQ(rd::redact("rediss://:s3cret@h"), "rediss://:****@h");
  EXPECT_EQ(rd::redact("redis://u:a@b@h"), "redis://u:****@h");
  EXPECT_EQ(rd::redact("redis://h:1"), "redis://h:1");
  EXPECT_EQ(rd::redact("redis://u:@h"), "redis://u:@h");
  EXPECT_EQ(rd::redact("redis://s3cret@h"), "redis://****@h");
  EXPECT_EQ(rd::redact("not a url s3cret").find("s3cret"), std::string::npos);
  EXPECT_EQ(rd::redact(""), rd::redact("x"));
}

TEST(RedisUrl, RedactedUrlParsesToTheSameEndpoint) {
  auto e = rd::parse_url("redis://u:p%40ss@h:1/2");
  auto r = rd::parse_url(rd::redact("redis://u:p%40ss@h:1/2"));
  EXPECT_EQ(r.password, "****");
  r.password = e.password;
  EXPECT_EQ(r, e);
}

TEST(RedisUrl, Describe) {
  rd::endpoint e;
  e.host = "10.0.0.1";
  e.port = 7;
  EXPECT_EQ(rd::describe(e), "10.0.0.1:7");
}

}  // namespace

namespace {

TEST(RedisUrl, SeveralHostsAreClusterSeeds) {
  auto e = rd::parse_url("rediss://bob:pw@h1:7001,h2,[::1]:7003/0");
  EXPECT_TRUE(e.tls);
  EXPECT_EQ(e.host, "h1");
  EXPECT_EQ(e.port, 7001);
  EXPECT_EQ(e.user, "bob");
  EXPECT_EQ(e.password, "pw");
  ASSERT_EQ(e.more_seeds.size(), 2u);
  EXPECT_EQ(e.more_seeds[0], (rd::seed{"h2", 6379}));
  EXPECT_EQ(e.more_seeds[1], (rd::seed{"::1", 7003}));
  EXPECT_TRUE(rd::parse_url("redis://h1:1").more_seeds.empty());
}

TEST(RedisUrl, SeedListErrorsSayWhatIsWrong) {
  EXPECT_NE(error_of("redis://h1:1,").find("empty host in the list"), std::string::npos);
  EXPECT_NE(error_of("redis://,h2:1").find("empty host in the list"), std::string::npos);
  EXPECT_NE(error_of("redis://h1:1,,h3:1").find("empty host in the list"), std::string::npos);
  EXPECT_NE(error_of("redis://h1:1,h2:x").find("port"), std::string::npos);
  EXPECT_NE(error_of("redis://h1:1,h 2").find("host"), std::string::npos);
  EXPECT_NE(error_of("redis://:hunter2hunter2@h1,,h2").find("empty host"), std::string::npos);
  EXPECT_EQ(error_of("redis://:hunter2hunter2@h1,,h2").find("hunter2"), std::string::npos);
}

}  // namespace
