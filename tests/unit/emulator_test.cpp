// emulate::emulator with a real runtime: a bash+curl bootstrap against each environment's
// own Runtime API. Reload (restart), the bounded wait for a free environment, output
// capture and the working directory.
#include "emulate/emulator.hpp"

#include "../support/async.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace funcie;
using funcie::test::run_async;
using funcie::test::sleep_for;
using std::chrono::milliseconds;

// Says what it handles on stdout and stderr, sleeps for an event "sleepN", and answers
// "PID CWD LAMBDA_TASK_ROOT".
constexpr const char* bootstrap = R"(#!/usr/bin/env bash
set -u
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
h=$(mktemp)
trap 'rm -f "$h"' EXIT
while true; do
  event=$(curl -sS -D "$h" "$api/invocation/next")
  id=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  echo "handling $event in $$"
  echo "stderr $event in $$" >&2
  case "$event" in sleep*) sleep "${event#sleep}";; esac
  curl -sS -o /dev/null -X POST "$api/invocation/$id/response" \
    --data-binary "$$ $(pwd) $LAMBDA_TASK_ROOT"
done
)";

std::int64_t now_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool alive(int pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

struct answer {
  int pid = 0;
  std::string cwd;
  std::string task_root;
};

answer parse(const emulate::outcome& out) {
  answer a;
  std::istringstream in(out.body);
  in >> a.pid >> a.cwd >> a.task_root;
  return a;
}

// An invocation running on its own, as the consumer runs several at once.
struct running {
  bool done = false;
  emulate::outcome result;
  std::exception_ptr error;
};

class Emulator : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "funcie_emulator_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir_);
    path_ = dir_ + "/bootstrap";
    std::ofstream(path_) << bootstrap;
    ::chmod(path_.c_str(), 0755);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  emulate::function_config config(unsigned concurrency) const {
    emulate::function_config c;
    c.name = "orders";
    c.command = {path_};
    c.concurrency = concurrency;
    c.timeout = std::chrono::seconds(30);
    return c;
  }

  runtime_api::invocation invocation(std::string payload, std::int64_t deadline_ms = 0) {
    runtime_api::invocation inv;
    inv.context.request_id = "req-" + std::to_string(++requests_);
    inv.context.deadline_ms = deadline_ms;
    inv.payload = std::move(payload);
    return inv;
  }

  /// Starts an invocation on its own coroutine; `order` records completions by tag.
  std::shared_ptr<running> start(asio::io_context& io, emulate::emulator& em,
                                 runtime_api::invocation inv,
                                 std::vector<std::string>* order = nullptr) {
    auto r = std::make_shared<running>();
    auto tag = inv.context.request_id;
    asio::co_spawn(io, em.invoke(std::move(inv)),
                   [r, order, tag](std::exception_ptr e, emulate::outcome out) {
                     r->done = true;
                     r->error = e;
                     r->result = std::move(out);
                     if (order) order->push_back(tag);
                   });
    return r;
  }

  /// Waits (polling) until `done` holds; fails the test after `limit`.
  static asio::awaitable<void> until(std::function<bool()> done,
                                     milliseconds limit = milliseconds(10000)) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > end) throw std::runtime_error("condition not met");
      co_await sleep_for(milliseconds(10));
    }
  }

  std::string dir_;
  std::string path_;
  int requests_ = 0;
};

TEST_F(Emulator, RestartStopsAnIdleRuntimeAtOnce) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        emulate::emulator em(io.get_executor(), config(2));
        auto first = parse(co_await em.invoke(invocation("a")));
        EXPECT_GT(first.pid, 0);
        EXPECT_TRUE(alive(first.pid));
        EXPECT_EQ(em.busy(), 0u);
        EXPECT_EQ(em.generation(), 0u);
        em.restart();
        EXPECT_EQ(em.generation(), 1u);
        EXPECT_FALSE(alive(first.pid)) << "an idle runtime is killed by the reload";
        auto second = parse(co_await em.invoke(invocation("b")));
        EXPECT_NE(second.pid, first.pid);
        EXPECT_TRUE(alive(second.pid));
        em.restart();
        em.restart();
        EXPECT_EQ(em.generation(), 3u);
        co_await em.shut_down(milliseconds(500));
      },
      std::chrono::seconds(30));
}

TEST_F(Emulator, ABusyRuntimeFinishesItsInvocationAndIsReplacedBeforeReuse) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        emulate::emulator em(io.get_executor(), config(1));
        auto warm = parse(co_await em.invoke(invocation("warm")));
        auto busy = start(io, em, invocation("sleep0.6"));
        co_await until([&] { return em.busy() == 1; });
        auto queued = start(io, em, invocation("queued"));  // waits for the only one
        co_await until([&] { return em.waiting() == 1; });
        co_await sleep_for(milliseconds(200));
        em.restart();
        EXPECT_TRUE(alive(warm.pid)) << "the busy runtime is not interrupted";
        EXPECT_EQ(em.waiting(), 1u) << "a waiting invocation is unaffected";
        co_await until([&] { return busy->done && queued->done; });
        EXPECT_FALSE(busy->error);
        EXPECT_FALSE(queued->error);
        EXPECT_FALSE(busy->result.function_error) << busy->result.body;
        EXPECT_EQ(parse(busy->result).pid, warm.pid) << "ran in the runtime it started in";
        EXPECT_FALSE(alive(warm.pid)) << "reset once its invocation ended";
        auto fresh = parse(queued->result);
        EXPECT_NE(fresh.pid, warm.pid) << "the next one got a fresh runtime";
        EXPECT_GT(fresh.pid, 0);
        // Warm again afterwards: no reload pending.
        EXPECT_EQ(parse(co_await em.invoke(invocation("again"))).pid, fresh.pid);
        co_await em.shut_down(milliseconds(500));
      },
      std::chrono::seconds(30));
}

// Runs `inv`, then reloads at once: after the environment was handed to the next waiter,
// before that one resumed.
asio::awaitable<void> invoke_then_restart(emulate::emulator& em, runtime_api::invocation inv,
                                          std::shared_ptr<running> r) {
  r->result = co_await em.invoke(std::move(inv));
  EXPECT_EQ(em.waiting(), 0u) << "handed over";
  EXPECT_EQ(em.busy(), 1u);
  em.restart();
  r->done = true;
}

TEST_F(Emulator, ARestartDuringTheHandOverResetsTheEnvironmentBeforeItRuns) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        emulate::emulator em(io.get_executor(), config(1));
        auto first = std::make_shared<running>();
        asio::co_spawn(io, invoke_then_restart(em, invocation("sleep0.3"), first), asio::detached);
        co_await until([&] { return em.busy() == 1; });
        auto queued = start(io, em, invocation("queued"));
        co_await until([&] { return em.waiting() == 1; });
        co_await until([&] { return first->done && queued->done; });
        EXPECT_FALSE(queued->error);
        const auto old_pid = parse(first->result).pid;
        const auto new_pid = parse(queued->result).pid;
        EXPECT_GT(old_pid, 0);
        EXPECT_NE(new_pid, old_pid) << "the queued one did not run in the old runtime";
        EXPECT_FALSE(alive(old_pid));
        EXPECT_EQ(em.generation(), 1u);
        co_await em.shut_down(milliseconds(500));
      },
      std::chrono::seconds(30));
}

TEST_F(Emulator, AWaitEndsAtTheInvocationsDeadline) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        emulate::emulator em(io.get_executor(), config(1));
        auto busy = start(io, em, invocation("sleep1"));
        co_await until([&] { return em.busy() == 1; });
        auto begin = std::chrono::steady_clock::now();
        auto timed_out = co_await em.invoke(invocation("late", now_ms() + 300));
        auto waited = std::chrono::steady_clock::now() - begin;
        EXPECT_TRUE(timed_out.function_error);
        EXPECT_EQ(timed_out.error_type, "Sandbox.Timedout");
        EXPECT_NE(timed_out.body.find("RequestId: req-2 Error: Task timed out: it waited for a "
                                      "free execution environment until its deadline (all 1 "
                                      "busy; more with --concurrency)"),
                  std::string::npos)
            << timed_out.body;
        EXPECT_GE(waited, milliseconds(250));
        EXPECT_LT(waited, milliseconds(900)) << "not until the busy one is free";
        EXPECT_EQ(em.waiting(), 0u);
        EXPECT_FALSE(busy->done);
        co_await until([&] { return busy->done; });
        EXPECT_FALSE(busy->result.function_error);
        // A deadline already gone while all are busy: answered at once.
        auto other = start(io, em, invocation("sleep0.3"));
        co_await until([&] { return em.busy() == 1; });
        auto gone = co_await em.invoke(invocation("gone", now_ms() - 5));
        EXPECT_EQ(gone.error_type, "Sandbox.Timedout");
        co_await until([&] { return other->done; });
        co_await em.shut_down(milliseconds(500));
      },
      std::chrono::seconds(30));
}

TEST_F(Emulator, WaitersThatGiveUpNeverLoseTheEnvironment) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        emulate::emulator em(io.get_executor(), config(1));
        std::vector<std::string> order;
        auto busy = start(io, em, invocation("sleep0.5"), &order);  // req-1
        co_await until([&] { return em.busy() == 1; });
        const auto t0 = now_ms();
        // Odd ones give up early, some right around the moment the environment frees up;
        // even ones wait as long as it takes.
        std::vector<std::shared_ptr<running>> waiters;
        const std::int64_t deadlines[] = {
            t0 + 150, 0, t0 + 450, t0 + 60000, t0 + 480, 0, t0 + 500, 0, t0 + 520, 0, t0 + 200,
        };
        for (auto deadline : deadlines) {
          waiters.push_back(start(io, em, invocation("w", deadline), &order));
        }
        co_await until([&] {
          return busy->done &&
                 std::all_of(waiters.begin(), waiters.end(), [](auto& w) { return w->done; });
        });
        std::size_t ran = 0;
        std::vector<std::string> served;
        for (std::size_t i = 0; i < waiters.size(); ++i) {
          EXPECT_FALSE(waiters[i]->error);
          if (waiters[i]->result.error_type == "Sandbox.Timedout") {
            EXPECT_NE(deadlines[i], 0) << "waiter " << i << " had no deadline to pass";
            EXPECT_NE(deadlines[i], t0 + 60000) << "waiter " << i;
          } else {
            EXPECT_FALSE(waiters[i]->result.function_error) << waiters[i]->result.body;
            ++ran;
            served.push_back("req-" + std::to_string(i + 2));
          }
        }
        EXPECT_GE(ran, 5u) << "the five with no or a far deadline ran";
        // FIFO among those that ran.
        std::vector<std::string> ran_order;
        for (auto& tag : order) {
          if (std::find(served.begin(), served.end(), tag) != served.end()) {
            ran_order.push_back(tag);
          }
        }
        EXPECT_EQ(ran_order, served);
        EXPECT_EQ(em.busy(), 0u) << "the one environment is back, idle";
        EXPECT_EQ(em.waiting(), 0u);
        auto begin = std::chrono::steady_clock::now();
        auto last = co_await em.invoke(invocation("last", now_ms() + 2000));
        EXPECT_FALSE(last.function_error) << last.body;
        EXPECT_LT(std::chrono::steady_clock::now() - begin, milliseconds(1500));
        co_await em.shut_down(milliseconds(500));
      },
      std::chrono::seconds(30));
}

TEST_F(Emulator, OutputReachesTheConfigWithTheEnvironmentsIndex) {
  struct captured {
    unsigned index;
    int stream;
    std::string text;
  };
  auto lines = std::make_shared<std::vector<captured>>();
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        auto c = config(2);
        c.output = [lines](unsigned index, int stream, std::string_view text) {
          lines->push_back({index, stream, std::string(text)});
        };
        emulate::emulator em(io.get_executor(), c);
        auto a = start(io, em, invocation("sleep0.3"));
        auto b = start(io, em, invocation("sleep0.3"));
        co_await until([&] { return a->done && b->done; });
        auto pid_a = parse(a->result).pid;
        auto pid_b = parse(b->result).pid;
        EXPECT_NE(pid_a, pid_b) << "two environments";
        co_await until([&] { return lines->size() >= 4; });
        std::map<unsigned, std::set<std::string>> by_index;
        for (auto& l : *lines) by_index[l.index].insert(std::to_string(l.stream) + " " + l.text);
        EXPECT_EQ(by_index.size(), 2u);
        // Each environment's lines name one runtime, on both streams.
        std::set<int> pids;
        for (auto& [index, texts] : by_index) {
          EXPECT_LT(index, 2u);
          EXPECT_EQ(texts.size(), 2u);
          auto pid_text = texts.begin()->substr(texts.begin()->rfind(' ') + 1);
          pids.insert(std::stoi(pid_text));
          EXPECT_TRUE(texts.count("1 handling sleep0.3 in " + pid_text)) << index;
          EXPECT_TRUE(texts.count("2 stderr sleep0.3 in " + pid_text)) << index;
        }
        EXPECT_EQ(pids, (std::set<int>{pid_a, pid_b}));
        co_await em.shut_down(milliseconds(500));
      },
      std::chrono::seconds(30));
}

TEST_F(Emulator, TheWorkingDirectoryIsTheRuntimesAndItsTaskRoot) {
  run_async(
      [&](asio::io_context& io) -> asio::awaitable<void> {
        auto c = config(1);
        c.working_directory = dir_;
        c.command = {"./bootstrap"};  // found there
        emulate::emulator em(io.get_executor(), c);
        auto out = co_await em.invoke(invocation("cwd"));
        EXPECT_FALSE(out.function_error) << out.body;
        auto a = parse(out);
        EXPECT_EQ(std::filesystem::canonical(a.cwd), std::filesystem::canonical(dir_));
        EXPECT_EQ(std::filesystem::canonical(a.task_root), std::filesystem::canonical(dir_));
        co_await em.shut_down(milliseconds(500));
      },
      std::chrono::seconds(30));
}

}  // namespace
