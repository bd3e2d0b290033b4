// Each send() runs its exchange in a coroutine of its own and waits for it on a steady_timer
// that is both the completion event and the deadline: the timer's wait supports per-operation
// cancellation whatever Beast's composed operations do, and a timeout or a cancellation just
// closes the connection under the exchange, which then ends and drops it (never pooled).
#include "aws/http_client.hpp"

#include "net/tls_stream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/system/system_error.hpp>

#include <deque>
#include <map>
#include <optional>

namespace funcie::aws {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

/// Idle connections kept per endpoint; more are closed when they come back.
constexpr std::size_t max_idle_per_endpoint = 16;
/// An idle connection older than this is closed rather than reused: servers drop idle
/// keep-alive connections after a while (AWS after about a minute), and a reused one that
/// turns out dead costs a retry.
constexpr auto max_idle_age = std::chrono::seconds(30);
/// SQS answers at most 10 messages of 1 MiB (plus JSON escaping); metadata answers are tiny.
constexpr std::uint64_t max_body_bytes = 16 * 1024 * 1024;
constexpr std::uint32_t max_header_bytes = 64 * 1024;

char lower_ascii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower_ascii(a[i]) != lower_ascii(b[i])) return false;
  }
  return true;
}

std::string describe(const endpoint& to) {
  bool v6 = to.host.find(':') != std::string::npos;
  return (v6 ? "[" + to.host + "]" : to.host) + ":" + std::to_string(to.port);
}

std::string pool_key(const endpoint& to) {
  return (to.tls ? "https://" : "http://") + describe(to);
}

/// One keep-alive connection: a plain socket or TLS over one (made at the handshake).
struct connection {
  explicit connection(const asio::any_io_executor& executor)
      : resolver(executor), plain(executor) {}

  tcp::socket& socket() { return plain; }
  void close() {
    error_code ignored;
    resolver.cancel();
    plain.close(ignored);
  }

  tcp::resolver resolver;
  tcp::socket plain;
  std::unique_ptr<net::tls_stream> secure;
  boost::beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point idle_since;
};

using connection_ptr = std::shared_ptr<connection>;

}  // namespace

struct http_client::state {
  state(asio::any_io_executor ex, tls_options options) : executor(std::move(ex)), tls(options) {}

  asio::any_io_executor executor;
  tls_options tls;
  std::shared_ptr<const net::tls_config> tls_config;  ///< Made at the first TLS request
  std::string tls_config_failure;                     ///< Why it could not be made
  std::map<std::string, std::deque<connection_ptr>> idle;

  std::shared_ptr<const net::tls_config> config_for_tls() {
    if (tls_config) return tls_config;
    if (!tls_config_failure.empty()) return nullptr;
    try {
      tls_config = net::tls_config::make(tls.ca_file, tls.verify);
    } catch (const net::tls_config_error& e) {
      tls_config_failure = tls.ca_file.empty()
                               ? "cannot load the system's CA certificates (" +
                                     std::string(e.what()) +
                                     "): install ca-certificates or set FUNCIE_CA_FILE"
                               : "cannot read the CA bundle " + tls.ca_file + " (" + e.what() +
                                     "): check FUNCIE_CA_FILE or AWS_CA_BUNDLE";
    }
    return tls_config;
  }

  connection_ptr take_idle(const std::string& key) {
    auto it = idle.find(key);
    if (it == idle.end()) return nullptr;
    auto now = std::chrono::steady_clock::now();
    while (!it->second.empty()) {
      connection_ptr c =
          std::move(it->second.back());  // the most recently used: least likely closed
      it->second.pop_back();
      if (now - c->idle_since < max_idle_age && c->socket().is_open()) return c;
      c->close();
    }
    return nullptr;
  }

  void put_idle(const std::string& key, connection_ptr c) {
    auto& list = idle[key];
    if (list.size() >= max_idle_per_endpoint) {
      c->close();
      return;
    }
    c->idle_since = std::chrono::steady_clock::now();
    list.push_back(std::move(c));
  }

  void close_idle() {
    for (auto& [key, list] : idle) {
      for (auto& c : list) c->close();
    }
    idle.clear();
  }
};

namespace {

/// One send(): shared by the waiting caller and the coroutine doing the I/O.
struct exchange {
  exchange(const asio::any_io_executor& executor, std::chrono::steady_clock::time_point deadline)
      : event(executor, deadline) {}

  asio::steady_timer event;  ///< Expires at the deadline; cancelled when the I/O is done
  bool done = false;
  bool abandoned = false;  ///< Timed out or cancelled: the I/O must stop and not pool
  const char* phase = "connecting";
  connection_ptr current;
  std::optional<http_response> response;
  std::optional<http_error> failure;

  void abandon() {
    abandoned = true;
    if (current) current->close();
  }
};

std::string verify_failure(const endpoint& to, const net::tls_stream& stream) {
  if (stream.wrong_host()) {
    return "the TLS certificate of " + describe(to) + " is not for the host name " + to.host +
           ": check the endpoint URL (FUNCIE_TLS_VERIFY=0 turns verification off)";
  }
  return "the TLS certificate of " + describe(to) + " could not be verified (" +
         stream.verification_failure() +
         "): if a proxy or a private CA signs it, point FUNCIE_CA_FILE or AWS_CA_BUNDLE at its "
         "PEM bundle (FUNCIE_TLS_VERIFY=0 turns verification off)";
}

/// Writes the request and reads the answer on an open connection. Returns the error, if any;
/// `got_some` tells whether any byte of the answer came.
template <class Stream>
asio::awaitable<error_code> round_trip(Stream& stream, connection& c,
                                       http::request<http::string_body>& request,
                                       http::response_parser<http::string_body>& parser,
                                       exchange& x) {
  error_code ec;
  x.phase = "sending the request";
  co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return ec;
  x.phase = "waiting for the answer";
  co_await http::async_read(stream, c.buffer, parser,
                            asio::redirect_error(asio::use_awaitable, ec));
  co_return ec;
}

/// Resolves, connects and (TLS) handshakes `c`. Throws http_error.
/// `tls`: the configuration for a TLS endpoint, null for plain HTTP.
asio::awaitable<void> open(connection& c, const endpoint& to,
                           std::shared_ptr<const net::tls_config> tls, exchange& x) {
  error_code ec;
  x.phase = "resolving the host";
  auto results = co_await c.resolver.async_resolve(to.host, std::to_string(to.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
  if (x.abandoned) co_return;
  if (ec) {
    throw http_error(http_error::kind::connect, "cannot resolve " + to.host + ": " + ec.message(),
                     "cannot resolve " + to.host + ": " + ec.message());
  }
  x.phase = "connecting";
  error_code last = asio::error::host_not_found;
  bool connected = false;
  for (const auto& entry : results) {
    error_code ignored;
    c.socket().close(ignored);
    co_await c.socket().async_connect(entry.endpoint(),
                                      asio::redirect_error(asio::use_awaitable, ec));
    if (x.abandoned) co_return;
    if (!ec) {
      connected = true;
      break;
    }
    last = ec;
  }
  if (!connected) {
    throw http_error(http_error::kind::connect,
                     "cannot connect to " + describe(to) + ": " + last.message(), last.message());
  }
  c.socket().set_option(tcp::no_delay(true), ec);
  if (!tls) co_return;

  x.phase = "in the TLS handshake";
  c.secure = std::make_unique<net::tls_stream>(c.plain, std::move(tls), to.host);
  auto& stream = *c.secure;
  ec = co_await stream.handshake();
  if (x.abandoned) co_return;
  if (ec) {
    std::string detail;
    if (stream.verification_failed()) {
      detail = verify_failure(to, stream);
    } else if (ec == asio::error::eof || ec == asio::error::connection_reset) {
      detail = "the TLS handshake with " + describe(to) +
               " failed: the server closed the connection (is it a TLS port?)";
    } else {
      detail = "the TLS handshake with " + describe(to) + " failed: " + ec.message();
    }
    throw http_error(http_error::kind::tls, detail, detail);
  }
}

http_response to_response(http::response<http::string_body>&& message) {
  http_response out;
  out.status = message.result_int();
  for (const auto& field : message.base()) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out.body = std::move(message.body());
  return out;
}

asio::awaitable<void> run_exchange(std::shared_ptr<http_client::state> owner,
                                   std::shared_ptr<exchange> x, endpoint to,
                                   http::request<http::string_body> request) {
  const std::string key = pool_key(to);
  for (int attempt = 0;; ++attempt) {
    connection_ptr c = attempt == 0 ? owner->take_idle(key) : nullptr;
    const bool reused = c != nullptr;
    try {
      if (!c) {
        std::shared_ptr<const net::tls_config> config;
        if (to.tls) {
          config = owner->config_for_tls();
          if (!config) {
            throw http_error(http_error::kind::tls, owner->tls_config_failure,
                             owner->tls_config_failure);
          }
        }
        c = std::make_shared<connection>(owner->executor);
        x->current = c;
        co_await open(*c, to, std::move(config), *x);
      }
      x->current = c;
      if (x->abandoned) break;

      http::response_parser<http::string_body> parser;
      parser.body_limit(max_body_bytes);
      parser.header_limit(max_header_bytes);
      error_code ec;
      if (c->secure) {
        ec = co_await round_trip(*c->secure, *c, request, parser, *x);
      } else {
        ec = co_await round_trip(c->plain, *c, request, parser, *x);
      }
      if (x->abandoned) break;
      if (ec) {
        // A kept-alive connection the server closed meanwhile fails before any answer: the
        // request did not reach it, so one more try on a new connection is safe.
        if (reused && !parser.got_some()) {
          c->close();
          x->current = nullptr;
          continue;
        }
        c->close();
        std::string cause = ec == http::error::body_limit
                                ? "the answer is larger than " +
                                      std::to_string(max_body_bytes / (1024 * 1024)) + " MiB"
                                : ec.message();
        throw http_error(http_error::kind::io,
                         "HTTP request to " + describe(to) + " failed " + x->phase + ": " + cause,
                         cause + " (" + x->phase + ")");
      }
      auto message = parser.release();
      bool keep = message.keep_alive() && message.need_eof() == false;
      x->response = to_response(std::move(message));
      x->current = nullptr;
      if (keep) {
        owner->put_idle(key, std::move(c));
      } else {
        c->close();
      }
    } catch (const http_error& e) {
      if (c) c->close();
      x->current = nullptr;
      if (!x->abandoned) x->failure = e;
    } catch (const std::exception& e) {  // bad_alloc and the like: still end the wait
      if (c) c->close();
      x->current = nullptr;
      if (!x->abandoned) {
        x->failure =
            http_error(http_error::kind::io,
                       "HTTP request to " + describe(to) + " failed: " + e.what(), e.what());
      }
    }
    break;
  }
  x->done = true;
  x->event.cancel();
}

std::string format_ms(std::chrono::milliseconds ms) {
  return std::to_string(ms.count()) + " ms";
}

}  // namespace

std::string endpoint::host_header() const {
  bool v6 = host.find(':') != std::string::npos;
  std::string out = v6 ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) out += ":" + std::to_string(port);
  return out;
}

endpoint parse_endpoint(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return endpoint_error("bad endpoint URL \"" + std::string(url.substr(0, 200)) + "\": " + why +
                          " (expected http://HOST:PORT or https://HOST[:PORT])");
  };
  endpoint out;
  std::string_view rest = url;
  auto has_prefix = [&](std::string_view prefix) {
    return rest.size() >= prefix.size() && iequals(rest.substr(0, prefix.size()), prefix);
  };
  if (has_prefix("https://")) {
    out.tls = true;
    out.port = 443;
    rest.remove_prefix(8);
  } else if (has_prefix("http://")) {
    out.tls = false;
    out.port = 80;
    rest.remove_prefix(7);
  } else {
    throw bad("the scheme must be http:// or https://");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) {
    throw bad("it may have no path, query or fragment");
  }
  if (rest.find('@') != std::string_view::npos) throw bad("it may have no user name");
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) throw bad("unterminated IPv6 address");
    out.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') throw bad("unexpected text after the IPv6 address");
      port_text = rest.substr(1);
      if (port_text.empty()) throw bad("empty port");
    }
  } else {
    auto colon = rest.find(':');
    out.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) throw bad("empty port");
    }
  }
  if (out.host.empty()) throw bad("no host");
  for (char ch : out.host) {
    if (static_cast<unsigned char>(ch) <= ' ' || ch == '[' || ch == ']' || ch == '\\') {
      throw bad("the host has a character a host name cannot have");
    }
  }
  if (!port_text.empty()) {
    unsigned value = 0;
    for (char ch : port_text) {
      if (ch < '0' || ch > '9' || value > 65535) throw bad("the port is not a number 1..65535");
      value = value * 10 + static_cast<unsigned>(ch - '0');
    }
    if (value == 0 || value > 65535) throw bad("the port is not a number 1..65535");
    out.port = static_cast<std::uint16_t>(value);
  }
  return out;
}

std::string_view http_response::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return {};
}

http_client::http_client(asio::any_io_executor executor, tls_options tls)
    : state_(std::make_shared<state>(std::move(executor), std::move(tls))) {}

http_client::~http_client() {
  state_->close_idle();
}

void http_client::close_idle() {
  state_->close_idle();
}

asio::awaitable<http_response> http_client::send(const endpoint& to, http_request request,
                                                 std::chrono::milliseconds timeout) {
  auto owner = state_;
  http::request<http::string_body> message;
  http::verb verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) {
    throw std::invalid_argument("http_client: unknown method " + request.method);
  }
  message.method(verb);
  message.target(request.target);
  message.version(11);
  message.set(http::field::host, to.host_header());
  for (auto& [name, value] : request.headers) message.insert(name, value);
  message.body() = std::move(request.body);
  message.prepare_payload();
  message.keep_alive(true);

  auto x = std::make_shared<exchange>(owner->executor, std::chrono::steady_clock::now() + timeout);
  asio::co_spawn(owner->executor, run_exchange(owner, x, to, std::move(message)), asio::detached);

  error_code ec;
  if (!x->done) co_await x->event.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (!x->done) {
    // The deadline passed (the wait succeeded) or the caller was cancelled.
    const char* phase = x->phase;
    x->abandon();
    if (ec == asio::error::operation_aborted) {
      throw boost::system::system_error(asio::error::operation_aborted);
    }
    std::string cause = "no answer within " + format_ms(timeout) + " (" + phase + ")";
    throw http_error(http_error::kind::timeout, "HTTP request to " + describe(to) + ": " + cause,
                     cause);
  }
  if (x->failure) throw *x->failure;
  co_return std::move(*x->response);
}

}  // namespace funcie::aws
