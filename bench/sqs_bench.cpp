// funcie_bench_sqs: what the SQS tunnel costs, next to SQS itself (funcie's own SQS client)
// measured in the same run, against fauxqs (a real SQS server from npm, in Node, on loopback).
//
// One run:
//   1. starts fauxqs (tests/sqs/sqs_server.mjs) with the queues it needs;
//   2. baselines with aws::sqs_client: SendMessage 1 KB + ReceiveMessage + DeleteMessage
//      round trip; 64 concurrent send+receive+delete loops (messages/s); 6 MiB moved as 7
//      messages sent in parallel, received and deleted (1 MiB queue; also 25 on a 256 KiB one);
//   3. no consumer: forwarder::forward() of 1 KB with nobody connected: the first call (one
//      ListQueueTags: the presence read) and the later ones (no SQS call);
//   4. `funcie connect --backend sqs:// --concurrency 64 -- <echo>` on a 1 MiB queue pair,
//      then on a 256 KiB pair: forward() of 1 KB sequentially, with 64 in flight, and 6 MB
//      request + 6 MB response; on the first pair also how long after "serving app" the
//      forwarder that had learned "nobody connected" forwards again (its background presence
//      read, every FUNCIE_SQS_PRESENCE_MS);
//   5. stops everything it started by pid and prints the figures with ratios.
// Asserts nothing about speed. Exit 0 unless something did not work.
#include "aws/credentials.hpp"
#include "aws/settings.hpp"
#include "aws/sqs_client.hpp"
#include "forwarder/forwarder.hpp"
#include "process/child.hpp"
#include "sqs/sqs_server.hpp"
#include "util/ids.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#ifndef FUNCIE_BENCH_CLI
#define FUNCIE_BENCH_CLI "funcie"
#endif
#ifndef FUNCIE_BENCH_ECHO
#define FUNCIE_BENCH_ECHO "funcie_example_echo"
#endif

namespace {

using namespace funcie;
namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int one_mib = 1024 * 1024;
constexpr int small_queue = 256 * 1024;
constexpr std::size_t six_mb = 6 * 1024 * 1024;
constexpr int round_trips = 200;
constexpr int no_consumer_calls = 1000;
constexpr int in_flight = 64;
constexpr int six_mb_rounds = 5;

struct stats {
  double median_us = 0;
  double p99_us = 0;
  std::size_t n = 0;
};

stats summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  if (us.empty()) return {};
  return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)], us.size()};
}

double since_us(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

/// The laptop's slow link: a TCP proxy on 127.0.0.1 that holds every chunk `delay` in each
/// direction before passing it on (blocking sockets, a reader and a writer thread per
/// direction). Lives until the process exits.
class delay_proxy {
 public:
  delay_proxy(std::uint16_t upstream_port, std::chrono::milliseconds delay)
      : upstream_(upstream_port), delay_(delay) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::listen(listener_, 64) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("delay_proxy: cannot listen");
    }
    port_ = ntohs(a.sin_port);
    std::thread([this] { accept_loop(); }).detach();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  struct pipe_state {
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::pair<clock_type::time_point, std::string>> chunks;
    bool closed = false;
  };

  void accept_loop() {
    for (;;) {
      const int client = ::accept(listener_, nullptr, nullptr);
      if (client < 0) return;
      const int server = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(upstream_);
      if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(client);
        ::close(server);
        continue;
      }
      const int one = 1;
      ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      relay(client, server);
      relay(server, client);
    }
  }

  void relay(int from, int to) {
    auto p = std::make_shared<pipe_state>();
    const auto delay = delay_;
    std::thread([p, from, delay] {
      char buffer[65536];
      for (;;) {
        const auto n = ::recv(from, buffer, sizeof buffer, 0);
        std::lock_guard lock(p->m);
        if (n <= 0) {
          p->closed = true;
          p->cv.notify_all();
          return;
        }
        p->chunks.emplace_back(clock_type::now() + delay,
                               std::string(buffer, static_cast<std::size_t>(n)));
        p->cv.notify_all();
      }
    }).detach();
    std::thread([p, to] {
      for (;;) {
        std::unique_lock lock(p->m);
        p->cv.wait(lock, [&] { return !p->chunks.empty() || p->closed; });
        if (p->chunks.empty()) {
          ::shutdown(to, SHUT_WR);
          return;
        }
        auto [due, bytes] = std::move(p->chunks.front());
        p->chunks.pop_front();
        lock.unlock();
        std::this_thread::sleep_until(due);
        std::size_t at = 0;
        while (at < bytes.size()) {
          const auto n = ::send(to, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
          if (n <= 0) return;
          at += static_cast<std::size_t>(n);
        }
      }
    }).detach();
  }

  std::uint16_t upstream_;
  std::chrono::milliseconds delay_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
};

std::vector<std::string> inherited_env() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

asio::awaitable<void> sleep_for(clock_type::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

/// Runs `make(i)` for i in [0, n) at once; returns when all are done, rethrows the first
/// failure.
template <class Make>
asio::awaitable<void> in_parallel(std::size_t n, Make make) {
  auto ex = co_await asio::this_coro::executor;
  std::size_t left = n;
  std::exception_ptr first;
  asio::steady_timer done(ex, clock_type::time_point::max());
  for (std::size_t i = 0; i < n; ++i) {
    asio::co_spawn(ex, make(i), [&](std::exception_ptr e) {
      if (e && !first) first = e;
      if (--left == 0) done.cancel();
    });
  }
  if (left > 0) {
    boost::system::error_code ignored;
    co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  if (first) std::rethrow_exception(first);
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

// ---- baselines: funcie's own SQS client ----------------------------------------------------

std::shared_ptr<aws::sqs_client> make_client(asio::any_io_executor ex) {
  const aws::getenv_fn getenv = [](const char* name) { return std::getenv(name); };
  const auto service = aws::resolve_service(getenv, "sqs");
  aws::sqs_client_options options;
  options.region = service.region;
  options.endpoint = service.endpoint;
  return std::make_shared<aws::sqs_client>(ex, options,
                                           std::make_shared<aws::credential_provider>(ex, getenv));
}

asio::awaitable<void> send_one(std::shared_ptr<aws::sqs_client> c, const std::string& queue,
                               const std::string& body) {
  co_await c->send_message(queue, body);
}

asio::awaitable<void> delete_one(std::shared_ptr<aws::sqs_client> c, const std::string& queue,
                                 const std::string& receipt) {
  co_await c->delete_message(queue, receipt);
}

/// (a) SendMessage 1 KB, ReceiveMessage (long poll) that gets it, DeleteMessage.
asio::awaitable<stats> sqs_round_trip(std::shared_ptr<aws::sqs_client> c, std::string queue) {
  const std::string body(1024, 'x');
  std::vector<double> us;
  for (int i = 0; i < round_trips + 20; ++i) {
    const auto t0 = clock_type::now();
    co_await c->send_message(queue, body);
    auto got = co_await c->receive_message(queue, 1, 20);
    if (got.size() != 1 || got.front().body != body) {
      throw std::runtime_error("SQS round trip: the message did not come back");
    }
    co_await c->delete_message(queue, got.front().receipt_handle);
    if (i >= 20) us.push_back(since_us(t0));
  }
  co_return summarize(std::move(us));
}

/// Deletes whatever is left in `queue`.
asio::awaitable<void> drain(std::shared_ptr<aws::sqs_client> c, std::string queue) {
  for (;;) {
    auto got = co_await c->receive_message(queue, 10, 0);
    if (got.empty()) co_return;
    for (const auto& m : got) co_await c->delete_message(queue, m.receipt_handle);
  }
}

/// (b) `in_flight` loops of send + receive + delete for `length`: messages per second.
asio::awaitable<double> sqs_throughput(std::shared_ptr<aws::sqs_client> c, std::string queue,
                                       clock_type::duration length) {
  const std::string body(1024, 'x');
  std::size_t done = 0;
  const auto t0 = clock_type::now();
  const auto until = t0 + length;
  auto loop = [&]() -> asio::awaitable<void> {
    while (clock_type::now() < until) {
      co_await c->send_message(queue, body);
      auto got = co_await c->receive_message(queue, 1, 10);
      for (const auto& m : got) {
        co_await c->delete_message(queue, m.receipt_handle);
        ++done;
      }
    }
  };
  co_await in_parallel(in_flight, [&](std::size_t) { return loop(); });
  const double rate = static_cast<double>(done) / (since_us(t0) / 1e6);
  co_await drain(c, queue);
  co_return rate;
}

/// (c) 6 MiB as `pieces` messages sent in parallel, then received and deleted.
asio::awaitable<stats> sqs_six_mb(std::shared_ptr<aws::sqs_client> c, std::string queue,
                                  std::size_t pieces) {
  const std::string body(six_mb / pieces, 'x');
  std::vector<double> us;
  for (int round = 0; round < six_mb_rounds + 1; ++round) {
    const auto t0 = clock_type::now();
    co_await in_parallel(pieces, [&](std::size_t) { return send_one(c, queue, body); });
    std::vector<std::string> receipts;
    while (receipts.size() < pieces) {
      auto got = co_await c->receive_message(queue, 10, 20);
      for (auto& m : got) {
        if (m.body.size() != body.size()) throw std::runtime_error("6 MB: a message came back cut");
        receipts.push_back(std::move(m.receipt_handle));
      }
    }
    co_await in_parallel(receipts.size(),
                         [&](std::size_t i) { return delete_one(c, queue, receipts[i]); });
    if (round > 0) us.push_back(since_us(t0));
  }
  co_return summarize(std::move(us));
}

// ---- the tunnel ----------------------------------------------------------------------------

forwarder::forwarder_config sqs_config(const std::string& request_queue,
                                       const std::string& response_queue) {
  forwarder::forwarder_config config;
  config.backend.url = "sqs://";
  config.backend.app = "bench";
  config.backend.sqs.request_queue_url = request_queue;
  config.backend.sqs.response_queue_url = response_queue;
  config.function.name = "bench";
  return config;
}

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

struct rate {
  double per_second = 0;
  std::size_t done = 0;
};

asio::awaitable<rate> forwarded_throughput(forwarder::forwarder& fwd, clock_type::duration length) {
  std::size_t done = 0;
  const auto t0 = clock_type::now();
  const auto until = t0 + length;
  const auto payload = json_payload(1024);
  auto loop = [&]() -> asio::awaitable<void> {
    while (clock_type::now() < until) {
      auto r = co_await fwd.forward(make_invocation(payload));
      if (!r || r->outcome != runtime_api::result::kind::success) {
        throw std::runtime_error(r ? "an invocation failed under load: " + r->body.substr(0, 200)
                                   : std::string("an invocation was not forwarded under load"));
      }
      ++done;
    }
  };
  co_await in_parallel(in_flight, [&](std::size_t) { return loop(); });
  co_return rate{static_cast<double>(done) / (since_us(t0) / 1e6), done};
}

/// `funcie connect` on one queue pair, started and stopped by pid.
class consumer {
 public:
  /// `endpoint`: the SQS endpoint it uses, when not the process's.
  consumer(asio::any_io_executor ex, const std::string& request_queue,
           const std::string& response_queue, const std::string& endpoint = {}) {
    const std::vector<std::string> argv{FUNCIE_BENCH_CLI,
                                        "--log-level",
                                        "warn",
                                        "connect",
                                        "--backend",
                                        "sqs://",
                                        "--app",
                                        "bench",
                                        "--request-queue",
                                        request_queue,
                                        "--response-queue",
                                        response_queue,
                                        "--concurrency",
                                        std::to_string(in_flight),
                                        "--",
                                        FUNCIE_BENCH_ECHO};
    process::child_options options;
    auto seen = seen_;
    options.on_line = [seen](int stream, std::string_view line) {
      if (stream == 1 && line.find("serving app") != std::string_view::npos) seen->serving = true;
      if (stream == 2) {
        seen->stderr_tail += line;
        seen->stderr_tail += '\n';
        if (seen->stderr_tail.size() > 4000) seen->stderr_tail.erase(0, 2000);
      }
    };
    auto env = inherited_env();
    if (!endpoint.empty()) {
      std::erase_if(env,
                    [](const std::string& v) { return v.starts_with("AWS_ENDPOINT_URL_SQS="); });
      env.push_back("AWS_ENDPOINT_URL_SQS=" + endpoint);
    }
    child_ = std::make_shared<process::child>(ex, argv, env, std::move(options));
    // child::exited() only changes while somebody waits: this watcher does, and keeps the
    // child object alive until it has been reaped.
    asio::co_spawn(
        ex,
        [c = child_, seen]() -> asio::awaitable<void> {
          co_await c->wait();
          seen->exited = true;
        },
        asio::detached);
  }
  ~consumer() {
    if (!seen_->exited) child_->signal(SIGKILL);
  }
  consumer(const consumer&) = delete;
  consumer& operator=(const consumer&) = delete;

  /// Until "serving app" on its stdout (at most 20 s).
  asio::awaitable<void> wait_serving() {
    const auto until = clock_type::now() + 20s;
    while (!seen_->serving) {
      if (seen_->exited || clock_type::now() > until) {
        throw std::runtime_error("funcie connect did not start serving: " + seen_->stderr_tail);
      }
      co_await sleep_for(5ms);
    }
  }

  /// SIGINT to its process group; SIGKILL if it has not left within 15 s. Returns the time
  /// from SIGINT to its exit.
  asio::awaitable<double> stop() {
    const auto t0 = clock_type::now();
    child_->signal(SIGINT);
    while (!seen_->exited && clock_type::now() - t0 < 15s) co_await sleep_for(1ms);
    const double took = since_us(t0);
    if (!seen_->exited) {
      fmt::print(stderr,
                 "funcie_bench_sqs: funcie connect ignored SIGINT for 15 s; killing it. Its "
                 "stderr ended with:\n{}\n",
                 seen_->stderr_tail);
      child_->signal(SIGKILL);
      while (!seen_->exited) co_await sleep_for(5ms);
    }
    co_return took;
  }

 private:
  struct output {
    bool serving = false;
    bool exited = false;
    std::string stderr_tail;
  };
  std::shared_ptr<output> seen_ = std::make_shared<output>();
  std::shared_ptr<process::child> child_;
};

/// With --count-requests: every SQS call goes through tests/sqs/iam_gate.mjs (one more Node
/// hop, so the timings of such a run are not the figures), which counts them by operation.
std::unique_ptr<test::iam_gate> gate;

const char* const operations[] = {"SendMessage",
                                  "SendMessageBatch",
                                  "ReceiveMessage",
                                  "DeleteMessage",
                                  "DeleteMessageBatch",
                                  "ChangeMessageVisibility",
                                  "ChangeMessageVisibilityBatch",
                                  "GetQueueAttributes"};

void reset_count() {
  if (gate) gate->reset();
}

/// SQS requests since reset_count(), per `n` (invocations, messages), by operation.
std::string count_per(std::size_t n) {
  if (!gate || n == 0) return {};
  std::string out;
  double all = 0;
  for (const char* op : operations) {
    const double k = gate->requests(op);
    all += k;
    if (k > 0) out += fmt::format(" {} {:.2f}", op, k / static_cast<double>(n));
  }
  return fmt::format("   SQS requests per call {:.2f}:{}", all / static_cast<double>(n), out);
}

struct pair_figures {
  int queue_bytes = 0;
  stats forwarded;
  rate throughput;
  stats six_mb;
  std::string count_sequential, count_throughput, count_six_mb;
  double stop_us = 0;
  std::string left_over;  ///< messages left on the queues after the runs
};

struct figures {
  stats round_trip;
  double raw_throughput = 0;
  stats six_mb_raw, six_mb_raw_small;
  double first_no_consumer_us = 0;
  stats no_consumer;
  std::string count_no_consumer;
  double back_after_connect_us = 0;
  int not_taken_after_connect = 0;
  pair_figures pairs[2];
  // 4. The laptop's link delayed (--laptop-delay-ms).
  int delay_ms = 0;
  stats link_round_trip;  ///< one GetQueueAttributes through the delayed link
  stats delayed_forwarded;
};

/// How many messages a queue holds, and the kinds of the first few visible ones (peeked
/// with visibility 0: they stay visible).
asio::awaitable<std::string> queue_depth(std::shared_ptr<aws::sqs_client> c, std::string queue) {
  const std::vector<std::string> names{"ApproximateNumberOfMessages",
                                       "ApproximateNumberOfMessagesNotVisible"};
  auto a = co_await c->get_queue_attributes(queue, names);
  std::string kinds;
  if (a["ApproximateNumberOfMessages"] != "0") {
    for (const auto& m : co_await c->receive_message(queue, 10, 0, 0)) {
      const auto eol = m.body.find('\n');
      kinds += (kinds.empty() ? " (" : ", ") + m.body.substr(0, std::min<std::size_t>(eol, 40));
    }
    if (!kinds.empty()) kinds += ")";
  }
  co_return fmt::format("{} visible{} + {} in flight", a["ApproximateNumberOfMessages"], kinds,
                        a["ApproximateNumberOfMessagesNotVisible"]);
}

asio::awaitable<void> measure_pair(pair_figures& p, forwarder::forwarder& fwd,
                                   std::shared_ptr<aws::sqs_client> c, const std::string& req,
                                   const std::string& resp) {
  co_await time_forward(fwd, 20, 1024, true);  // warm-up: the first environment
  reset_count();
  p.forwarded = co_await time_forward(fwd, round_trips, 1024, true);
  p.count_sequential = count_per(round_trips);
  co_await forwarded_throughput(fwd, 1s);  // warm-up: 64 environments
  reset_count();
  p.throughput = co_await forwarded_throughput(fwd, 4s);
  p.count_throughput = count_per(p.throughput.done);
  co_await time_forward(fwd, 1, six_mb - 64, true);  // warm-up
  reset_count();
  p.six_mb = co_await time_forward(fwd, six_mb_rounds, six_mb - 64, true);
  p.count_six_mb = count_per(six_mb_rounds);
  co_await sleep_for(1500ms);  // let late messages settle
  p.left_over = fmt::format("request queue {}; response queue {}", co_await queue_depth(c, req),
                            co_await queue_depth(c, resp));
}

asio::awaitable<void> run(figures& f, bool count_requests, int delay_ms) {
  auto ex = co_await asio::this_coro::executor;
  test::sqs_server server(test::sqs_server::kind::faux, {{"raw", one_mib},
                                                         {"rawtp", one_mib},
                                                         {"raw256", small_queue},
                                                         {"req1m", one_mib},
                                                         {"resp1m", one_mib},
                                                         {"req256", small_queue},
                                                         {"resp256", small_queue},
                                                         {"reqd", one_mib},
                                                         {"respd", one_mib}});
  if (count_requests) {
    gate = std::make_unique<test::iam_gate>(server.endpoint(), std::vector<std::string>{});
  }
  ::setenv("AWS_ENDPOINT_URL_SQS", gate ? gate->endpoint().c_str() : server.endpoint().c_str(), 1);
  auto c = make_client(ex);

  // 1. Baselines.
  f.round_trip = co_await sqs_round_trip(c, server.url("raw"));
  co_await sqs_throughput(c, server.url("rawtp"), 1s);  // warm-up: connections
  f.raw_throughput = co_await sqs_throughput(c, server.url("rawtp"), 4s);
  f.six_mb_raw = co_await sqs_six_mb(c, server.url("raw"), 7);
  f.six_mb_raw_small = co_await sqs_six_mb(c, server.url("raw256"), 25);

  // 2. Nobody connected.
  forwarder::forwarder fwd(ex, sqs_config(server.url("req1m"), server.url("resp1m")));
  {
    const auto t0 = clock_type::now();
    co_await time_forward(fwd, 1, 1024, false);
    f.first_no_consumer_us = since_us(t0);
  }
  reset_count();
  f.no_consumer = co_await time_forward(fwd, no_consumer_calls, 1024, false);
  f.count_no_consumer = count_per(no_consumer_calls);
  co_await sleep_for(1s);

  // 3. Connected, 1 MiB pair. The same forwarder believes nobody is connected: its next
  // background presence read finds the consumer.
  {
    f.pairs[0].queue_bytes = one_mib;
    consumer local(ex, server.url("req1m"), server.url("resp1m"));
    co_await local.wait_serving();
    const auto t0 = clock_type::now();
    const auto payload = json_payload(1024);
    for (;;) {
      auto r = co_await fwd.forward(make_invocation(payload));
      if (r) break;
      ++f.not_taken_after_connect;
      if (clock_type::now() - t0 > 60s) {
        throw std::runtime_error("the forwarder did not find the consumer within 60 s");
      }
      co_await sleep_for(10ms);
    }
    f.back_after_connect_us = since_us(t0);
    co_await measure_pair(f.pairs[0], fwd, c, server.url("req1m"), server.url("resp1m"));
    f.pairs[0].stop_us = co_await local.stop();
  }
  // 256 KiB pair, with a new forwarder (nobody known: it offers at once).
  {
    f.pairs[1].queue_bytes = small_queue;
    forwarder::forwarder small(ex, sqs_config(server.url("req256"), server.url("resp256")));
    consumer local(ex, server.url("req256"), server.url("resp256"));
    co_await local.wait_serving();
    co_await measure_pair(f.pairs[1], small, c, server.url("req256"), server.url("resp256"));
    f.pairs[1].stop_us = co_await local.stop();
  }
  // 4. funcie connect behind a link that delays each direction: the added latency of a
  // forwarded invocation in round trips of that link (docs/sqs.md, "Measured").
  if (delay_ms > 0) {
    f.delay_ms = delay_ms;
    const auto port = static_cast<std::uint16_t>(
        std::stoi(server.endpoint().substr(server.endpoint().rfind(':') + 1)));
    delay_proxy link(port, std::chrono::milliseconds(delay_ms));
    ::setenv("AWS_ENDPOINT_URL_SQS", link.endpoint().c_str(), 1);
    auto through = make_client(ex);
    ::setenv("AWS_ENDPOINT_URL_SQS", server.endpoint().c_str(), 1);
    std::vector<double> rts;
    const std::vector<std::string> names{"MaximumMessageSize"};
    for (int i = 0; i < 60; ++i) {
      const auto t0 = clock_type::now();
      co_await through->get_queue_attributes(server.url("reqd"), names);
      if (i >= 10) rts.push_back(since_us(t0));
    }
    f.link_round_trip = summarize(rts);
    forwarder::forwarder fwd_d(ex, sqs_config(server.url("reqd"), server.url("respd")));
    consumer local(ex, server.url("reqd"), server.url("respd"), link.endpoint());
    co_await local.wait_serving();
    co_await sleep_for(500ms);
    co_await time_forward(fwd_d, 10, 1024, true);  // warm-up
    f.delayed_forwarded = co_await time_forward(fwd_d, 100, 1024, true);
    co_await local.stop();
  }
  if (gate) gate.reset();
  server.stop();
}

}  // namespace

int main(int argc, char** argv) {
  bool count_requests = false;
  int delay_ms = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--count-requests") {
      count_requests = true;
    } else if (std::string_view(argv[i]) == "--laptop-delay-ms" && i + 1 < argc) {
      delay_ms = std::atoi(argv[++i]);
    } else {
      fmt::print(stderr, "usage: funcie_bench_sqs [--count-requests] [--laptop-delay-ms N]\n");
      return 2;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::set_level(spdlog::level::warn);
  // The servers check no credential; these only make the clients sign. Set before anything
  // reads the environment; `funcie connect` inherits them.
  ::setenv("AWS_ACCESS_KEY_ID", "AKIDFUNCIEBENCH", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "funcie-bench-secret-key-not-checked", 1);
  ::unsetenv("AWS_SESSION_TOKEN");
  ::unsetenv("AWS_PROFILE");
  ::setenv("AWS_REGION", "us-east-1", 1);
  ::setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  figures f;
  asio::io_context io;
  std::exception_ptr failure;
  asio::co_spawn(io, run(f, count_requests, delay_ms), [&](std::exception_ptr e) { failure = e; });
  try {
    io.run();
  } catch (const std::exception& e) {
    fmt::print(stderr, "funcie_bench_sqs: {}\n", e.what());
    return 1;
  }
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      fmt::print(stderr, "funcie_bench_sqs: {}\n", e.what());
      return 1;
    }
  }
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  const auto& rt = f.round_trip;
  fmt::print(
      "funcie_bench_sqs: fauxqs (Node) on loopback; medians, p99 where given; ratios against the "
      "baselines of this run{}\n",
      count_requests ? "\n  (--count-requests: every call went through iam_gate.mjs, one more "
                       "Node hop: these timings are not the figures)"
                     : "");
  fmt::print("baselines, funcie's SQS client\n");
  fmt::print("  1a SQS round trip, 1 KB send+receive+delete  median {:9.0f} us   p99 {:8.0f} us\n",
             rt.median_us, rt.p99_us);
  fmt::print("  1b 64 send+receive+delete loops              {:9.0f} messages/s\n",
             f.raw_throughput);
  fmt::print("  1c 6 MiB as 7 messages, 1 MiB queue          median {:9.1f} ms\n",
             f.six_mb_raw.median_us / 1000);
  fmt::print("     6 MiB as 25 messages, 256 KiB queue       median {:9.1f} ms\n",
             f.six_mb_raw_small.median_us / 1000);
  fmt::print("no consumer, forward() of 1 KB\n");
  fmt::print("  2  first call (reads presence: one ListQueueTags)   {:9.1f} ms\n",
             f.first_no_consumer_us / 1000);
  fmt::print(
      "     later calls ({})                         median {:9.2f} us   p99 {:8.2f} us   = "
      "{:.5f}x 1a{}\n",
      f.no_consumer.n, f.no_consumer.median_us, f.no_consumer.p99_us,
      ratio(f.no_consumer.median_us, rt.median_us), f.count_no_consumer);
  fmt::print(
      "     after funcie connect serves: first forwarded after {:.0f} ms ({} calls before it ran "
      "in the cloud)\n",
      f.back_after_connect_us / 1000, f.not_taken_after_connect);
  for (const auto& p : f.pairs) {
    const double raw_same =
        p.queue_bytes == one_mib ? f.six_mb_raw.median_us : f.six_mb_raw_small.median_us;
    fmt::print("connected (funcie connect --concurrency 64 -- echo), {} KiB queue pair\n",
               p.queue_bytes / 1024);
    fmt::print(
        "  3  forwarded 1 KB, sequential               median {:9.0f} us   p99 {:8.0f} us   = "
        "{:.2f}x / {:.2f}x 1a{}\n",
        p.forwarded.median_us, p.forwarded.p99_us, ratio(p.forwarded.median_us, rt.median_us),
        ratio(p.forwarded.p99_us, rt.p99_us), p.count_sequential);
    fmt::print("     64 in flight                             {:9.0f} inv/s   = {:.3f}x 1b{}\n",
               p.throughput.per_second, ratio(p.throughput.per_second, f.raw_throughput),
               p.count_throughput);
    fmt::print(
        "     6 MB request + 6 MB response             median {:9.1f} ms   = {:.2f}x 1c ({:.2f}x "
        "raw on this queue size){}\n",
        p.six_mb.median_us / 1000, ratio(p.six_mb.median_us, f.six_mb_raw.median_us),
        ratio(p.six_mb.median_us, raw_same), p.count_six_mb);
    fmt::print("     funcie connect, SIGINT to exit           {:9.1f} ms\n", p.stop_us / 1000);
    fmt::print("     left 1.5 s after the runs: {}\n", p.left_over);
  }
  if (f.delay_ms > 0) {
    fmt::print("laptop link delayed {} ms each way (funcie connect behind a TCP proxy)\n",
               f.delay_ms);
    fmt::print("  4  link round trip (GetQueueAttributes)     median {:9.0f} us\n",
               f.link_round_trip.median_us);
    fmt::print(
        "     forwarded 1 KB, sequential               median {:9.0f} us   p99 {:8.0f} us   = "
        "{:.2f} link round trips\n",
        f.delayed_forwarded.median_us, f.delayed_forwarded.p99_us,
        ratio(f.delayed_forwarded.median_us, f.link_round_trip.median_us));
  }
  return 0;
}
