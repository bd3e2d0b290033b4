// funcie_bench_emulate: what an invocation through `funcie emulate` costs, next to a raw HTTP
// round trip on loopback measured in the same run with the same client.
//
// One run:
//   1. starts `funcie emulate --function bench --port 0 --concurrency C -- <echo function>`
//      (a few times, for its start-up time; the last one stays up), reads the port from its
//      "listening on http://127.0.0.1:PORT" line;
//   2. starts a trivial keep-alive HTTP echo server inside this process (a thread per
//      connection, blocking sockets): the baseline, "the wire";
//   3. warms both up, then for each round, each payload (1 KB and 1 MB JSON strings) and each
//      mode (one connection sequentially, C connections at once) measures the baseline and
//      emulate back to back with the same client (blocking sockets, HTTP/1.1 keep-alive);
//   4. prints medians over rounds of each round's median, p99 and invocations per second,
//      emulate / raw ratios, emulate's start-up time, resident memory and CPU per invocation;
//   5. stops what it started by pid (SIGINT to emulate, then waits).
//
// Asserts nothing about speed: it prints figures. Exit 0 unless something did not work (an
// invocation failed, emulate did not start).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <latch>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#ifndef FUNCIE_BENCH_CLI
#define FUNCIE_BENCH_CLI "funcie"
#endif
#ifndef FUNCIE_BENCH_ECHO
#define FUNCIE_BENCH_ECHO "funcie_example_echo"
#endif

namespace {

using steady = std::chrono::steady_clock;

double ms_since(steady::time_point start) {
  return std::chrono::duration<double, std::milli>(steady::now() - start).count();
}

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// ---------------------------------------------------------------------------------------------
// Options

struct options {
  std::string funcie = FUNCIE_BENCH_CLI;
  std::string echo = FUNCIE_BENCH_ECHO;
  std::string log = "/dev/null";  // emulate's stderr (its per-invocation REPORT lines)
  std::string log_level;          // passed to funcie as --log-level when set
  unsigned rounds = 5;
  unsigned concurrency = 8;
  unsigned small_requests = 2000;  // per round, sequential; concurrent: the same in total
  unsigned large_requests = 100;
  unsigned startups = 5;  // extra starts of emulate, for its start-up time
};

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: funcie_bench_emulate [--funcie PATH] [--echo PATH] [--rounds N]\n"
               "         [--concurrency N] [--small-requests N] [--large-requests N]\n"
               "         [--startups N] [--emulate-log PATH] [--log-level LEVEL]\n"
               "  --funcie PATH         the funcie binary (default: %s)\n"
               "  --echo PATH           the echo function (default: %s)\n"
               "  --rounds N            rounds of every measurement; figures are medians over "
               "rounds (5)\n"
               "  --concurrency N       emulate --concurrency and client connections of the "
               "concurrent runs (8)\n"
               "  --small-requests N    1 KB invocations per round and mode (2000)\n"
               "  --large-requests N    1 MB invocations per round and mode (100)\n"
               "  --startups N          separate starts of emulate timed to its listening line "
               "(5)\n"
               "  --emulate-log PATH    where emulate's stderr goes (/dev/null)\n"
               "  --log-level LEVEL     funcie --log-level (default: funcie's own, info)\n",
               FUNCIE_BENCH_CLI, FUNCIE_BENCH_ECHO);
}

options parse_options(int argc, char** argv) {
  options o;
  auto number = [](const std::string& flag, const char* text) {
    char* end = nullptr;
    errno = 0;
    unsigned long v = std::strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v == 0 || v > 1000000) {
      throw std::invalid_argument(flag + " needs a positive number, not '" + text + "'");
    }
    return static_cast<unsigned>(v);
  };
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) throw std::invalid_argument("unknown option or missing value: " + flag);
    const char* value = argv[++i];
    if (flag == "--funcie") {
      o.funcie = value;
    } else if (flag == "--echo") {
      o.echo = value;
    } else if (flag == "--emulate-log") {
      o.log = value;
    } else if (flag == "--log-level") {
      o.log_level = value;
    } else if (flag == "--rounds") {
      o.rounds = number(flag, value);
    } else if (flag == "--concurrency") {
      o.concurrency = number(flag, value);
    } else if (flag == "--small-requests") {
      o.small_requests = number(flag, value);
    } else if (flag == "--large-requests") {
      o.large_requests = number(flag, value);
    } else if (flag == "--startups") {
      o.startups = number(flag, value);
    } else {
      throw std::invalid_argument("unknown option: " + flag);
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 on blocking sockets: just enough for Content-Length messages, shared by the client
// and the baseline server so that both sides of both measurements run the same code.

void send_all(int fd, std::string_view head, std::string_view body) {
  iovec iov[2] = {{const_cast<char*>(head.data()), head.size()},
                  {const_cast<char*>(body.data()), body.size()}};
  iovec* cur = iov;
  int count = body.empty() ? 1 : 2;
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = cur;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("send");
    }
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= cur->iov_len) {
      left -= cur->iov_len;
      ++cur;
      --count;
    }
    if (count > 0) {
      cur->iov_base = static_cast<char*>(cur->iov_base) + left;
      cur->iov_len -= left;
    }
  }
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

// Reads one message at a time from a connection; the body lands in `body` (its first
// `body_size` bytes), which keeps its capacity between messages.
class message_reader {
 public:
  message_reader() : buf_(64 * 1024, '\0') {}

  int status = 0;  // of a response; 0 for a request
  std::string body;
  std::size_t body_size = 0;
  bool close = false;  // Connection: close

  std::string_view body_view() const { return {body.data(), body_size}; }

  // False on a clean end of stream before the first byte of a message.
  bool read(int fd) {
    std::size_t header_end = 0;
    for (;;) {
      std::string_view pending(buf_.data() + begin_, end_ - begin_);
      auto pos = pending.find("\r\n\r\n");
      if (pos != std::string_view::npos) {
        header_end = begin_ + pos + 4;
        break;
      }
      if (end_ == buf_.size()) {
        if (begin_ > 0) {
          std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
          end_ -= begin_;
          begin_ = 0;
        } else if (buf_.size() >= 1024 * 1024) {
          throw std::runtime_error("HTTP header over 1 MB");
        } else {
          buf_.resize(buf_.size() * 2);
        }
      }
      ssize_t n = ::recv(fd, buf_.data() + end_, buf_.size() - end_, 0);
      if (n == 0) {
        if (end_ == begin_) return false;
        throw std::runtime_error("connection closed in the middle of an HTTP header");
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_errno("recv");
      }
      end_ += static_cast<std::size_t>(n);
    }
    parse_header(std::string_view(buf_.data() + begin_, header_end - begin_));
    begin_ = header_end;

    if (body.size() < content_length_) body.resize(content_length_);
    std::size_t have = std::min(content_length_, end_ - begin_);
    std::memcpy(body.data(), buf_.data() + begin_, have);
    begin_ += have;
    while (have < content_length_) {
      ssize_t n = ::recv(fd, body.data() + have, content_length_ - have, 0);
      if (n == 0) throw std::runtime_error("connection closed in the middle of an HTTP body");
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_errno("recv");
      }
      have += static_cast<std::size_t>(n);
    }
    body_size = content_length_;
    if (begin_ == end_) begin_ = end_ = 0;
    return true;
  }

 private:
  void parse_header(std::string_view header) {
    status = 0;
    close = false;
    content_length_ = 0;
    auto line_end = header.find("\r\n");
    std::string_view first = header.substr(0, line_end);
    if (first.starts_with("HTTP/") && first.size() >= 12) {
      status = std::atoi(std::string(first.substr(9, 3)).c_str());
    }
    header.remove_prefix(line_end + 2);
    while (!header.empty()) {
      line_end = header.find("\r\n");
      std::string_view line = header.substr(0, line_end);
      header.remove_prefix(line_end + 2);
      auto colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view name = line.substr(0, colon);
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (iequals(name, "content-length")) {
        content_length_ = std::strtoull(std::string(value).c_str(), nullptr, 10);
      } else if (iequals(name, "transfer-encoding")) {
        throw std::runtime_error("Transfer-Encoding is not supported by this client");
      } else if (iequals(name, "connection") && iequals(value, "close")) {
        close = true;
      }
    }
  }

  std::string buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t content_length_ = 0;
};

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// One keep-alive connection; the client of both the baseline and emulate.
class client {
 public:
  explicit client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail_errno("socket");
    auto addr = loopback(port);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      int err = errno;
      ::close(fd_);
      errno = err;
      fail_errno("connect to 127.0.0.1:" + std::to_string(port));
    }
    set_nodelay(fd_);
  }
  ~client() { ::close(fd_); }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // One request and its response; returns the status.
  int exchange(std::string_view head, std::string_view body) {
    send_all(fd_, head, body);
    if (!reader_.read(fd_)) throw std::runtime_error("the server closed the connection");
    return reader_.status;
  }

  // One request and its response; throws unless it is a 200 whose body is `body` (checked
  // fully when `check_all`, else by size and ends).
  void round_trip(std::string_view head, std::string_view body, bool check_all = false) {
    send_all(fd_, head, body);
    if (!reader_.read(fd_)) throw std::runtime_error("the server closed the connection");
    auto got = reader_.body_view();
    if (reader_.status != 200) {
      throw std::runtime_error("HTTP " + std::to_string(reader_.status) + ": " +
                               std::string(got.substr(0, 300)));
    }
    bool same =
        got.size() == body.size() &&
        (check_all ? got == body
                   : (body.empty() || (got.front() == body.front() && got.back() == body.back() &&
                                       got[got.size() / 2] == body[body.size() / 2])));
    if (!same) {
      throw std::runtime_error("the response is not the request's payload (got " +
                               std::to_string(got.size()) +
                               " bytes: " + std::string(got.substr(0, 200)) + ")");
    }
    if (reader_.close) throw std::runtime_error("the server closed the keep-alive connection");
  }

 private:
  int fd_ = -1;
  message_reader reader_;
};

// ---------------------------------------------------------------------------------------------
// The baseline: a keep-alive HTTP echo server, a thread per connection, blocking sockets.

class echo_server {
 public:
  echo_server() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) fail_errno("socket");
    auto addr = loopback(0);
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 128) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      fail_errno("echo server: listen on 127.0.0.1");
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~echo_server() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    ::close(listen_fd_);
    {
      std::lock_guard lock(mutex_);
      for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : threads_) t.join();
  }
  echo_server(const echo_server&) = delete;
  echo_server& operator=(const echo_server&) = delete;

  std::uint16_t port() const { return port_; }

 private:
  void accept_loop() {
    while (!stopping_) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // shut down
      }
      set_nodelay(fd);
      std::lock_guard lock(mutex_);
      connections_.push_back(fd);
      threads_.emplace_back([fd] { serve(fd); });
    }
  }

  static void serve(int fd) {
    message_reader reader;
    std::string head;
    try {
      while (reader.read(fd)) {
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ";
        head += std::to_string(reader.body_size);
        head += "\r\n\r\n";
        send_all(fd, head, reader.body_view());
      }
    } catch (const std::exception&) {
      // The client went away, or we are stopping.
    }
    ::shutdown(fd, SHUT_RDWR);
  }

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<int> connections_;  // closed by the process's exit; shut down on stop
  std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------------------------------------
// /proc

std::optional<long> status_kb(pid_t pid, std::string_view field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':') {
      return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
    }
  }
  return std::nullopt;
}

// Time on CPU of every thread of `pid`, from schedstat (ns, exact); 0 if unavailable.
std::uint64_t cpu_ns(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::uint64_t total = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(dir + "/" + e->d_name + "/schedstat");
      std::uint64_t ns = 0;
      if (in >> ns) total += ns;
    }
    ::closedir(d);
  }
  return total;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(dir + "/" + e->d_name + "/children");
      pid_t child = 0;
      while (in >> child) out.push_back(child);
    }
    ::closedir(d);
  }
  return out;
}

// CPU of the process and of its children (the runtimes), together.
struct cpu_sample {
  std::uint64_t emulate_ns = 0;
  std::uint64_t runtimes_ns = 0;
};

// ---------------------------------------------------------------------------------------------
// funcie emulate, as a child process

class emulate_process {
 public:
  emulate_process(const options& o, unsigned concurrency) {
    std::vector<std::string> args = {o.funcie};
    if (!o.log_level.empty()) {
      args.push_back("--log-level");
      args.push_back(o.log_level);
    }
    for (const char* a : {"emulate", "--function", "bench", "--port", "0", "--concurrency"}) {
      args.emplace_back(a);
    }
    args.push_back(std::to_string(concurrency));
    args.emplace_back("--");
    args.push_back(o.echo);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    for (const auto* path : {&o.funcie, &o.echo}) {
      if (::access(path->c_str(), X_OK) != 0) fail_errno(*path + " (build it, or pass its path)");
    }
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) fail_errno("pipe");
    int log = ::open(o.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) fail_errno("open " + o.log);
    auto start = steady::now();
    pid_ = ::fork();
    if (pid_ < 0) fail_errno("fork");
    if (pid_ == 0) {
      // Only async-signal-safe calls from here to exec: this process has threads.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // in case this benchmark dies without stopping it
      // A shell starts background jobs with SIGINT ignored, and exec keeps that: emulate
      // would then never see the SIGINT that stops it.
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(SIGINT, &dfl, nullptr);
      ::sigaction(SIGTERM, &dfl, nullptr);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      static const char msg[] = "funcie_bench_emulate: cannot exec the funcie binary\n";
      [[maybe_unused]] auto ignored = ::write(log, msg, sizeof msg - 1);
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(log);
    out_fd_ = out[0];
    try {
      read_port(start);
    } catch (...) {
      stop();
      throw;
    }
    startup_ms_ = ms_since(start);
    // emulate prints its line before it handles SIGINT: wait until it has answered a request,
    // so that its event loop (and signal handler) runs before anyone stops it.
    try {
      wait_answering();
    } catch (...) {
      stop();
      throw;
    }
    ready_ms_ = ms_since(start);
    // Keep reading stdout (the runtimes inherit it) so that a chatty function never blocks.
    drain_ = std::thread([fd = out_fd_] {
      char sink[4096];
      while (::read(fd, sink, sizeof sink) > 0) {
      }
    });
  }

  ~emulate_process() { stop(); }
  emulate_process(const emulate_process&) = delete;
  emulate_process& operator=(const emulate_process&) = delete;

  pid_t pid() const { return pid_; }
  std::uint16_t port() const { return port_; }
  double startup_ms() const { return startup_ms_; }
  double ready_ms() const { return ready_ms_; }

  cpu_sample cpu() const {
    cpu_sample s{cpu_ns(pid_), 0};
    for (pid_t c : children_of(pid_)) s.runtimes_ns += cpu_ns(c);
    return s;
  }

  // Resident memory of the runtimes (the echo processes), in kB.
  struct rss_of_runtimes {
    std::size_t count = 0;
    long total_kb = 0;
    long largest_kb = 0;
  };
  rss_of_runtimes runtimes_rss() const {
    rss_of_runtimes r;
    for (pid_t c : children_of(pid_)) {
      long kb = status_kb(c, "VmRSS").value_or(0);
      ++r.count;
      r.total_kb += kb;
      r.largest_kb = std::max(r.largest_kb, kb);
    }
    return r;
  }
  std::size_t runtimes() const { return children_of(pid_).size(); }

  // SIGINT, then waits (up to 10 s, then SIGKILL). Returns the ms it took to exit.
  double stop() {
    if (pid_ <= 0) return 0;
    auto start = steady::now();
    ::kill(pid_, SIGINT);
    int status = 0;
    bool killed = false;
    for (;;) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) break;
      if (!killed && ms_since(start) > 10000) {
        std::fprintf(stderr, "funcie emulate (pid %d) ignored SIGINT for 10 s; killing it\n",
                     static_cast<int>(pid_));
        ::kill(pid_, SIGKILL);
        killed = true;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    double took = ms_since(start);
    pid_ = -1;
    if (drain_.joinable()) drain_.join();  // EOF once emulate and its runtimes are gone
    if (out_fd_ >= 0) ::close(out_fd_);
    out_fd_ = -1;
    return took;
  }

 private:
  void read_port(steady::time_point start) {
    constexpr std::string_view marker = "listening on http://127.0.0.1:";
    std::string text;
    for (;;) {
      auto pos = text.find(marker);
      if (pos != std::string::npos) {
        auto end = text.find_first_not_of("0123456789", pos + marker.size());
        if (end != std::string::npos) {
          port_ = static_cast<std::uint16_t>(
              std::stoul(text.substr(pos + marker.size(), end - pos - marker.size())));
          return;
        }
      }
      int left = 10000 - static_cast<int>(ms_since(start));
      if (left <= 0)
        throw std::runtime_error("funcie emulate did not say where it listens in 10 s");
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, left) < 0 && errno != EINTR) fail_errno("poll");
      char chunk[512];
      ssize_t n = ::read(out_fd_, chunk, sizeof chunk);
      if (n == 0) {
        throw std::runtime_error("funcie emulate exited before listening; its stdout: '" + text +
                                 "' (stderr went to the --emulate-log file)");
      }
      if (n > 0) text.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // GET / (an operation emulate does not serve: it answers 404 at once).
  void wait_answering() const;

  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::uint16_t port_ = 0;
  double startup_ms_ = 0;
  double ready_ms_ = 0;
  std::thread drain_;
};

void emulate_process::wait_answering() const {
  client conn(port_);
  const std::string head = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  conn.exchange(head, {});
}

// ---------------------------------------------------------------------------------------------
// Measurements

struct round_figures {
  double median_us = 0;
  double p99_us = 0;
  double per_second = 0;
};

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  // Nearest rank.
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string request_head(std::uint16_t port, std::size_t length) {
  return "POST /2015-03-31/functions/bench/invocations HTTP/1.1\r\nHost: 127.0.0.1:" +
         std::to_string(port) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(length) +
         "\r\n\r\n";
}

// `requests` invocations over `connections` connections at once (each its own thread; one
// connection is the sequential case). Latency of each, and invocations per second over the
// whole run, from the first send to the last answer.
round_figures measure(std::uint16_t port, std::string_view payload, unsigned connections,
                      unsigned requests) {
  const std::string head = request_head(port, payload.size());
  const unsigned each = std::max(1u, requests / connections);
  std::vector<std::vector<double>> latencies(connections);
  std::vector<std::string> errors(connections);
  std::latch ready(connections);
  std::latch go(1);
  std::vector<std::thread> threads;
  for (unsigned c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      bool counted = false;
      try {
        client conn(port);
        latencies[c].reserve(each);
        ready.count_down();
        counted = true;
        go.wait();
        for (unsigned i = 0; i < each; ++i) {
          auto t0 = steady::now();
          conn.round_trip(head, payload);
          latencies[c].push_back(
              std::chrono::duration<double, std::micro>(steady::now() - t0).count());
        }
      } catch (const std::exception& e) {
        errors[c] = e.what();
        if (!counted) ready.count_down();
      }
    });
  }
  ready.wait();
  auto start = steady::now();
  go.count_down();
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(steady::now() - start).count();
  for (auto& e : errors) {
    if (!e.empty()) throw std::runtime_error(e);
  }
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  return {percentile(all, 0.5), percentile(all, 0.99), static_cast<double>(all.size()) / seconds};
}

// A few invocations with the payload checked byte for byte; then `connections` connections at
// once, so that emulate has started all its execution environments before any measurement.
void warm_up(std::uint16_t port, std::string_view payload, unsigned connections,
             unsigned requests) {
  {
    client conn(port);
    const std::string head = request_head(port, payload.size());
    for (unsigned i = 0; i < std::min(requests, 20u); ++i) conn.round_trip(head, payload, true);
  }
  measure(port, payload, 1, requests);
  measure(port, payload, connections, requests);
}

std::string json_string(std::size_t total_bytes) {
  // "abcd...": a JSON string of exactly total_bytes bytes, quotes included.
  std::string s(total_bytes, 'x');
  s.front() = '"';
  s.back() = '"';
  // Some variety, so that a byte-for-byte check means something.
  for (std::size_t i = 1; i + 1 < s.size(); ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

struct series {
  std::vector<round_figures> raw;
  std::vector<round_figures> emulate;
  std::uint64_t emulate_cpu_ns = 0;
  std::uint64_t runtimes_cpu_ns = 0;
  std::uint64_t invocations = 0;
};

struct figures_over_rounds {
  double median_us, median_lo, median_hi, p99_us, per_second;
};

figures_over_rounds summarize(const std::vector<round_figures>& rounds) {
  std::vector<double> med, p99, rate;
  for (auto& r : rounds) {
    med.push_back(r.median_us);
    p99.push_back(r.p99_us);
    rate.push_back(r.per_second);
  }
  return {median(med), *std::min_element(med.begin(), med.end()),
          *std::max_element(med.begin(), med.end()), median(p99), median(rate)};
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Three significant digits or so: 1234, 123, 12.3, 1.23.
std::string figure(double v) {
  if (v >= 100) return fixed(v, 0);
  if (v >= 10) return fixed(v, 1);
  return fixed(v, 2);
}

std::string kb(long v) {
  return fixed(static_cast<double>(v) / 1024.0, 1) + " MB";
}

int run(const options& o) {
  const unsigned cpus = std::thread::hardware_concurrency();
  std::printf("funcie emulate benchmark\n");
  std::printf("  command:       %s emulate --function bench --port 0 --concurrency %u -- %s\n",
              o.funcie.c_str(), o.concurrency, o.echo.c_str());
  std::printf("  machine:       %u CPUs; load average at start: ", cpus);
  {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    std::printf("%s %s %s\n", a.c_str(), b.c_str(), c.c_str());
  }
  std::printf(
      "  rounds:        %u (every figure below is the median over rounds; raw and "
      "emulate alternate within each round)\n",
      o.rounds);
  std::fflush(stdout);

  // Start-up: separate starts, each stopped at once; then the one we measure through.
  std::vector<double> startups, readies, idle_stops;
  for (unsigned i = 0; i < o.startups; ++i) {
    emulate_process e(o, o.concurrency);
    startups.push_back(e.startup_ms());
    readies.push_back(e.ready_ms());
    idle_stops.push_back(e.stop());
  }
  emulate_process emu(o, o.concurrency);
  startups.push_back(emu.startup_ms());
  readies.push_back(emu.ready_ms());
  const long idle_rss = status_kb(emu.pid(), "VmRSS").value_or(-1);
  echo_server raw;

  const std::string small = json_string(1024);
  const std::string large = json_string(1024 * 1024);

  // The first invocation starts the runtime: Lambda's cold start, in miniature.
  double cold_ms = 0;
  {
    client conn(emu.port());
    auto t0 = steady::now();
    conn.round_trip(request_head(emu.port(), small.size()), small, true);
    cold_ms = ms_since(t0);
  }
  for (const auto* payload : {&small, &large}) {
    unsigned n = payload == &small ? 200 : 20;
    warm_up(raw.port(), *payload, o.concurrency, n);
    warm_up(emu.port(), *payload, o.concurrency, n);
  }
  const long warm_rss = status_kb(emu.pid(), "VmRSS").value_or(-1);
  const std::size_t environments = emu.runtimes();

  struct row {
    const char* payload_name;
    const std::string* payload;
    unsigned connections;
    unsigned requests;
    series s;
  };
  std::vector<row> rows = {
      {"1 KB", &small, 1, o.small_requests, {}},
      {"1 KB", &small, o.concurrency, o.small_requests, {}},
      {"1 MB", &large, 1, o.large_requests, {}},
      {"1 MB", &large, o.concurrency, o.large_requests, {}},
  };
  for (unsigned round = 0; round < o.rounds; ++round) {
    std::fprintf(stderr, "round %u/%u...\n", round + 1, o.rounds);
    for (auto& r : rows) {
      r.s.raw.push_back(measure(raw.port(), *r.payload, r.connections, r.requests));
      auto before = emu.cpu();
      auto f = measure(emu.port(), *r.payload, r.connections, r.requests);
      auto after = emu.cpu();
      r.s.emulate.push_back(f);
      r.s.emulate_cpu_ns += after.emulate_ns - before.emulate_ns;
      r.s.runtimes_cpu_ns += after.runtimes_ns - before.runtimes_ns;
      r.s.invocations += std::max(1u, r.requests / r.connections) * r.connections;
    }
  }
  const long after_rss = status_kb(emu.pid(), "VmRSS").value_or(-1);
  const long peak_rss = status_kb(emu.pid(), "VmHWM").value_or(-1);
  const auto runtimes_rss = emu.runtimes_rss();

  std::printf(
      "\nInvocations: POST /2015-03-31/functions/bench/invocations with a JSON string; "
      "the echo function\nreturns it. raw = the same request to a trivial keep-alive "
      "HTTP echo server in this process.\nLatency per invocation in microseconds "
      "(client send to full response); inv/s over the whole run.\n\n");
  std::printf("%-5s %-14s %-8s %10s %17s %10s %10s %12s\n", "size", "connections", "target",
              "median us", "(round medians)", "p99 us", "inv/s", "CPU us/inv");
  std::printf("%s\n", std::string(93, '-').c_str());
  for (auto& r : rows) {
    auto raw_f = summarize(r.s.raw);
    auto emu_f = summarize(r.s.emulate);
    std::string conns = r.connections == 1 ? "1 (sequential)" : std::to_string(r.connections);
    auto range = [](const figures_over_rounds& f) {
      return "(" + figure(f.median_lo) + "-" + figure(f.median_hi) + ")";
    };
    std::printf("%-5s %-14s %-8s %10s %17s %10s %10s %12s\n", r.payload_name, conns.c_str(), "raw",
                figure(raw_f.median_us).c_str(), range(raw_f).c_str(), figure(raw_f.p99_us).c_str(),
                fixed(raw_f.per_second, 0).c_str(), "");
    double inv = static_cast<double>(std::max<std::uint64_t>(1, r.s.invocations));
    std::string cpu = figure(static_cast<double>(r.s.emulate_cpu_ns) / 1000.0 / inv) + "+" +
                      figure(static_cast<double>(r.s.runtimes_cpu_ns) / 1000.0 / inv);
    std::printf("%-5s %-14s %-8s %10s %17s %10s %10s %12s\n", "", "", "emulate",
                figure(emu_f.median_us).c_str(), range(emu_f).c_str(), figure(emu_f.p99_us).c_str(),
                fixed(emu_f.per_second, 0).c_str(), cpu.c_str());
    std::printf("%-5s %-14s %-8s %10s %17s %10s %10s\n", "", "", "ratio",
                (fixed(emu_f.median_us / raw_f.median_us, 1) + "x").c_str(), "",
                (fixed(emu_f.p99_us / raw_f.p99_us, 1) + "x").c_str(),
                (fixed(emu_f.per_second / raw_f.per_second, 2) + "x").c_str());
    std::printf("%s\n", std::string(93, '-').c_str());
  }
  std::printf(
      "CPU us/inv: time on CPU of funcie emulate + of its runtime processes, per "
      "invocation (schedstat).\n");
  if (cpus <= o.concurrency) {
    std::printf(
        "With %u connections on %u CPUs the client threads, emulate (one thread) and %u "
        "runtimes share %u CPUs:\nthose rows measure throughput under CPU contention, "
        "not parallel speed-up; their latency includes queueing.\n",
        o.concurrency, cpus, o.concurrency, cpus);
  }

  std::sort(startups.begin(), startups.end());
  std::printf(
      "\nfuncie emulate (%u starts; runtimes start on the first invocation, not at "
      "start-up)\n",
      static_cast<unsigned>(startups.size()));
  std::printf(
      "  start-up, process start to its listening line: median %s ms (min %s, max %s); "
      "to its first answered request: median %s ms\n",
      fixed(median(startups), 1).c_str(), fixed(startups.front(), 1).c_str(),
      fixed(startups.back(), 1).c_str(), fixed(median(readies), 1).c_str());
  std::printf("  first invocation (starts the runtime: a cold start): %s ms\n",
              fixed(cold_ms, 1).c_str());
  std::printf(
      "  resident memory (VmRSS): idle %s; after warm-up (%zu runtimes) %s; after the "
      "runs %s; peak (VmHWM) %s\n",
      kb(idle_rss).c_str(), environments, kb(warm_rss).c_str(), kb(after_rss).c_str(),
      kb(peak_rss).c_str());
  std::printf("  runtimes (echo processes) after the runs: %zu, VmRSS %s in all, %s the largest\n",
              runtimes_rss.count, kb(runtimes_rss.total_kb).c_str(),
              kb(runtimes_rss.largest_kb).c_str());
  std::fflush(stdout);
  double busy_stop = emu.stop();
  std::printf("  stop, SIGINT to exit: idle, no runtimes: median %s ms; with %zu runtimes: %s ms\n",
              fixed(median(idle_stops), 1).c_str(), environments, fixed(busy_stop, 1).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return run(parse_options(argc, argv));
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "funcie_bench_emulate: %s\n", e.what());
    usage(stderr);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "funcie_bench_emulate: %s\n", e.what());
    return 1;
  }
}
