// The invocation history (src/history): rows kept whole, the size bound, several writers,
// a killed writer; and the console server's pure checks (src/ui/server.hpp).
#include "history/history.hpp"
#include "history/recorder.hpp"
#include "ui/server.hpp"

#include <gtest/gtest.h>

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <random>

namespace {

namespace fs = std::filesystem;
using funcie::history::entry;
using funcie::history::store;

class history_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("funcie-history-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file() const { return (dir_ / "state" / "history.sqlite3").string(); }

  static entry make(std::string app, std::size_t event_bytes, std::string outcome = "ok") {
    entry e;
    e.app = std::move(app);
    e.request_id = "6b7f75c8-5d49-4c1e-9a53-" + std::to_string(event_bytes);
    e.trigger = "SQS 2 records";
    e.received_ms = 1765000000000;
    e.duration_us = 1234;
    e.outcome = std::move(outcome);
    e.event = std::string(event_bytes, 'e');
    e.response = "{\"ok\":true}";
    e.logs = "line one\nline two\n";
    return e;
  }

  static funcie::history::filter newest(std::size_t limit) {
    funcie::history::filter f;
    f.limit = limit;
    return f;
  }

  fs::path dir_;
};

TEST_F(history_test, keeps_every_field_and_a_6_mb_event_whole) {
  store s(file());
  auto e = make("orders", 6 * 1024 * 1024);
  e.event[12345] = '\0';  // any bytes
  e.error_type = "TypeError";
  e.cold = true;
  e.session = "d7eb373e";
  e.environment = "orders#2";
  const auto id = s.record(e);
  const auto got = s.get(id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->event, e.event);
  EXPECT_EQ(got->response, e.response);
  EXPECT_EQ(got->logs, e.logs);
  EXPECT_EQ(got->error_type, "TypeError");
  EXPECT_TRUE(got->cold);
  EXPECT_EQ(got->environment, "orders#2");
  EXPECT_EQ(got->source, "tunnel");
  // The file and its directory are the user's alone.
  struct stat st {};
  ASSERT_EQ(::stat(file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(::stat((dir_ / "state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
}

TEST_F(history_test, lists_newest_first_filtered_and_finds_by_request_id) {
  store s(file());
  s.record(make("orders", 10));
  auto failed = make("orders", 20, "error");
  failed.error_message = "Cannot read properties of undefined";
  s.record(failed);
  s.record(make("billing", 30));
  const auto all = s.list({});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].app, "billing");
  EXPECT_TRUE(all[0].event.empty());  // the list leaves the payloads out
  EXPECT_EQ(all[0].bytes, 30 + 11 + 18 + funcie::history::row_overhead);
  funcie::history::filter f;
  f.app = "orders";
  EXPECT_EQ(s.list(f).size(), 2u);
  f.outcome = "error";
  ASSERT_EQ(s.list(f).size(), 1u);
  funcie::history::filter text;
  text.text = "properties of";
  EXPECT_EQ(s.list(text).size(), 1u);
  funcie::history::filter after;
  after.after = all[1].id;
  EXPECT_EQ(s.list(after).size(), 1u);
  EXPECT_EQ(s.find("6b7f75c8-5d49-4c1e-9a53-20")->id, all[1].id);
  EXPECT_EQ(s.find("6b7f75c8")->id, all[0].id);  // a prefix: the newest match
  EXPECT_EQ(s.find(std::to_string(all[2].id))->app, "orders");
  EXPECT_FALSE(s.find("ffffffff"));
}

TEST_F(history_test, ten_thousand_invocations_of_mixed_sizes_stay_within_the_bound) {
  const std::int64_t bound = 4 * 1024 * 1024;
  store s(file(), bound);
  std::mt19937 random(7);
  std::int64_t last = 0;
  for (int i = 0; i < 10000; ++i) {
    // Mostly small, some 64 KB, a few 1 MB.
    const auto pick = random() % 100;
    const std::size_t size = pick < 90   ? 200 + random() % 2000
                             : pick < 99 ? 64 * 1024
                                         : 1024 * 1024;
    last = s.record(make("orders", size));
    ASSERT_LE(s.total_bytes(), bound);
  }
  EXPECT_EQ(s.last_id(), last);
  EXPECT_TRUE(s.get(last));  // the newest is always kept
  EXPECT_LT(s.count(), 10000);
  // The bound is what the rows weigh; the file follows it (freed pages go back to the file
  // system): within a quarter of it, plus the write-ahead log (at most 16 MB kept).
  std::error_code ec;
  const auto on_disk = fs::file_size(file(), ec);
  EXPECT_LT(on_disk, static_cast<std::uintmax_t>(bound) * 5 / 4) << on_disk;
  EXPECT_LE(fs::file_size(file() + "-wal", ec), 16u * 1024 * 1024 + 1024 * 1024);
  // Oldest first: what is left is one run of the newest ids.
  const auto rows = s.list(newest(100000));
  EXPECT_EQ(rows.front().id, last);
  EXPECT_EQ(rows.back().id, last - static_cast<std::int64_t>(rows.size()) + 1);
}

TEST_F(history_test, one_invocation_over_the_bound_is_kept_alone) {
  store s(file(), 1024 * 1024);
  s.record(make("orders", 1000));
  const auto big = s.record(make("orders", 3 * 1024 * 1024));
  EXPECT_EQ(s.count(), 1);
  EXPECT_TRUE(s.get(big));
}

TEST_F(history_test, two_processes_write_the_same_history) {
  { store create(file()); }
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    try {
      store s(file());
      for (int i = 0; i < 300; ++i) s.record(make("child", 100 + static_cast<std::size_t>(i)));
    } catch (...) {
      code = 1;
    }
    ::_exit(code);
  }
  store s(file());
  for (int i = 0; i < 300; ++i) s.record(make("parent", 100 + static_cast<std::size_t>(i)));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(s.count(), 600);
  funcie::history::filter f;
  f.app = "child";
  f.limit = 1000;
  EXPECT_EQ(s.list(f).size(), 300u);
  std::int64_t sum = 0;
  for (const auto& e : s.list(newest(1000))) sum += e.bytes;
  EXPECT_EQ(s.total_bytes(), sum);
}

TEST_F(history_test, a_killed_writer_leaves_every_committed_invocation) {
  { store create(file()); }
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    store s(file());
    for (int i = 0;; ++i) {
      s.record(make("killed", 1000 + static_cast<std::size_t>(i % 5000)));
      const char committed = 'c';
      if (::write(pipe_fds[1], &committed, 1) != 1) ::_exit(1);
    }
  }
  ::close(pipe_fds[1]);
  char buffer[64];
  std::int64_t committed = 0;
  while (committed < 200) {
    const auto n = ::read(pipe_fds[0], buffer, sizeof buffer);
    ASSERT_GT(n, 0);
    committed += n;
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) committed += n;
  ::close(pipe_fds[0]);

  store s(file());
  // Every row reported committed is there (one more when the kill came between a commit and
  // its report), and no half row.
  EXPECT_GE(s.count(), committed);
  EXPECT_LE(s.count(), committed + 1);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* check = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &check, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(check), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(check, 0)), "ok");
  sqlite3_finalize(check);
  sqlite3_close(db);
}

TEST_F(history_test, the_recorder_writes_everything_queued_before_it_stops) {
  {
    funcie::history::recorder writer(file(), funcie::history::default_bound);
    for (int i = 0; i < 200; ++i) {
      EXPECT_TRUE(writer.record(make("queued", 1000 + static_cast<std::size_t>(i))));
    }
    EXPECT_EQ(writer.error(), "");
  }
  store s(file());
  EXPECT_EQ(s.count(), 200);
  EXPECT_EQ(s.list(newest(1)).front().request_id, "6b7f75c8-5d49-4c1e-9a53-1199");
}

TEST_F(history_test, an_unwritable_place_is_a_clear_error) {
  try {
    store s("/proc/funcie/history.sqlite3");
    FAIL() << "opened";
  } catch (const funcie::history::history_error& e) {
    EXPECT_NE(std::string(e.what()).find("/proc/funcie/history.sqlite3"), std::string::npos);
  }
}

TEST(history_settings, sizes_and_the_default_place) {
  using funcie::history::parse_size;
  EXPECT_EQ(parse_size("300M"), 300LL * 1024 * 1024);
  EXPECT_EQ(parse_size("1G"), 1024LL * 1024 * 1024);
  EXPECT_EQ(parse_size("2048k"), 2048LL * 1024);
  EXPECT_EQ(parse_size("5MiB"), 5LL * 1024 * 1024);
  EXPECT_EQ(parse_size("1048576"), 1048576);
  for (const char* bad : {"", "M", "-1M", "10X", "512K", "1.5G", "99999999999999G"}) {
    EXPECT_THROW(parse_size(bad), std::invalid_argument) << bad;
  }
  std::map<std::string, std::string> env;
  auto get = [&](const char* name) -> const char* {
    auto found = env.find(name);
    return found == env.end() ? nullptr : found->second.c_str();
  };
  env["HOME"] = "/home/ada";
  EXPECT_EQ(funcie::history::default_path(get), "/home/ada/.local/state/funcie/history.sqlite3");
  env["XDG_STATE_HOME"] = "/var/ada";
  EXPECT_EQ(funcie::history::default_path(get), "/var/ada/funcie/history.sqlite3");
  env["FUNCIE_HISTORY"] = "/tmp/h.db";
  EXPECT_EQ(funcie::history::default_path(get), "/tmp/h.db");
}

TEST(console_server, refuses_foreign_hosts_origins_and_cross_site_requests) {
  using funcie::ui::refuse_cross_site;
  EXPECT_EQ(refuse_cross_site("127.0.0.1:4000", "", "", 4000), "");
  EXPECT_EQ(refuse_cross_site("localhost:4000", "http://localhost:4000", "same-origin", 4000), "");
  EXPECT_EQ(refuse_cross_site("127.0.0.1:4000", "http://127.0.0.1:4000", "none", 4000), "");
  // DNS rebinding: a page of evil.example resolved to 127.0.0.1.
  EXPECT_NE(refuse_cross_site("evil.example:4000", "", "", 4000), "");
  EXPECT_NE(refuse_cross_site("127.0.0.1:4001", "", "", 4000), "");
  EXPECT_NE(refuse_cross_site("", "", "", 4000), "");
  EXPECT_NE(refuse_cross_site("127.0.0.1:4000", "http://evil.example", "", 4000), "");
  EXPECT_NE(refuse_cross_site("127.0.0.1:4000", "null", "", 4000), "");
  EXPECT_NE(refuse_cross_site("127.0.0.1:4000", "", "cross-site", 4000), "");
}

TEST(console_server, fixture_names) {
  using funcie::ui::is_valid_fixture_name;
  EXPECT_TRUE(is_valid_fixture_name("order-7"));
  EXPECT_TRUE(is_valid_fixture_name("sqs_batch.v2"));
  for (const char* bad : {"", ".hidden", "../x", "a/b", "a b", "é"}) {
    EXPECT_FALSE(is_valid_fixture_name(bad)) << bad;
  }
  EXPECT_FALSE(is_valid_fixture_name(std::string(65, 'a')));
}

}  // namespace
