#include "process/child.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <string_view>
#include <thread>

namespace asio = boost::asio;
using funcie::process::child;
using funcie::process::exit_status;

namespace {

std::vector<std::string> env() {
  return {"PATH=/usr/bin:/bin"};
}

exit_status run_to_end(const std::vector<std::string>& argv) {
  asio::io_context io;
  child c(io.get_executor(), argv, env());
  auto status = asio::co_spawn(io, c.wait(), asio::use_future);
  io.run();
  return status.get();
}

// Running, not a zombie waiting for a reaper that may be slow in a container.
bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto close = all.rfind(')');
  return close != std::string::npos && close + 2 < all.size() && all[close + 2] != 'Z';
}

}  // namespace

TEST(Child, ReportsExitCodesAndSignalsInLambdasWords) {
  EXPECT_EQ(run_to_end({"true"}).describe(), "exit status 0");
  EXPECT_EQ(run_to_end({"sh", "-c", "exit 3"}).describe(), "exit status 3");
  EXPECT_EQ(run_to_end({"sh", "-c", "kill -KILL $$"}).describe(), "signal: killed");
}

TEST(Child, GetsExactlyTheEnvironmentItIsGiven) {
  setenv("FUNCIE_TEST_LEAK", "secret", 1);
  auto file = testing::TempDir() + "child_env.txt";
  run_to_end({"sh", "-c", "env > " + file});
  std::ifstream in(file);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("PATH=/usr/bin:/bin"), std::string::npos);
  EXPECT_EQ(all.find("FUNCIE_TEST_LEAK"), std::string::npos);
}

TEST(Child, AMissingCommandIsAClearSpawnError) {
  asio::io_context io;
  try {
    child c(io.get_executor(), {"/nonexistent/bootstrap"}, env());
    FAIL() << "spawned a missing command";
  } catch (const funcie::process::spawn_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/bootstrap"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos);
  }
}

TEST(Child, DestroyingKillsTheWholeProcessGroup) {
  asio::io_context io;
  auto file = testing::TempDir() + "grandchild.pid";
  std::remove(file.c_str());
  pid_t leader = 0;
  pid_t grandchild = 0;
  {
    child c(io.get_executor(), {"sh", "-c", "sleep 60 & echo $! > " + file + "; wait"}, env());
    leader = c.pid();
    for (int i = 0; i < 200 && grandchild == 0; ++i) {
      std::ifstream in(file);
      in >> grandchild;
      if (grandchild == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_GT(grandchild, 0);
    EXPECT_TRUE(alive(grandchild));
  }
  EXPECT_FALSE(alive(leader));
  for (int i = 0; i < 100 && alive(grandchild); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(alive(grandchild)) << "a runtime's own children go with it";
}

// --- output capture and working directory ------------------------------------------------

namespace {

using funcie::process::child_options;

struct line {
  int stream;
  std::string text;
  bool operator==(const line&) const = default;
};

std::ostream& operator<<(std::ostream& os, const line& l) {
  return os << l.stream << ":" << l.text.substr(0, 40) << (l.text.size() > 40 ? "..." : "") << " ("
            << l.text.size() << " bytes)";
}

child_options capture(std::vector<line>& into) {
  child_options options;
  options.on_line = [&into](int stream, std::string_view text) {
    into.push_back({stream, std::string(text)});
  };
  return options;
}

// Runs argv to its end and until both pipes are drained (io.run() returns when the readers
// have seen EOF).
std::vector<line> lines_of(const std::vector<std::string>& argv, child_options options = {}) {
  std::vector<line> lines;
  auto with = capture(lines);
  with.working_directory = options.working_directory;
  asio::io_context io;
  child c(io.get_executor(), argv, env(), std::move(with));
  auto status = asio::co_spawn(io, c.wait(), asio::use_future);
  io.run();
  status.get();
  return lines;
}

}  // namespace

TEST(ChildOutput, DeliversEachLineOfStdoutAndStderr) {
  auto lines = lines_of({"sh", "-c", "echo one; echo two >&2; echo; printf 'three\\nfour'"});
  std::vector<line> out, err;
  for (auto& l : lines) (l.stream == 1 ? out : err).push_back(l);
  EXPECT_EQ(out, (std::vector<line>{{1, "one"}, {1, ""}, {1, "three"}, {1, "four"}}));
  EXPECT_EQ(err, (std::vector<line>{{2, "two"}}));
}

TEST(ChildOutput, ALongLineComesInPieces) {
  // 40000 'x', then a line of exactly 16 KiB, then 16 KiB without a newline at EOF.
  auto lines = lines_of({"sh", "-c",
                         "head -c 40000 /dev/zero | tr '\\0' x; echo; "
                         "head -c 16384 /dev/zero | tr '\\0' y; echo; "
                         "head -c 16384 /dev/zero | tr '\\0' z"});
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0].text, std::string(16384, 'x'));
  EXPECT_EQ(lines[1].text, std::string(16384, 'x'));
  EXPECT_EQ(lines[2].text, std::string(40000 - 2 * 16384, 'x'));
  EXPECT_EQ(lines[3].text, std::string(16384, 'y')) << "a line of exactly 16 KiB is one line";
  EXPECT_EQ(lines[4].text, std::string(16384, 'z'));
}

TEST(ChildOutput, ManyLinesArriveInOrder) {
  auto lines =
      lines_of({"sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done"});
  ASSERT_EQ(lines.size(), 3000u);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    ASSERT_EQ(lines[i].text, "line-" + std::to_string(i));
  }
}

TEST(ChildOutput, BeforeReadHoldsThePipesBackAndTheChildWaitsOnItsWrites) {
  asio::io_context io;
  std::vector<line> lines;
  auto options = capture(lines);
  bool open = false;
  asio::steady_timer gate(io, asio::steady_timer::time_point::max());
  options.before_read = [&]() -> asio::awaitable<void> {
    while (!open) {
      boost::system::error_code ec;
      co_await gate.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  };
  // ~250 KB: more than a pipe holds, so the child waits in its writes while it is not read.
  child c(io.get_executor(),
          {"sh", "-c",
           "i=0; while [ $i -lt 5000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; "
           "i=$((i+1)); done"},
          env(), std::move(options));
  auto status = asio::co_spawn(io, c.wait(), asio::use_future);
  asio::steady_timer later(io, std::chrono::milliseconds(500));
  bool held_back = false;
  later.async_wait([&](boost::system::error_code) {
    held_back = lines.empty() && !c.exited();
    open = true;
    gate.cancel();
  });
  io.run();
  EXPECT_EQ(status.get().describe(), "exit status 0");
  EXPECT_TRUE(held_back) << "nothing read, the child still writing, while the gate was closed";
  ASSERT_EQ(lines.size(), 5000u);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    ASSERT_EQ(lines[i].text, "line-" + std::to_string(i) + "-" + std::string(40, 'x'));
  }
}

TEST(ChildOutput, StdinIsDevNullWhenCapturing) {
  auto lines = lines_of({"sh", "-c", "if read x; then echo read:$x; else echo eof; fi"});
  EXPECT_EQ(lines, (std::vector<line>{{1, "eof"}}));
}

TEST(ChildOutput, DestroyingDeliversWhatIsWrittenThenNeverCallsAgain) {
  asio::io_context io;
  auto file = testing::TempDir() + "child_output_daemon.pid";
  std::remove(file.c_str());
  auto lines = std::make_shared<std::vector<line>>();
  child_options options;
  options.on_line = [lines](int stream, std::string_view text) {
    lines->push_back({stream, std::string(text)});
  };
  {
    // A grandchild in its own session keeps writing to the pipe after the group is killed.
    child c(io.get_executor(),
            {"sh", "-c",
             "setsid sh -c 'while true; do echo daemon >&2; sleep 0.01; done' & echo $! > " + file +
                 "; printf 'last words'; sleep 60"},
            env(), std::move(options));
    io.run_for(std::chrono::milliseconds(300));
  }
  ASSERT_FALSE(lines->empty());
  EXPECT_EQ(std::count(lines->begin(), lines->end(), line{1, "last words"}), 1)
      << "the partial line is delivered when the child is destroyed";
  const auto seen = lines->size();
  io.restart();
  io.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(lines->size(), seen) << "no call after the child is gone";
  EXPECT_TRUE(io.stopped()) << "the readers ended although the pipe is still open";
  pid_t daemon = 0;
  std::ifstream(file) >> daemon;
  if (daemon > 0) kill(daemon, SIGKILL);
}

TEST(ChildOutput, TheHandlerMayDestroyTheChild) {
  asio::io_context io;
  std::optional<child> c;
  int calls = 0;
  child_options options;
  options.on_line = [&](int, std::string_view) {
    ++calls;
    c.reset();
  };
  c.emplace(io.get_executor(), std::vector<std::string>{"sh", "-c", "echo a; echo b; sleep 60"},
            env(), std::move(options));
  io.run_for(std::chrono::seconds(5));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(c.has_value());
  EXPECT_TRUE(io.stopped());
}

TEST(ChildOutput, WithoutAHandlerTheOutputIsInherited) {
  // Nothing to read: io.run() returns as soon as the child has been waited for.
  EXPECT_EQ(run_to_end({"sh", "-c", "echo inherited-output-is-fine"}).describe(), "exit status 0");
}

TEST(ChildWorkingDirectory, RunsThereAndFindsARelativeCommandThere) {
  auto dir = testing::TempDir() + "child_cwd_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  {
    std::ofstream script(dir + "/bootstrap");
    script << "#!/bin/sh\npwd\n";
  }
  std::filesystem::permissions(dir + "/bootstrap", std::filesystem::perms::owner_all);
  child_options options;
  options.working_directory = dir;
  auto lines = lines_of({"./bootstrap"}, options);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(std::filesystem::canonical(lines[0].text), std::filesystem::canonical(dir));
  std::filesystem::remove_all(dir);
}

TEST(ChildWorkingDirectory, AMissingOneIsASpawnErrorNamingIt) {
  asio::io_context io;
  child_options options;
  options.working_directory = "/nonexistent/funcie-dir";
  try {
    child c(io.get_executor(), {"true"}, env(), std::move(options));
    FAIL() << "started in a missing directory";
  } catch (const funcie::process::spawn_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/funcie-dir"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
}

TEST(ChildOutput, InheritsNoDescriptorOfTheParentBut0To2) {
  // A descriptor opened without close-on-exec, as Asio opens its sockets.
  const int leaky = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaky, 3);
  // ls lists its own directory descriptor too; the shell's are 0-2 only.
  auto lines = lines_of({"sh", "-c", "ls /proc/$$/fd"});
  ::close(leaky);
  std::vector<std::string> fds;
  for (const auto& l : lines) fds.push_back(l.text);
  EXPECT_EQ(fds, (std::vector<std::string>{"0", "1", "2"}));
}

// A runtime logs, then tells funcie through another channel (its Runtime API response) that
// the invocation is done: collect() delivers what it wrote before, even if the event loop has
// not yet given the pipe readers their turn (LogType Tail lost such lines in CI).
TEST(ChildOutput, CollectDeliversWhatThePipesHoldBeforeTheReadersRun) {
  asio::io_context io;
  auto marker = testing::TempDir() + "child_output_collect.done";
  std::remove(marker.c_str());
  std::vector<line> lines;
  child c(
      io.get_executor(),
      {"sh", "-c", "echo first; echo second >&2; printf unfinished; : > " + marker + "; sleep 60"},
      env(), capture(lines));
  // The event loop does not run: the readers cannot have read anything.
  for (int i = 0; i < 1000 && !std::filesystem::exists(marker); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(std::filesystem::exists(marker)) << "the child did not write within 10 s";
  EXPECT_TRUE(lines.empty());
  c.collect();
  EXPECT_EQ(lines, (std::vector<line>{{1, "first"}, {2, "second"}}))
      << "whole lines now; the unfinished one waits for its newline";
  io.run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(lines.size(), 2u) << "nothing delivered twice by the readers";
  std::remove(marker.c_str());
}
