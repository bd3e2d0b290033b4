// A real redis-server (/usr/bin/redis-server) for tests: started on a free loopback port in
// its own temporary directory, no persistence, stopped by pid. Header-only.
//
//   funcie::test::redis_server server;                       // plain, no password
//   funcie::test::redis_server server({.requirepass = "s3cret"});
//   funcie::test::redis_server server({.acl_user = "alice", .acl_password = "pw"});
//   funcie::test::redis_server server({.tls = true});        // rediss://, CA in ca_file()
//
//   server.url()        "redis://127.0.0.1:PORT" (with the password / ACL user when set)
//   server.stop()       SIGTERM (SIGKILL after 5 s), waits; restart() on the same port
//   server.kill()       SIGKILL; freeze()/thaw() SIGSTOP/SIGCONT (a blackholed broker)
//
// Passwords are passed on redis-server's command line: test passwords only, no spaces.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace funcie::test {

struct redis_server_options {
  std::string requirepass{};   ///< Password of the "default" user (--requirepass).
  std::string acl_user{};      ///< An extra ACL user with all rights...
  std::string acl_password{};  ///< ...and this password.
  bool tls = false;            ///< Serve TLS only (--port 0 --tls-port PORT), certs generated.
  std::vector<std::string> extra_args{};  ///< More redis-server arguments ("--maxclients", "10").
  /// TLS: take the CA and certificate made by another server (its dir()), so that one CA
  /// file trusts every node of a cluster.
  std::string certs_from{};
};

class redis_server {
 public:
  explicit redis_server(redis_server_options options = {}) : options_(std::move(options)) {
    char pattern[] = "/tmp/funcie-redis-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("redis_server: mkdtemp failed");
    dir_ = pattern;
    if (options_.tls && options_.certs_from.empty()) make_certificates();
    if (options_.tls && !options_.certs_from.empty()) {
      for (const char* f : {"ca.pem", "other-ca.pem", "server.pem", "server.key"}) {
        std::filesystem::copy_file(std::filesystem::path(options_.certs_from) / f, dir_ / f);
      }
    }
    for (int attempt = 0;; ++attempt) {
      port_ = free_port();
      if (launch()) break;
      if (attempt == 10) throw std::runtime_error("redis_server: cannot start: " + log_tail());
    }
  }

  ~redis_server() {
    try {
      stop();
    } catch (...) {
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  std::uint16_t port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  const std::filesystem::path& dir() const { return dir_; }

  /// TLS: the CA that signed the server's certificate (for connect_options::ca_file).
  std::string ca_file() const { return (dir_ / "ca.pem").string(); }
  /// TLS: an unrelated CA, to see verification fail.
  std::string other_ca_file() const { return (dir_ / "other-ca.pem").string(); }
  std::string cert_file() const { return (dir_ / "server.pem").string(); }
  std::string key_file() const { return (dir_ / "server.key").string(); }

  /// redis[s]://[user:password@]127.0.0.1:PORT[/db]: the ACL user when set, else the
  /// requirepass password.
  std::string url(int db = 0) const {
    std::string out = options_.tls ? "rediss://" : "redis://";
    if (!options_.acl_user.empty()) {
      out += options_.acl_user + ":" + options_.acl_password + "@";
    } else if (!options_.requirepass.empty()) {
      out += ":" + options_.requirepass + "@";
    }
    out += host() + ":" + std::to_string(port_);
    if (db != 0) out += "/" + std::to_string(db);
    return out;
  }

  /// SIGTERM, SIGKILL after 5 s; waits for the process. Idempotent.
  void stop() { terminate(SIGTERM); }
  /// SIGKILL at once; waits.
  void kill() { terminate(SIGKILL); }
  /// Starts again on the same port (after stop() or kill()).
  void restart() {
    stop();
    for (int attempt = 0;; ++attempt) {
      if (launch()) return;
      if (attempt == 50) throw std::runtime_error("redis_server: cannot restart: " + log_tail());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // port still in TIME_WAIT?
    }
  }
  /// SIGSTOP: connections stay open, nothing is answered. thaw() resumes.
  void freeze() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void thaw() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }

  /// redis-cli with the server's address, credentials and TLS options; returns its stdout.
  std::string cli(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"/usr/bin/redis-cli", "-h", host(), "-p", std::to_string(port_)};
    if (!options_.acl_user.empty()) {
      argv.insert(argv.end(), {"--user", options_.acl_user, "--pass", options_.acl_password});
    } else if (!options_.requirepass.empty()) {
      argv.insert(argv.end(), {"--pass", options_.requirepass});
    }
    if (options_.tls) argv.insert(argv.end(), {"--tls", "--cacert", ca_file()});
    argv.insert(argv.end(), {"--no-auth-warning"});
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out_file = (dir_ / "cli.out").string();
    run(argv, out_file);
    std::ifstream in(out_file);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  /// The last lines of the server's log, for failure messages.
  std::string log_tail() const {
    std::ifstream in(dir_ / "redis.log");
    std::string line, out;
    std::vector<std::string> lines;
    while (std::getline(in, line)) lines.push_back(line);
    for (std::size_t i = lines.size() > 10 ? lines.size() - 10 : 0; i < lines.size(); ++i) {
      out += lines[i] + "\n";
    }
    return out;
  }

  /// A loopback port nobody listens on right now (bind port 0, read it, close).
  static std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("redis_server: socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      throw std::runtime_error("redis_server: cannot pick a free port");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  /// Runs argv (stdout to `out_file` or /dev/null, stderr to the log dir); throws unless it
  /// exits 0.
  void run(const std::vector<std::string>& argv, const std::string& out_file = "") const {
    pid_t child = spawn(argv, out_file.empty() ? "/dev/null" : out_file);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      throw std::runtime_error("redis_server: " + argv[0] + " " + (argv.size() > 1 ? argv[1] : "") +
                               " failed; see " + (dir_ / "commands.log").string());
    }
  }

 private:
  void make_certificates() {
    auto path = [&](const char* name) { return (dir_ / name).string(); };
    {
      std::ofstream ext(path("server.ext"));
      ext << "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
             "basicConstraints=CA:FALSE\n"
             "keyUsage=digitalSignature,keyEncipherment\n"
             "extendedKeyUsage=serverAuth,clientAuth\n";  // clientAuth: a cluster bus over TLS
    }
    const std::string ec_key = "ec:" + path("params.pem");
    run({"/usr/bin/openssl", "ecparam", "-name", "prime256v1", "-out", path("params.pem")});
    for (const char* ca : {"ca", "other-ca"}) {
      std::string name = ca;
      run({"/usr/bin/openssl", "req", "-x509", "-newkey", ec_key, "-nodes", "-days", "2", "-subj",
           "/CN=funcie test " + name, "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
           "keyUsage=critical,keyCertSign,cRLSign", "-keyout", path("") + name + ".key", "-out",
           path("") + name + ".pem"});
    }
    run({"/usr/bin/openssl", "req", "-new", "-newkey", ec_key, "-nodes", "-subj", "/CN=localhost",
         "-keyout", path("server.key"), "-out", path("server.csr")});
    run({"/usr/bin/openssl", "x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"),
         "-CAkey", path("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", path("server.ext"),
         "-out", path("server.pem")});
  }

  std::vector<std::string> server_args() const {
    std::vector<std::string> a{"/usr/bin/redis-server",
                               "--bind",
                               "127.0.0.1",
                               "--save",
                               "",
                               "--appendonly",
                               "no",
                               "--daemonize",
                               "no",
                               "--dir",
                               dir_.string(),
                               "--logfile",
                               (dir_ / "redis.log").string(),
                               "--loglevel",
                               "notice"};
    if (options_.tls) {
      a.insert(a.end(), {"--port", "0", "--tls-port", std::to_string(port_), "--tls-cert-file",
                         cert_file(), "--tls-key-file", key_file(), "--tls-ca-cert-file", ca_file(),
                         "--tls-auth-clients", "no"});
    } else {
      a.insert(a.end(), {"--port", std::to_string(port_)});
    }
    if (!options_.requirepass.empty()) a.insert(a.end(), {"--requirepass", options_.requirepass});
    if (!options_.acl_user.empty()) {
      a.insert(a.end(), {"--user", options_.acl_user, "on", ">" + options_.acl_password, "~*", "&*",
                         "+@all"});
    }
    a.insert(a.end(), options_.extra_args.begin(), options_.extra_args.end());
    return a;
  }

  // fork+exec; the child dies with the test process (PR_SET_PDEATHSIG).
  pid_t spawn(const std::vector<std::string>& args, const std::string& out_file) const {
    std::vector<char*> argv;
    for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    std::string err_file = (dir_ / "commands.log").string();
    pid_t parent = ::getpid();
    pid_t child = ::fork();
    if (child < 0) throw std::runtime_error("redis_server: fork failed");
    if (child == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      int in = ::open("/dev/null", O_RDONLY);
      int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (in < 0 || out < 0 || err < 0) ::_exit(126);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return child;
  }

  // Starts redis-server on port_ and waits until it serves; false when it exited at once
  // (the port was taken meanwhile).
  bool launch() {
    { std::ofstream truncate(dir_ / "redis.log", std::ios::trunc); }
    pid_ = spawn(server_args(), "/dev/null");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (log_says_ready() && accepts()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    terminate(SIGKILL);
    throw std::runtime_error("redis_server: not ready after 10 s: " + log_tail());
  }

  bool log_says_ready() const {
    std::ifstream in(dir_ / "redis.log");
    std::string line;
    while (std::getline(in, line)) {
      if (line.find("Ready to accept connections") != std::string::npos) return true;
    }
    return false;
  }

  bool accepts() const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port_);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
  }

  void terminate(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);  // a frozen server cannot act on SIGTERM
    ::kill(pid_, signal);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    pid_ = -1;
  }

  redis_server_options options_;
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace funcie::test
