// consumer::watcher on a temporary directory: debounced, deduplicated changes; editors'
// rename-over-a-file; new subdirectories; ignored names; stopping.
#include "consumer/watcher.hpp"

#include "../support/async.hpp"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using funcie::consumer::watcher;
using funcie::test::run_async;
using funcie::test::sleep_for;
using std::chrono::milliseconds;

constexpr milliseconds debounce{100};

void write(const std::string& path, const std::string& text = "x") {
  std::ofstream(path) << text;
}

struct call {
  std::vector<std::string> paths;
  std::chrono::steady_clock::time_point at;
};

class Watcher : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "funcie_watch_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<watcher> watch(asio::io_context& io, std::vector<std::string> paths) {
    return std::make_unique<watcher>(
        io.get_executor(), std::move(paths), debounce,
        [calls = calls_](std::vector<std::string> changed) {
          calls->push_back({std::move(changed), std::chrono::steady_clock::now()});
        });
  }

  /// Long enough for a debounced call to have come.
  static asio::awaitable<void> settle() { co_await sleep_for(debounce * 4); }

  std::string dir_;
  std::shared_ptr<std::vector<call>> calls_ = std::make_shared<std::vector<call>>();
};

TEST_F(Watcher, AWriteFiresOnceAfterTheDebounce) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        auto w = watch(io, {dir_});
        auto written = std::chrono::steady_clock::now();
        write(dir_ + "/handler.js");
        co_await settle();
        EXPECT_EQ(calls_->size(), 1u);
        EXPECT_EQ(calls_->at(0).paths, std::vector<std::string>{dir_ + "/handler.js"});
        EXPECT_GE(calls_->at(0).at - written, debounce);
        // Reading is not a change.
        std::ifstream(dir_ + "/handler.js").get();
        co_await settle();
        EXPECT_EQ(calls_->size(), 1u);
      },
      std::chrono::seconds(10));
}

TEST_F(Watcher, ABurstFiresOnce) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        auto w = watch(io, {dir_ + "/"});
        for (int i = 0; i < 50; ++i) {
          write(dir_ + "/handler.js", std::to_string(i));
          co_await sleep_for(milliseconds(5));
        }
        co_await settle();
        EXPECT_EQ(calls_->size(), 1u);
        EXPECT_EQ(calls_->at(0).paths, std::vector<std::string>{dir_ + "/handler.js"})
            << "deduplicated, spelled without the trailing '/'";
      },
      std::chrono::seconds(10));
}

TEST_F(Watcher, AtMostTwentyPathsAreReported) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        auto w = watch(io, {dir_});
        for (int i = 0; i < 30; ++i) write(dir_ + "/f" + std::to_string(i));
        co_await settle();
        EXPECT_EQ(calls_->size(), 1u);
        EXPECT_EQ(calls_->at(0).paths.size(), watcher::max_reported);
      },
      std::chrono::seconds(10));
}

TEST_F(Watcher, RenamingOverAWatchedFileFires) {
  const auto file = dir_ + "/index.js";
  write(file, "v1");
  write(dir_ + "/other.js");
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        auto w = watch(io, {file});
        // As editors save: a temporary file, renamed over the original.
        write(dir_ + "/index.js.tmp", "v2");
        fs::rename(dir_ + "/index.js.tmp", file);
        co_await settle();
        EXPECT_EQ(calls_->size(), 1u);
        EXPECT_EQ(calls_->at(0).paths, std::vector<std::string>{file});
        // Its neighbours are not watched.
        write(dir_ + "/other.js", "changed");
        co_await settle();
        EXPECT_EQ(calls_->size(), 1u);
        // Touching it counts (as touch(1) does it: both times, which is IN_ATTRIB).
        EXPECT_EQ(::utimensat(AT_FDCWD, file.c_str(), nullptr, 0), 0);
        co_await settle();
        EXPECT_EQ(calls_->size(), 2u);
      },
      std::chrono::seconds(10));
}

TEST_F(Watcher, NewSubdirectoriesAreWatched) {
  fs::create_directories(dir_ + "/src/lib");
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        auto w = watch(io, {dir_});
        write(dir_ + "/src/lib/deep.js");  // present at start
        co_await settle();
        EXPECT_EQ(calls_->size(), 1u);
        EXPECT_EQ(calls_->at(0).paths, std::vector<std::string>{dir_ + "/src/lib/deep.js"});

        fs::create_directory(dir_ + "/new");
        co_await settle();
        EXPECT_EQ(calls_->size(), 2u);
        EXPECT_EQ(calls_->at(1).paths, std::vector<std::string>{dir_ + "/new"});
        write(dir_ + "/new/file.js");
        co_await settle();
        EXPECT_EQ(calls_->size(), 3u);
        EXPECT_EQ(calls_->at(2).paths, std::vector<std::string>{dir_ + "/new/file.js"});

        // A tree made in one go: what lands before its watches exist is reported too.
        fs::create_directories(dir_ + "/a/b/c");
        write(dir_ + "/a/b/c/made.js");
        co_await settle();
        EXPECT_EQ(calls_->size(), 4u);
        auto& made = calls_->at(3).paths;
        EXPECT_NE(std::find(made.begin(), made.end(), dir_ + "/a/b/c/made.js"), made.end());
        write(dir_ + "/a/b/c/later.js");
        co_await settle();
        EXPECT_EQ(calls_->size(), 5u);
        EXPECT_EQ(calls_->at(4).paths, std::vector<std::string>{dir_ + "/a/b/c/later.js"});

        // Moved away, then changed: no longer ours.
        fs::rename(dir_ + "/a",
                   ::testing::TempDir() + "funcie_watch_moved_" + std::to_string(::getpid()));
        co_await settle();
        EXPECT_EQ(calls_->size(), 6u);
        write(::testing::TempDir() + "funcie_watch_moved_" + std::to_string(::getpid()) +
              "/b/c/later.js");
        co_await settle();
        EXPECT_EQ(calls_->size(), 6u);
        fs::remove_all(::testing::TempDir() + "funcie_watch_moved_" + std::to_string(::getpid()));
      },
      std::chrono::seconds(20));
}

TEST_F(Watcher, IgnoredNamesDoNotFire) {
  fs::create_directories(dir_ + "/.git/objects");
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        auto w = watch(io, {dir_});
        write(dir_ + "/.handler.js.swp");
        write(dir_ + "/.handler.js.swx");
        write(dir_ + "/handler.js~");
        write(dir_ + "/.#handler.js");
        write(dir_ + "/4913");
        write(dir_ + "/.git/index");
        write(dir_ + "/.git/objects/ab");
        fs::remove(dir_ + "/4913");
        co_await settle();
        EXPECT_TRUE(calls_->empty()) << calls_->at(0).paths.front();
      },
      std::chrono::seconds(10));
}

TEST_F(Watcher, AMissingPathThrowsNamingIt) {
  asio::io_context io;
  const auto missing = dir_ + "/nope/handler.js";
  try {
    watcher w(io.get_executor(), {dir_, missing}, debounce, [](std::vector<std::string>) {});
    FAIL() << "watched a missing path";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
}

TEST_F(Watcher, DestroyingStopsAtOnce) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        auto w = watch(io, {dir_});
        write(dir_ + "/handler.js");
        co_await sleep_for(debounce / 2);  // the event is in, the call not yet due
        w.reset();
        co_await settle();
        EXPECT_TRUE(calls_->empty());
      },
      std::chrono::seconds(10));
}

TEST_F(Watcher, TheHandlerMayDestroyTheWatcher) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        std::unique_ptr<watcher> w;
        int calls = 0;
        w = std::make_unique<watcher>(io.get_executor(), std::vector<std::string>{dir_}, debounce,
                                      [&](std::vector<std::string>) {
                                        ++calls;
                                        w.reset();
                                      });
        write(dir_ + "/a.js");
        co_await settle();
        write(dir_ + "/b.js");
        co_await settle();
        EXPECT_EQ(calls, 1);
        EXPECT_EQ(w, nullptr);
      },
      std::chrono::seconds(10));
}

}  // namespace
