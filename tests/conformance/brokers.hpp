// The brokers the conformance suite runs its tests against (backend_conftest.cpp): each one
// started on free loopback ports by the test and stopped by pid, with the backend options that
// reach it. Header-only.
//
// The tests use the tunnel interface (tunnel/backend.hpp) alone. Two things a test cannot do
// through it, and which each broker below does its own way:
//   - record what clients send the broker (redis-cli MONITOR; tests/sqs/iam_gate.mjs --record in
//     front of the SQS server), for "the broker sees only sealed bytes";
//   - put on the broker the bytes a forger with write access would put there (a forged or
//     tampered request where a session takes its requests, a response where a forwarder waits
//     for it). These `forger` methods are the only code of the suite that knows a backend's
//     layout, and they build it with the backend's own codecs (redis_backend::app_keys,
//     sqs_backend::encode), so that a change of layout shows here and nowhere else.
#pragma once

#include "../support/env.hpp"
#include "../support/sqs_fixture.hpp"
#include "aws/credentials.hpp"
#include "aws/sqs_client.hpp"
#include "backend/redis/keys.hpp"
#include "backend/sqs/message.hpp"
#include "redis/connection.hpp"
#include "redis/redis_cluster.hpp"
#include "redis/redis_server.hpp"
#include "sqs/sqs_server.hpp"
#include "tunnel/backend.hpp"
#include "util/clock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace funcie::test {

/// How a forger makes its bytes: without the secret (in the clear, or sealed with a key of
/// its own), or by changing one bit of what was sealed with the real key.
enum class forgery { clear, foreign_key, tampered };

inline std::string forge(std::string_view plain, forgery how, const tunnel::keyring& ours,
                         const tunnel::keyring& theirs, bool text) {
  switch (how) {
    case forgery::clear:
      return std::string(plain);
    case forgery::foreign_key:
      return text ? theirs.seal_text(plain) : theirs.seal(plain);
    case forgery::tampered: {
      std::string frame = text ? ours.seal_text(plain) : ours.seal(plain);
      // A byte well inside the sealed part, changed to another one of the same alphabet.
      char& c = frame[frame.find('\n') + 20];
      c = c == 'A' ? 'B' : 'A';
      return frame;
    }
  }
  return {};
}

/// A child process whose stdout goes to a file; killed by pid at the end.
class recorder_process {
 public:
  explicit recorder_process(const std::vector<std::string>& args) {
    char pattern[] = "/tmp/funcie-record-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("recorder: mkdtemp failed");
    dir_ = pattern;
    std::vector<char*> argv;
    for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    const std::string out = (dir_ / "out").string();
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("recorder: fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int in_fd = ::open("/dev/null", O_RDONLY);
      const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (in_fd < 0 || out_fd < 0) ::_exit(126);
      ::dup2(in_fd, 0);
      ::dup2(out_fd, 1);
      ::dup2(out_fd, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~recorder_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  recorder_process(const recorder_process&) = delete;
  recorder_process& operator=(const recorder_process&) = delete;

  std::string output() const {
    std::ifstream in(dir_ / "out", std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

/// What one test uses of a shared broker: an app of its own (and on SQS, queues of its own),
/// so that nothing one test leaves behind reaches another, and the environment the backend
/// reads (the AWS client's settings), set for the test's time.
struct test_scope {
  tunnel::backend_options options;
  std::unique_ptr<aws_test_env> env;  ///< SQS only
};

/// What clients sent the broker since it was made.
class recording {
 public:
  virtual ~recording() = default;
  virtual std::string text() const = 0;
  /// Returns once everything clients sent before the call is in text() (a recorder that
  /// prints asynchronously, such as MONITOR through redis-cli, may still be behind).
  virtual void settle() const {}
};

/// A running broker, shared by the tests of one process (each in its own test_scope).
class broker {
 public:
  virtual ~broker() = default;

  /// The options (and environment) of a new test, with the heartbeat bound given.
  virtual std::unique_ptr<test_scope> new_scope(std::chrono::milliseconds heartbeat) = 0;

  /// Every broker process stops answering (SIGSTOP) and resumes (SIGCONT): a slow or
  /// blackholed broker (rule 6). False: this broker cannot be frozen as a whole without
  /// meaning more than that (a Redis Cluster's nodes declare each other failed).
  virtual bool can_freeze() const { return true; }
  virtual void freeze() = 0;
  virtual void thaw() = 0;

  /// From now on, records what clients send the broker (made after the test's scope and
  /// before the sessions and forwarders whose traffic is to be seen; kept while they run).
  virtual std::unique_ptr<recording> record() = 0;

  /// A forger's request, put where session `session` of `scope` takes its requests.
  virtual boost::asio::awaitable<void> forge_request(const test_scope& scope,
                                                     const std::string& session,
                                                     const tunnel::request& req, forgery how,
                                                     const tunnel::keyring& ours,
                                                     const tunnel::keyring& theirs) = 0;
  /// A forger's response to request `answer.id`, as session `claimant` would send it, put
  /// where the forwarder waiting for that request reads.
  virtual boost::asio::awaitable<void> forge_response(const test_scope& scope,
                                                      const std::string& claimant,
                                                      const tunnel::response& answer, forgery how,
                                                      const tunnel::keyring& ours,
                                                      const tunnel::keyring& theirs) = 0;

 protected:
  /// A new app name for each test.
  std::string next_app() { return "conformance-" + std::to_string(++apps_); }
  int apps_ = 0;
};

// --- Redis ---------------------------------------------------------------------------------

/// MONITOR on each node, through redis-cli.
class redis_recording final : public recording {
 public:
  explicit redis_recording(const std::vector<const redis_server*>& nodes) : nodes_(nodes) {
    for (const auto* node : nodes) {
      monitors_.push_back(std::make_unique<recorder_process>(
          std::vector<std::string>{"/usr/bin/redis-cli", "-h", node->host(), "-p",
                                   std::to_string(node->port()), "monitor"}));
    }
    // redis-cli prints OK once MONITOR holds: nothing sent after that is missed.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (const auto& m : monitors_) {
      while (m->output().find("OK") == std::string::npos) {
        if (std::chrono::steady_clock::now() > until) {
          throw std::runtime_error("redis-cli monitor did not start: " + m->output());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  std::string text() const override {
    std::string all;
    for (const auto& m : monitors_) all += m->output();
    return all;
  }
  /// MONITOR prints commands in the order each node ran them: once a marker sent now is
  /// printed by every monitor, so is everything before it.
  void settle() const override {
    const std::string marker = "funcie-recording-settled-" + std::to_string(++settles_);
    for (const auto* node : nodes_) node->cli({"ECHO", marker});
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (const auto& m : monitors_) {
      while (m->output().find(marker) == std::string::npos) {
        if (std::chrono::steady_clock::now() > until) {
          throw std::runtime_error("redis-cli monitor did not print " + marker + " within 20 s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }

 private:
  std::vector<const redis_server*> nodes_;
  std::vector<std::unique_ptr<recorder_process>> monitors_;
  mutable int settles_ = 0;
};

/// What Redis brokers share: the scope, MONITOR recording and the forger, for the nodes given.
class redis_broker_base : public broker {
 public:
  std::unique_ptr<test_scope> new_scope(std::chrono::milliseconds heartbeat) override {
    auto scope = std::make_unique<test_scope>();
    scope->options.url = url();
    scope->options.app = next_app();
    scope->options.timing.heartbeat = heartbeat;
    return scope;
  }

  std::unique_ptr<recording> record() override {
    return std::make_unique<redis_recording>(nodes());
  }

  boost::asio::awaitable<void> forge_request(const test_scope& scope, const std::string& session,
                                             const tunnel::request& req, forgery how,
                                             const tunnel::keyring& ours,
                                             const tunnel::keyring& theirs) override {
    const std::string item =
        req.id + "\n" + forge(tunnel::encode(req), how, ours, theirs, /*text=*/false);
    co_await push(scope, redis_backend::app_keys(scope.options.app).inbox(session), item);
  }
  boost::asio::awaitable<void> forge_response(const test_scope& scope,
                                              const std::string& /*claimant*/,
                                              const tunnel::response& answer, forgery how,
                                              const tunnel::keyring& ours,
                                              const tunnel::keyring& theirs) override {
    co_await push(scope, redis_backend::app_keys(scope.options.app).resp(answer.id),
                  forge(tunnel::encode(answer), how, ours, theirs, /*text=*/false));
  }

 protected:
  virtual std::string url() const = 0;
  virtual std::vector<const redis_server*> nodes() const = 0;

 private:
  static boost::asio::awaitable<void> push(const test_scope& scope, const std::string& key,
                                           const std::string& value) {
    redis::connect_options c;
    c.server = redis::parse_url(scope.options.url);
    c.route_key = redis_backend::app_keys(scope.options.app).channel();
    auto conn = co_await redis::connection::connect(co_await boost::asio::this_coro::executor, c);
    std::vector<std::string_view> rpush{"RPUSH", key, value};
    co_await conn->execute_checked(rpush);
    conn->close();
  }
};

/// One redis-server.
class redis_broker final : public redis_broker_base {
 public:
  void freeze() override { server_.freeze(); }
  void thaw() override { server_.thaw(); }

 protected:
  std::string url() const override { return server_.url(); }
  std::vector<const redis_server*> nodes() const override { return {&server_}; }

 private:
  redis_server server_;
};

/// A Redis Cluster of three masters (no replicas: what the suite checks needs no failover;
/// tests/redis/redis_cluster_redistest.cpp has those); the URL names node 0, and each test's
/// app hashes to a slot of its own, on whichever master serves it.
class redis_cluster_broker final : public redis_broker_base {
 public:
  bool can_freeze() const override { return false; }
  void freeze() override {}
  void thaw() override {}

 protected:
  std::string url() const override { return cluster_.url(0); }
  std::vector<const redis_server*> nodes() const override {
    std::vector<const redis_server*> all;
    for (std::size_t i = 0; i < cluster_.size(); ++i) all.push_back(&cluster_.node(i));
    return all;
  }

 private:
  mutable redis_cluster cluster_{3, 0};
};

// --- SQS -----------------------------------------------------------------------------------

/// tests/sqs/iam_gate.mjs --record in front of the server; the test's clients go through it.
class sqs_recording final : public recording {
 public:
  explicit sqs_recording(const std::string& upstream)
      : gate_(upstream, std::vector<std::string>{}, /*record=*/true) {}
  std::string text() const override { return gate_.recorded(); }

 private:
  iam_gate gate_;
  scoped_env via_gate_{"AWS_ENDPOINT_URL_SQS", gate_.endpoint().c_str()};
};

/// An SQS server from npm (local-aws-sqs or fauxqs) with a request and a response queue for
/// each test.
class sqs_broker final : public broker {
 public:
  static constexpr int queue_pairs = 24;  ///< More than the suite has tests.

  explicit sqs_broker(sqs_server::kind kind) : server_(kind, queues()) {}

  std::unique_ptr<test_scope> new_scope(std::chrono::milliseconds heartbeat) override {
    auto scope = std::make_unique<test_scope>();
    const std::string app = next_app();
    if (apps_ > queue_pairs) throw std::runtime_error("sqs_broker: more tests than queue pairs");
    scope->options = sqs_options(server_, app, heartbeat, "req" + std::to_string(apps_),
                                 "resp" + std::to_string(apps_));
    scope->env = std::make_unique<aws_test_env>(server_.endpoint());
    return scope;
  }

  void freeze() override { ::kill(server_.pid(), SIGSTOP); }
  void thaw() override { ::kill(server_.pid(), SIGCONT); }

  std::unique_ptr<recording> record() override {
    return std::make_unique<sqs_recording>(server_.endpoint());
  }

  boost::asio::awaitable<void> forge_request(const test_scope& scope,
                                             const std::string& /*session*/,
                                             const tunnel::request& req, forgery how,
                                             const tunnel::keyring& ours,
                                             const tunnel::keyring& theirs) override {
    sqs_backend::message m;
    m.kind = sqs_backend::message_kind::offer;
    m.app = scope.options.app;
    m.id = req.id;
    m.claim_by_ms = util::unix_ms_now() + 5000;
    m.expires_ms = req.context.deadline_ms;
    m.data = tunnel::encode(req);
    co_await send(scope.options.sqs.request_queue_url,
                  forge(sqs_backend::encode(m), how, ours, theirs, /*text=*/true));
  }
  boost::asio::awaitable<void> forge_response(const test_scope& scope, const std::string& claimant,
                                              const tunnel::response& answer, forgery how,
                                              const tunnel::keyring& ours,
                                              const tunnel::keyring& theirs) override {
    sqs_backend::message m;
    m.kind = sqs_backend::message_kind::response;
    m.app = scope.options.app;
    m.id = answer.id;
    m.session = claimant;
    m.expires_ms = util::unix_ms_now() + 30'000;
    m.data = tunnel::encode(answer);
    co_await send(scope.options.sqs.response_queue_url,
                  forge(sqs_backend::encode(m), how, ours, theirs, /*text=*/true));
  }

 private:
  static std::vector<sqs_queue_spec> queues() {
    std::vector<sqs_queue_spec> all;
    for (int i = 1; i <= queue_pairs; ++i) {
      all.push_back({"req" + std::to_string(i)});
      all.push_back({"resp" + std::to_string(i)});
    }
    return all;
  }

  boost::asio::awaitable<void> send(const std::string& queue_url, const std::string& body) {
    auto client = raw_sqs_client(co_await boost::asio::this_coro::executor, server_);
    co_await client->send_message(queue_url, body);
  }

  sqs_server server_;
};

}  // namespace funcie::test
