// Real SQS servers from npm for the C++ tests, each a Node process of its own on a free
// loopback port, stopped by pid (its process group) in the destructor. Header-only.
//
//   funcie::test::sqs_server server(sqs_server::kind::faux, {{"req"}, {"small", 262144}});
//   server.endpoint()     "http://127.0.0.1:PORT"
//   server.url("req")     the queue URL the server issued (fauxqs: a host that does not resolve)
//
//   funcie::test::iam_gate gate(server.endpoint(), {"AKIDDENIED"});   // an IAM stand-in
//   gate.endpoint(); gate.fail(2);  gate.fail(1, "unavailable");  gate.requests("SendMessage")
//   iam_gate recording(server.endpoint(), {}, true);  recording.recorded()   // every body
//
// tests/sqs/sqs_server.mjs and iam_gate.mjs say what the scripts do.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef FUNCIE_TESTS_DIR
#error "FUNCIE_TESTS_DIR must name the tests directory"
#endif

namespace funcie::test {

/// A Node script run in its own process group; its first stdout line is its JSON status.
class node_process {
 public:
  node_process(const std::string& script, const std::vector<std::string>& args) {
    char pattern[] = "/tmp/funcie-sqs-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("node_process: mkdtemp failed");
    dir_ = pattern;
    std::vector<std::string> argv{"/usr/bin/node",
                                  std::string(FUNCIE_TESTS_DIR) + "/sqs/" + script};
    argv.insert(argv.end(), args.begin(), args.end());
    spawn(argv);
    status_ = wait_for_status(script);
  }
  ~node_process() {
    stop();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  node_process(const node_process&) = delete;
  node_process& operator=(const node_process&) = delete;

  const boost::json::object& status() const { return status_; }
  pid_t pid() const { return pid_; }

  /// SIGTERM to the process group, SIGKILL after 3 s; waits. Idempotent.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    for (;;) {
      int st = 0;
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(-pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
  }

 private:
  std::string read_file(const char* name) const {
    std::ifstream in(dir_ / name);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  void spawn(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    std::string out = (dir_ / "stdout").string(), err = (dir_ / "stderr").string();
    pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("node_process: fork failed");
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the test process
      if (::getppid() != parent) ::_exit(127);
      int in_fd = ::open("/dev/null", O_RDONLY);
      int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (in_fd < 0 || out_fd < 0 || err_fd < 0) ::_exit(126);
      ::dup2(in_fd, 0);
      ::dup2(out_fd, 1);
      ::dup2(err_fd, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);  // also from here: no race with kill(-pid)
  }

  boost::json::object wait_for_status(const std::string& script) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      std::string out = read_file("stdout");
      auto eol = out.find('\n');
      if (eol != std::string::npos) {
        boost::json::value v = boost::json::parse(out.substr(0, eol));
        return v.as_object();
      }
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error(script + " exited at start: " + read_file("stderr"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    throw std::runtime_error(script + " did not start within 20 s: " + read_file("stderr"));
  }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
  boost::json::object status_;
};

struct sqs_queue_spec {
  std::string name;
  int max_message_size = 0;  ///< MaximumMessageSize; 0: the server's default
};

class sqs_server {
 public:
  enum class kind { local, faux };

  explicit sqs_server(kind k, const std::vector<sqs_queue_spec>& queues = {})
      : kind_(k), process_("sqs_server.mjs", args(k, queues)) {
    endpoint_ = std::string(process_.status().at("endpoint").as_string());
    for (const auto& [name, url] : process_.status().at("urls").as_object()) {
      urls_[std::string(name)] = std::string(url.as_string());
    }
  }

  kind which() const { return kind_; }
  const char* name() const { return kind_ == kind::local ? "local-aws-sqs" : "fauxqs"; }
  const std::string& endpoint() const { return endpoint_; }
  /// The URL the server issued for a queue created at start.
  const std::string& url(const std::string& queue) const { return urls_.at(queue); }
  pid_t pid() const { return process_.pid(); }
  void stop() { process_.stop(); }

 private:
  static std::vector<std::string> args(kind k, const std::vector<sqs_queue_spec>& queues) {
    std::vector<std::string> a{"--kind", k == kind::local ? "local" : "faux"};
    for (const auto& q : queues) {
      a.emplace_back("--queue");
      a.push_back(q.name +
                  (q.max_message_size > 0 ? ":" + std::to_string(q.max_message_size) : ""));
    }
    return a;
  }

  kind kind_;
  node_process process_;
  std::string endpoint_;
  std::map<std::string, std::string> urls_;
};

/// tests/sqs/iam_gate.mjs in front of `upstream`.
class iam_gate {
 public:
  iam_gate(const std::string& upstream, const std::vector<std::string>& deny_key_ids,
           bool record = false)
      : process_("iam_gate.mjs", args(upstream, deny_key_ids, record)) {
    endpoint_ = std::string(process_.status().at("endpoint").as_string());
    port_ = static_cast<std::uint16_t>(std::stoi(endpoint_.substr(endpoint_.rfind(':') + 1)));
  }

  const std::string& endpoint() const { return endpoint_; }

  /// The next `count` SQS requests fail: kind "throttle" (400 RequestThrottled) or
  /// "unavailable" (503).
  void fail(int count, const std::string& kind = "throttle") {
    admin("/_gate/fail?count=" + std::to_string(count) + "&kind=" + kind);
  }
  void reset() { admin("/_gate/reset"); }
  /// With `record`: every request and response body passed on so far, one after the other.
  std::string recorded() const { return admin("/_gate/recorded"); }
  /// SQS requests seen since the start or reset(), all or of one operation.
  int requests(const std::string& operation = "") {
    boost::json::object stats = boost::json::parse(admin("/_gate/stats")).as_object();
    if (operation.empty()) return static_cast<int>(stats.at("requests").to_number<double>());
    const auto& by = stats.at("byOperation").as_object();
    auto it = by.find(operation);
    return it == by.end() ? 0 : static_cast<int>(it->value().to_number<double>());
  }

 private:
  static std::vector<std::string> args(const std::string& upstream,
                                       const std::vector<std::string>& deny, bool record) {
    std::vector<std::string> a{"--upstream", upstream};
    if (record) a.emplace_back("--record");
    for (const auto& k : deny) {
      a.emplace_back("--deny");
      a.push_back(k);
    }
    return a;
  }

  /// One blocking HTTP/1.0 POST to the gate's admin API; returns the body.
  std::string admin(const std::string& path) const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("iam_gate: socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port_);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      throw std::runtime_error("iam_gate: cannot connect to the admin API");
    }
    std::string request = "POST " + path + " HTTP/1.0\r\nHost: gate\r\nContent-Length: 0\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      ::close(fd);
      throw std::runtime_error("iam_gate: cannot send to the admin API");
    }
    std::string response;
    char buffer[4096];
    for (;;) {
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      response.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    auto body = response.find("\r\n\r\n");
    if (response.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) {
      throw std::runtime_error("iam_gate: admin " + path + " failed: " + response.substr(0, 200));
    }
    return response.substr(body + 4);
  }

  node_process process_;
  std::string endpoint_;
  std::uint16_t port_ = 0;
};

}  // namespace funcie::test
