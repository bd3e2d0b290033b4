// funcie_bench_tunnel: what the Redis tunnel costs, next to Redis itself measured in the same
// run (the brief's targets are ratios against these baselines).
//
// One run:
//   1. starts redis-server on a free loopback port;
//   2. baselines: PING round trip (median, p99) on one connection of funcie's Redis client;
//      SET+GET of 6 MB; `redis-benchmark -t ping -c 64` throughput;
//   3. no consumer: forwarder::forward() of a 1 KB event with nobody connected (it returns
//      "run it in the cloud"): the per-invocation cost of the presence check;
//   4. starts `funcie connect --concurrency 64 -- <echo function>` and measures forward()
//      (the whole tunnel: offer, claim, local Runtime API, echo, response) sequentially for
//      1 KB, then with 64 in flight, then 6 MB both ways;
//   5. `funcie-cloud wrap -- <echo>` (the layer's binary) as Lambda sees it: process start to its
//   first GET /next on a
//      Runtime API served here, and its resident memory after 1000 forwarded invocations
//      and after a 6 MB one;
//   6. stops everything it started by pid and prints the figures with ratios.
// Asserts nothing about speed. Exit 0 unless something did not work.
#include "forwarder/forwarder.hpp"
#include "process/child.hpp"
#include "redis/connection.hpp"
#include "runtime_api/server.hpp"
#include "util/ids.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef FUNCIE_BENCH_CLI
#define FUNCIE_BENCH_CLI "funcie"
#endif
#ifndef FUNCIE_BENCH_CLOUD  // what the layer and the proxy zip ship
#define FUNCIE_BENCH_CLOUD "funcie-cloud"
#endif
#ifndef FUNCIE_BENCH_ECHO
#define FUNCIE_BENCH_ECHO "funcie_example_echo"
#endif

namespace {

using namespace funcie;
namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct stats {
  double median_us = 0;
  double p99_us = 0;
};

stats summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  if (us.empty()) return {};
  return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}

double since_us(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

int free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

std::vector<std::string> inherited_env() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

// Children write their per-invocation lines to stderr; the figures should not drown in them.
// Spawns with fd 2 pointing at /dev/null, then puts ours back.
template <typename... Args>
std::unique_ptr<process::child> spawn_quiet(Args&&... args) {
  const int saved = ::dup(2);
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ::dup2(devnull, 2);
  std::unique_ptr<process::child> c;
  try {
    c = std::make_unique<process::child>(std::forward<Args>(args)...);
  } catch (...) {
    ::dup2(saved, 2);
    throw;
  }
  ::dup2(saved, 2);
  ::close(saved);
  ::close(devnull);
  return c;
}

long rss_kb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

asio::awaitable<void> sleep_for(clock_type::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

runtime_api::invocation make_invocation(std::string payload) {
  runtime_api::invocation inv;
  inv.context.request_id = funcie::util::new_request_id();
  inv.context.deadline_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch() + 60s)
                                .count();
  inv.context.function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench";
  inv.payload = std::move(payload);
  return inv;
}

std::string json_payload(std::size_t size) {
  std::string s = "{\"pad\":\"";
  s.append(size - s.size() - 2, 'x');
  s += "\"}";
  return s;
}

double redis_benchmark_ping(int port) {
  const auto cmd = fmt::format(
      "redis-benchmark -h 127.0.0.1 -p {} -t ping -c 64 -n 200000 --csv 2>/dev/null", port);
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return 0;
  char buf[512];
  double best = 0;
  while (std::fgets(buf, sizeof buf, p) != nullptr) {
    std::string line(buf);
    if (line.find("PING_MBULK") == std::string::npos) continue;
    const auto a = line.find(",\"");
    if (a != std::string::npos) best = std::atof(line.c_str() + a + 2);
  }
  pclose(p);
  return best;
}

/// --no-history: funcie connect records nothing (the tunnel alone).
bool no_history = false;
/// --only throughput|big: the baselines and that one figure (for profiling and repeated runs).
std::string only;
bool wanted(std::string_view phase) {
  return only.empty() || only == phase;
}

struct figures {
  stats ping, no_consumer, forwarded, six_mb_raw, six_mb_forwarded;
  double ping_throughput = 0, forwarded_throughput = 0;
  stats wrap_start;
  long wrap_rss_kb = 0, wrap_rss_6mb_kb = 0;
};

asio::awaitable<stats> time_forward(forwarder::forwarder& fwd, std::size_t n, std::size_t size,
                                    bool expect_taken) {
  std::vector<double> us;
  const auto payload = json_payload(size);
  for (std::size_t i = 0; i < n; ++i) {
    auto inv = make_invocation(payload);
    const auto t0 = clock_type::now();
    auto result = co_await fwd.forward(inv);
    us.push_back(since_us(t0));
    if (result.has_value() != expect_taken) {
      throw std::runtime_error(expect_taken ? "an invocation was not forwarded"
                                            : "an invocation was forwarded with nobody connected");
    }
    if (result && (result->outcome != runtime_api::result::kind::success ||
                   result->body.size() != payload.size())) {
      throw std::runtime_error("a forwarded invocation came back wrong: " +
                               result->body.substr(0, 200));
    }
  }
  co_return summarize(std::move(us));
}

asio::awaitable<double> forwarded_throughput(forwarder::forwarder& fwd, int in_flight,
                                             clock_type::duration length) {
  std::size_t done = 0;
  int running = in_flight;
  const auto until = clock_type::now() + length;
  const auto t0 = clock_type::now();
  auto ex = co_await asio::this_coro::executor;
  for (int i = 0; i < in_flight; ++i) {
    asio::co_spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          const auto payload = json_payload(1024);
          while (clock_type::now() < until) {
            auto r = co_await fwd.forward(make_invocation(payload));
            if (!r) throw std::runtime_error("not forwarded under load");
            ++done;
          }
          --running;
        },
        asio::detached);
  }
  while (running > 0) co_await sleep_for(10ms);
  co_return static_cast<double>(done) / (since_us(t0) / 1e6);
}

/// One raw 6 MB SET+GET on `r`, in µs.
asio::awaitable<double> raw_six_mb(redis::connection& r) {
  static const std::string big(6 * 1024 * 1024, 'x');
  std::vector<std::string_view> set{"SET", "bench:6mb", big};
  std::vector<std::string_view> get{"GET", "bench:6mb"};
  const auto t0 = clock_type::now();
  co_await r.execute(set);
  auto back = co_await r.execute(get);
  const double us = since_us(t0);
  if (back.str.size() != big.size()) throw std::runtime_error("6 MB GET came back short");
  co_return us;
}

asio::awaitable<void> wait_for_consumer(redis::connection& r, const std::string& app) {
  const std::string key = "funcie:{" + app + "}:consumers";
  for (int i = 0; i < 500; ++i) {
    std::vector<std::string_view> zcard{"ZCARD", key};
    auto reply = co_await r.execute(zcard);
    if (reply.integer > 0) co_return;
    co_await sleep_for(20ms);
  }
  throw std::runtime_error("funcie connect did not join the tunnel within 10 s");
}

// `funcie wrap -- echo`, with this process as its Lambda Runtime API.
asio::awaitable<void> measure_wrap(figures& f, const std::string& backend) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<double> start_us;
  for (int round = 0; round < 15; ++round) {
    runtime_api::server lambda(ex);
    auto env = inherited_env();
    std::erase_if(env, [](const std::string& e) { return e.rfind("FUNCIE_", 0) == 0; });
    env.push_back("AWS_LAMBDA_RUNTIME_API=" + lambda.address());
    env.push_back("AWS_LAMBDA_FUNCTION_NAME=bench");
    env.push_back("FUNCIE_BACKEND=" + backend);
    const bool last = round == 14;
    const auto t0 = clock_type::now();
    const std::vector<std::string> argv{FUNCIE_BENCH_CLOUD, "wrap", "--", FUNCIE_BENCH_ECHO};
    auto wrap_process = spawn_quiet(ex, argv, env);
    auto& wrap = *wrap_process;
    if (auto init_error = co_await lambda.wait_ready()) {
      throw std::runtime_error("funcie wrap failed to start: " + init_error->body);
    }
    start_us.push_back(since_us(t0));
    if (!last) {
      lambda.close();
      continue;
    }
    const auto payload = json_payload(1024);
    for (int i = 0; i < 1000; ++i) {
      auto r = co_await lambda.invoke(make_invocation(payload));
      if (r.outcome != runtime_api::result::kind::success) {
        throw std::runtime_error("wrap: an invocation failed: " + r.body.substr(0, 200));
      }
      co_await lambda.wait_ready();
    }
    f.wrap_rss_kb = rss_kb(wrap.pid());
    auto big = co_await lambda.invoke(make_invocation(json_payload(6 * 1024 * 1024 - 64)));
    if (big.outcome != runtime_api::result::kind::success) {
      throw std::runtime_error("wrap: the 6 MB invocation failed");
    }
    co_await lambda.wait_ready();
    f.wrap_rss_6mb_kb = rss_kb(wrap.pid());
    lambda.close();
  }
  f.wrap_start = summarize(start_us);
}

asio::awaitable<void> run(figures& f) {
  auto ex = co_await asio::this_coro::executor;
  const int port = free_port();
  const std::vector<std::string> redis_argv{
      "redis-server", "--bind", "127.0.0.1", "--port",   std::to_string(port), "--save", "",
      "--appendonly", "no",     "--logfile", "/dev/null"};
  process::child redis_server(ex, redis_argv, inherited_env());
  const std::string url = "redis://127.0.0.1:" + std::to_string(port);
  redis::connect_options copts;
  copts.server = redis::parse_url(url);
  copts.connect_timeout = 2000ms;
  std::unique_ptr<redis::connection> r;
  for (int i = 0; i < 100 && !r; ++i) {
    try {
      r = co_await redis::connection::connect(ex, copts);
    } catch (const redis::error&) {
    }
    if (!r) co_await sleep_for(20ms);
  }
  if (!r) throw std::runtime_error("redis-server did not start");

  // Baselines.
  {
    std::vector<double> us;
    std::vector<std::string_view> ping{"PING"};
    for (int i = 0; i < 3000; ++i) {
      const auto t0 = clock_type::now();
      co_await r->execute(ping);
      if (i >= 500) us.push_back(since_us(t0));
    }
    f.ping = summarize(std::move(us));
    us.clear();
    for (int i = 0; i < 15; ++i) us.push_back(co_await raw_six_mb(*r));
    f.six_mb_raw = summarize(std::move(us));
    f.ping_throughput = redis_benchmark_ping(port);
  }

  forwarder::forwarder_config config;
  config.backend.url = url;
  config.backend.app = "bench";
  config.function.name = "bench";
  forwarder::forwarder fwd(ex, config);

  // Nobody connected: every invocation runs in the cloud; the cost is the presence check.
  co_await time_forward(fwd, 200, 1024, false);  // warm-up, connects
  if (wanted("sequential")) f.no_consumer = co_await time_forward(fwd, 3000, 1024, false);

  auto env = inherited_env();
  // funcie connect records each invocation in its history (on by default, as a developer has
  // it): into a file of this run, never the user's own; --no-history measures the tunnel alone.
  const std::string history_file =
      fmt::format("{}/funcie-bench-history-{}.sqlite3",
                  std::filesystem::temp_directory_path().string(), ::getpid());
  // FUNCIE_BENCH_CLI_PATH: another funcie binary as the consumer (before/after comparisons).
  const char* cli = std::getenv("FUNCIE_BENCH_CLI_PATH");
  std::vector<std::string> connect_argv{cli != nullptr ? cli : FUNCIE_BENCH_CLI,
                                        "--log-level",
                                        "warn",
                                        "connect",
                                        "--backend",
                                        url,
                                        "--app",
                                        "bench",
                                        "--concurrency",
                                        "64"};
  if (no_history) {
    connect_argv.emplace_back("--no-history");
  } else {
    connect_argv.emplace_back("--history");
    connect_argv.push_back(history_file);
  }
  connect_argv.emplace_back("--");
  // FUNCIE_BENCH_ECHO_PATH: another echo runtime (before/after comparisons of src/runtime).
  const char* echo = std::getenv("FUNCIE_BENCH_ECHO_PATH");
  connect_argv.emplace_back(echo != nullptr ? echo : FUNCIE_BENCH_ECHO);
  auto consumer_process = spawn_quiet(ex, connect_argv, env);
  auto& consumer = *consumer_process;
  co_await wait_for_consumer(*r, "bench");
  co_await time_forward(fwd, 200, 1024, true);  // warm-up: starts the first environment
  if (wanted("sequential")) f.forwarded = co_await time_forward(fwd, 3000, 1024, true);
  if (wanted("throughput")) {
    co_await forwarded_throughput(fwd, 64, 1s);  // warm-up: 64 environments
    f.forwarded_throughput = co_await forwarded_throughput(fwd, 64, 4s);
    // The baseline again, right after: this machine's load moves it between runs, and the
    // ratio is meant against Redis at the same moment (the larger of the two is kept).
    f.ping_throughput = std::max(f.ping_throughput, redis_benchmark_ping(port));
  }
  if (wanted("big")) {
    // Each forwarded 6 MB round trip right after a raw SET+GET, so that both meet the same load.
    std::vector<double> raw, forwarded;
    for (int i = 0; i < 15; ++i) {
      raw.push_back(co_await raw_six_mb(*r));
      forwarded.push_back((co_await time_forward(fwd, 1, 6 * 1024 * 1024 - 64, true)).median_us);
    }
    f.six_mb_raw = summarize(std::move(raw));
    f.six_mb_forwarded = summarize(std::move(forwarded));
  }

  if (wanted("wrap")) co_await measure_wrap(f, url);

  consumer.signal(SIGINT);
  co_await consumer.wait();
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::error_code ignored;
    std::filesystem::remove(history_file + suffix, ignored);
  }
  redis_server.signal(SIGTERM);
  co_await redis_server.wait();
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--no-history") {
      no_history = true;
    } else if (arg == "--only" && i + 1 < argc &&
               std::string_view("sequential throughput big wrap").find(argv[i + 1]) !=
                   std::string_view::npos) {
      only = argv[++i];
    } else {
      fmt::print(
          stderr,
          "usage: funcie_bench_tunnel [--no-history] [--only sequential|throughput|big|wrap]\n");
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);
  figures f;
  asio::io_context io;
  std::exception_ptr failure;
  asio::co_spawn(io, run(f), [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      fmt::print(stderr, "funcie_bench_tunnel: {}\n", e.what());
      return 1;
    }
  }
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  fmt::print(
      "funcie_bench_tunnel (loopback, medians; target from the brief in brackets; funcie "
      "connect {})\n",
      no_history ? "with --no-history" : "recording its history, the default");
  fmt::print("  Redis PING round trip            median {:8.1f} us   p99 {:8.1f} us\n",
             f.ping.median_us, f.ping.p99_us);
  fmt::print(
      "  forwarded 1 KB invocation        median {:8.1f} us   p99 {:8.1f} us   = {:.1f}x / {:.1f}x "
      "PING  [4x / 10x]\n",
      f.forwarded.median_us, f.forwarded.p99_us, ratio(f.forwarded.median_us, f.ping.median_us),
      ratio(f.forwarded.p99_us, f.ping.p99_us));
  fmt::print(
      "  no consumer (presence check)     median {:8.1f} us   p99 {:8.1f} us   = {:.1f}x PING      "
      "  [~1x]\n",
      f.no_consumer.median_us, f.no_consumer.p99_us,
      ratio(f.no_consumer.median_us, f.ping.median_us));
  fmt::print(
      "  64 in flight                     {:8.0f} inv/s   redis-benchmark PING -c 64 {:8.0f}/s = "
      "{:.3f}  [>= 0.25]\n",
      f.forwarded_throughput, f.ping_throughput, ratio(f.forwarded_throughput, f.ping_throughput));
  fmt::print(
      "  6 MB request + 6 MB response     median {:8.1f} ms   raw SET+GET 6 MB {:6.1f} ms = "
      "{:.2f}x  [3x]\n",
      f.six_mb_forwarded.median_us / 1000, f.six_mb_raw.median_us / 1000,
      ratio(f.six_mb_forwarded.median_us, f.six_mb_raw.median_us));
  fmt::print(
      "  funcie wrap start to first /next median {:6.2f} ms   p99 {:6.2f} ms (includes the echo "
      "runtime's start)  [20 ms]\n",
      f.wrap_start.median_us / 1000, f.wrap_start.p99_us / 1000);
  fmt::print(
      "  funcie wrap VmRSS after 1000 forwarded 1 KB {:6.1f} MB, after a 6 MB one {:6.1f} MB  [10 "
      "MB]\n",
      f.wrap_rss_kb / 1024.0, f.wrap_rss_6mb_kb / 1024.0);
  return 0;
}
