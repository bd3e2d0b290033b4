#include "process/child.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <csignal>
#include <cstdlib>
#include <fstream>
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
