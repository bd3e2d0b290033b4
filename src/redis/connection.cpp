// One Redis connection: a writer coroutine sends queued commands in call order (batched into
// one gather write), a reader coroutine feeds hiredis's RESP reader and completes requests in
// FIFO order. Each request has a steady_timer used as its completion event: cancel() wakes
// the waiting execute(); an expiry is the command's timeout.
#include "redis/connection.hpp"

#include "redis/cluster.hpp"
#include "redis/cluster_map.hpp"

#include "net/tls_stream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <deque>
#include <set>
#include <utility>

namespace funcie::redis {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

/// Arguments up to this size are copied next to the RESP framing; larger ones are sent from
/// the caller's memory.
constexpr std::size_t inline_argument_limit = 1024;
/// Size of each socket read fed to the RESP reader.
constexpr std::size_t read_chunk = 64 * 1024;
/// A bulk string still missing more than read_chunk bytes is read in steps of at most this.
constexpr std::size_t max_bulk_step = 64 * 1024 * 1024;
/// Most requests in one gather write.
constexpr std::size_t max_batch = 512;

std::string upper(std::string_view text) {
  std::string out(text.substr(0, 64));
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string format_ms(std::chrono::milliseconds ms) {
  return std::to_string(ms.count()) + " ms";
}

enum class pubsub_command { none, subscribe, psubscribe, unsubscribe, punsubscribe };

pubsub_command classify(std::string_view upper_name) {
  // Sharded pub/sub (SSUBSCRIBE, Redis 7.0+) confirms like the classic one.
  if (upper_name == "SUBSCRIBE" || upper_name == "SSUBSCRIBE") return pubsub_command::subscribe;
  if (upper_name == "PSUBSCRIBE") return pubsub_command::psubscribe;
  if (upper_name == "UNSUBSCRIBE" || upper_name == "SUNSUBSCRIBE") {
    return pubsub_command::unsubscribe;
  }
  if (upper_name == "PUNSUBSCRIBE") return pubsub_command::punsubscribe;
  return pubsub_command::none;
}

bool is_text(const reply& r) {
  return r.type == reply::kind::string || r.type == reply::kind::status;
}

// ["subscribe"|"unsubscribe"|"psubscribe"|"punsubscribe", name, count]
std::optional<pubsub_command> confirmation_kind(const reply& r) {
  if (r.type != reply::kind::array || r.elements.size() != 3) return std::nullopt;
  if (r.elements[0].type != reply::kind::string && r.elements[0].type != reply::kind::status) {
    return std::nullopt;
  }
  if (r.elements[2].type != reply::kind::integer) return std::nullopt;
  auto kind = classify(upper(r.elements[0].str));
  if (kind == pubsub_command::none) return std::nullopt;
  return kind;
}

struct request {
  explicit request(const asio::any_io_executor& executor)
      : event(executor, asio::steady_timer::time_point::max()) {}

  enum class state { queued, writing, written };

  std::string command;  ///< Upper-case command name, for messages.
  pubsub_command pubsub = pubsub_command::none;
  /// (Un)subscribe confirmations still expected; -1: "all", decided at the first one.
  long long confirmations = 0;
  std::string frame;  ///< RESP framing and the small arguments.
  std::vector<asio::const_buffer> buffers;
  asio::steady_timer event;
  state st = state::queued;
  bool replied = false;
  bool done = false;
  bool abandoned = false;
  std::optional<reply> result;
  std::optional<error> failure;
};

using request_ptr = std::shared_ptr<request>;

struct attempt_state {
  explicit attempt_state(const asio::any_io_executor& executor) : resolver(executor) {}
  tcp::resolver resolver;
  bool timed_out = false;
  bool finished = false;
  const char* phase = "resolving the host";
};

}  // namespace

struct connection::impl : std::enable_shared_from_this<impl> {
  impl(asio::any_io_executor ex, const connect_options& o)
      : executor(std::move(ex)),
        options(o),
        name(describe(o.server)),
        socket(executor),
        message_event(executor, asio::steady_timer::time_point::max()) {}

  asio::any_io_executor executor;
  connect_options options;
  std::string name;
  tcp::socket socket;
  std::unique_ptr<net::tls_stream> tls;
  std::unique_ptr<reply_reader> reader;

  std::deque<request_ptr> write_queue;
  std::deque<request_ptr> pending;  ///< Sent (or being sent), in order, awaiting replies.
  bool writer_active = false;
  bool open = true;
  errc close_code = errc::io;
  std::string close_cause;

  long long subscriptions = 0;  ///< As the server last counted them.
  std::set<std::string> channels;
  std::set<std::string> patterns;
  std::deque<message> messages;  ///< Unbounded: a slow receiver grows it.
  asio::steady_timer message_event;

  std::string prefix() const { return "Redis at " + name + ": "; }

  /// Closes the socket and fails every outstanding request with `code` and `cause`.
  void fail(errc code, const std::string& cause) noexcept {
    if (!open) return;
    open = false;
    close_code = code;
    close_cause = cause;
    error_code ignored;
    socket.close(ignored);
    error failure(code, prefix() + cause);
    auto fail_all = [&](std::deque<request_ptr>& queue) {
      for (auto& r : queue) {
        if (r->done) continue;
        r->failure = failure;
        finish(*r);
      }
      queue.clear();
    };
    fail_all(pending);
    fail_all(write_queue);
    message_event.cancel();
  }

  static void finish(request& r) noexcept {
    r.done = true;
    r.event.cancel();
  }

  error closed_error() const {
    return error(errc::io, prefix() + "the connection is closed (" + close_cause + ")");
  }

  request_ptr enqueue(const std::vector<std::string_view>& args) {
    if (args.empty()) throw std::invalid_argument("redis::connection::execute: no command");
    if (!open) throw closed_error();
    auto r = std::make_shared<request>(executor);
    r->command = upper(args[0]);
    r->pubsub = classify(r->command);
    if (r->pubsub != pubsub_command::none) {
      r->confirmations = args.size() > 1 ? static_cast<long long>(args.size() - 1) : -1;
    }

    // Pieces: framing and small arguments are appended to `frame`; a large argument is a
    // buffer of its own pointing at the caller's bytes.
    struct piece {
      const char* external;  // nullptr: frame[offset, offset+size)
      std::size_t offset;
      std::size_t size;
    };
    std::vector<piece> pieces;
    std::size_t frame_size = 16;
    for (auto a : args) frame_size += 32 + (a.size() <= inline_argument_limit ? a.size() : 0);
    r->frame.reserve(frame_size);
    std::size_t start = 0;
    r->frame += '*';
    r->frame += std::to_string(args.size());
    r->frame += "\r\n";
    for (auto a : args) {
      r->frame += '$';
      r->frame += std::to_string(a.size());
      r->frame += "\r\n";
      if (a.size() <= inline_argument_limit) {
        r->frame += a;
      } else {
        pieces.push_back({nullptr, start, r->frame.size() - start});
        pieces.push_back({a.data(), 0, a.size()});
        start = r->frame.size();
      }
      r->frame += "\r\n";
    }
    pieces.push_back({nullptr, start, r->frame.size() - start});
    for (const auto& p : pieces) {
      if (p.size == 0) continue;
      r->buffers.push_back(p.external ? asio::buffer(p.external, p.size)
                                      : asio::buffer(r->frame.data() + p.offset, p.size));
    }

    write_queue.push_back(r);
    if (!writer_active) {
      writer_active = true;
      asio::co_spawn(executor, write_loop(shared_from_this()), asio::detached);
    }
    return r;
  }

  /// enqueue() with each argument given as pieces sent one after the other as one bulk
  /// string: a large piece is a buffer of its own pointing at the caller's bytes, so an
  /// argument of a small header and a 6 MB body is never joined in memory. For commands
  /// that store or push (not for (un)subscribing: no confirmation is counted).
  request_ptr enqueue_pieces(const std::vector<std::vector<std::string_view>>& args) {
    if (args.empty() || args[0].empty()) {
      throw std::invalid_argument("redis::connection::execute: no command");
    }
    if (!open) throw closed_error();
    auto r = std::make_shared<request>(executor);
    r->command = upper(args[0][0]);
    std::size_t frame_size = 16;
    for (const auto& a : args) {
      frame_size += 32;
      for (auto p : a) frame_size += p.size() <= inline_argument_limit ? p.size() : 0;
    }
    r->frame.reserve(frame_size);
    // (caller's bytes, or nullptr: `frame`) and (offset, size): the buffers are made once
    // `frame` is complete.
    std::vector<std::pair<const char*, std::pair<std::size_t, std::size_t>>> pieces;
    std::size_t start = 0;
    r->frame += '*';
    r->frame += std::to_string(args.size());
    r->frame += "\r\n";
    for (const auto& a : args) {
      std::size_t total = 0;
      for (auto p : a) total += p.size();
      r->frame += '$';
      r->frame += std::to_string(total);
      r->frame += "\r\n";
      for (auto p : a) {
        if (p.size() <= inline_argument_limit) {
          r->frame += p;
          continue;
        }
        pieces.push_back({nullptr, {start, r->frame.size() - start}});
        pieces.push_back({p.data(), {0, p.size()}});
        start = r->frame.size();
      }
      r->frame += "\r\n";
    }
    pieces.push_back({nullptr, {start, r->frame.size() - start}});
    for (const auto& [data, span] : pieces) {
      if (span.second == 0) continue;
      r->buffers.push_back(data != nullptr
                               ? asio::buffer(data, span.second)
                               : asio::buffer(r->frame.data() + span.first, span.second));
    }
    write_queue.push_back(r);
    if (!writer_active) {
      writer_active = true;
      asio::co_spawn(executor, write_loop(shared_from_this()), asio::detached);
    }
    return r;
  }

  /// The caller stopped waiting for `r` (its coroutine was cancelled).
  void abandon(const request_ptr& r) {
    switch (r->st) {
      case request::state::queued: {
        auto it = std::find(write_queue.begin(), write_queue.end(), r);
        if (it != write_queue.end()) write_queue.erase(it);
        r->abandoned = true;
        break;
      }
      case request::state::writing:
        // Its bytes are being sent from the caller's memory, which is going away.
        fail(errc::io,
             "the connection was closed: " + r->command + " was cancelled while it was being sent");
        break;
      case request::state::written:
        r->abandoned = true;  // the reader drops its reply: the pipeline stays in step
        break;
    }
  }

  static asio::awaitable<void> write_loop(std::shared_ptr<impl> self) {
    try {
      co_await self->write_batches();
    } catch (const std::exception& e) {
      self->fail(errc::io, std::string("cannot send: ") + e.what());
    }
    self->writer_active = false;
  }

  asio::awaitable<void> write_batches() {
    std::vector<asio::const_buffer> buffers;
    std::vector<request_ptr> batch;
    while (open && !write_queue.empty()) {
      buffers.clear();
      batch.clear();
      while (!write_queue.empty() && batch.size() < max_batch) {
        request_ptr r = std::move(write_queue.front());
        write_queue.pop_front();
        r->st = request::state::writing;
        pending.push_back(r);
        buffers.insert(buffers.end(), r->buffers.begin(), r->buffers.end());
        batch.push_back(std::move(r));
      }
      error_code ec;
      if (tls) {
        co_await asio::async_write(*tls, buffers, asio::redirect_error(asio::use_awaitable, ec));
      } else {
        co_await asio::async_write(socket, buffers, asio::redirect_error(asio::use_awaitable, ec));
      }
      for (auto& r : batch) {
        r->st = request::state::written;
        if (r->replied && !r->done) finish(*r);  // the reply overtook the write's completion
      }
      if (ec) {
        fail(errc::io, "cannot send: " + ec.message());
        co_return;
      }
    }
  }

  static asio::awaitable<void> read_loop(std::shared_ptr<impl> self) {
    try {
      co_await self->read_replies();
    } catch (const std::exception& e) {
      self->fail(errc::io, std::string("cannot read: ") + e.what());
    }
  }

  asio::awaitable<void> read_replies() {
    std::vector<char> buffer(read_chunk);
    while (open) {
      error_code ec;
      std::size_t n = 0;
      std::unique_ptr<char[]> big;
      asio::mutable_buffer target = asio::buffer(buffer);
      if (std::size_t missing = reader->missing_bulk_bytes(); missing > read_chunk) {
        missing = std::min(missing, max_bulk_step);
        big.reset(new char[missing]);
        target = asio::buffer(big.get(), missing);
        if (tls) {
          n = co_await asio::async_read(*tls, target,
                                        asio::redirect_error(asio::use_awaitable, ec));
        } else {
          n = co_await asio::async_read(socket, target,
                                        asio::redirect_error(asio::use_awaitable, ec));
        }
      } else if (tls) {
        n = co_await tls->async_read_some(target, asio::redirect_error(asio::use_awaitable, ec));
      } else {
        n = co_await socket.async_read_some(target, asio::redirect_error(asio::use_awaitable, ec));
      }
      if (!open) co_return;
      if (ec) {
        if (ec == asio::error::eof || ec == asio::error::connection_reset) {
          fail(errc::io, "the server closed the connection");
        } else {
          fail(errc::io, "cannot read: " + ec.message());
        }
        co_return;
      }
      try {
        reader->feed(static_cast<const char*>(target.data()), n);
      } catch (const std::bad_alloc&) {
        fail(errc::protocol, "cannot buffer the reply");
        co_return;
      }
      const bool fed_big = big != nullptr;
      big.reset();
      for (;;) {
        std::optional<reply> next;
        try {
          next = reader->next();
        } catch (const reply_error& e) {
          fail(errc::protocol, e.what());
          co_return;
        }
        if (!next) break;
        dispatch(std::move(*next));
        if (!open) co_return;
      }
      // hiredis keeps its buffer's capacity until the next read: after a large bulk string
      // (a 6 MB envelope) that is megabytes held while the connection idles. A reader with
      // nothing buffered and no reply half-parsed starts afresh.
      if (fed_big && reader->idle()) reader->reset();
    }
  }

  void dispatch(reply r) {
    if (subscriptions > 0 && r.type == reply::kind::array && !r.elements.empty() &&
        r.elements[0].type == reply::kind::string) {
      const auto& kind = r.elements[0].str;
      if (r.elements.size() == 3 && (lower(kind) == "message" || lower(kind) == "smessage")) {
        messages.push_back({std::move(r.elements[1].str), std::move(r.elements[2].str)});
        message_event.cancel();
        return;
      }
      if (r.elements.size() == 4 && lower(kind) == "pmessage") {
        messages.push_back({std::move(r.elements[2].str), std::move(r.elements[3].str)});
        message_event.cancel();
        return;
      }
    }
    // A cluster node drops the sharded subscriptions of a slot it no longer serves.
    if (r.type == reply::kind::array && r.elements.size() == 3 && is_text(r.elements[0]) &&
        lower(r.elements[0].str) == "sunsubscribe" &&
        (pending.empty() || pending.front()->pubsub != pubsub_command::unsubscribe)) {
      fail(errc::io, "the server ended the sharded subscription to " + r.elements[1].str +
                         " (its slot moved to another node)");
      return;
    }
    if (pending.empty()) {
      fail(errc::protocol, "the server sent a reply nobody asked for");
      return;
    }
    request& front = *pending.front();
    if (front.pubsub != pubsub_command::none) {
      if (auto kind = confirmation_kind(r)) {
        if (front.confirmations < 0) {
          // (P)UNSUBSCRIBE without arguments: one confirmation per name, at least one.
          std::size_t names =
              front.pubsub == pubsub_command::punsubscribe ? patterns.size() : channels.size();
          front.confirmations = static_cast<long long>(std::max<std::size_t>(1, names));
        }
        subscriptions = r.elements[2].integer;
        const std::string& target = r.elements[1].str;
        switch (*kind) {
          case pubsub_command::subscribe:
            channels.insert(target);
            break;
          case pubsub_command::psubscribe:
            patterns.insert(target);
            break;
          case pubsub_command::unsubscribe:
            channels.erase(target);
            break;
          case pubsub_command::punsubscribe:
            patterns.erase(target);
            break;
          case pubsub_command::none:
            break;
        }
        if (--front.confirmations > 0) return;
      }
    }
    request_ptr done = std::move(pending.front());
    pending.pop_front();
    if (done->abandoned || done->done) return;
    done->result = std::move(r);
    done->replied = true;
    if (done->st == request::state::written) finish(*done);
  }

  /// Waits for `r`; throws its failure, errc::timeout after `timeout`, or operation_aborted
  /// when the caller is cancelled.
  static asio::awaitable<reply> await_reply(std::shared_ptr<impl> self, request_ptr r,
                                            std::optional<std::chrono::milliseconds> timeout) {
    if (!r->done) {
      if (timeout) r->event.expires_after(*timeout);
      error_code ec;
      co_await r->event.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!r->done) {
        if (!ec) {
          std::string cause = r->command + " got no reply within " + format_ms(*timeout) +
                              "; the connection is closed";
          self->fail(errc::io, "the connection was closed after " + r->command +
                                   " got no reply within " + format_ms(*timeout));
          throw error(errc::timeout, self->prefix() + cause);
        }
        self->abandon(r);
        throw boost::system::system_error(asio::error::operation_aborted);
      }
    }
    if (r->failure) throw *r->failure;
    co_return std::move(*r->result);
  }

  // --- connect ---------------------------------------------------------------------------

  [[noreturn]] void throw_connect_failed(const std::string& cause) {
    throw error(errc::connect_failed, "cannot connect to Redis at " + name + ": " + cause);
  }

  asio::awaitable<void> open_transport(std::shared_ptr<attempt_state> attempt) {
    const endpoint& server = options.server;
    std::vector<tcp::endpoint> endpoints;
    error_code ec;
    auto address = asio::ip::make_address(server.host, ec);
    if (!ec) {
      endpoints.emplace_back(address, server.port);
    } else {
      std::string service = std::to_string(server.port);
      auto results = co_await attempt->resolver.async_resolve(
          server.host, service, tcp::resolver::numeric_service,
          asio::redirect_error(asio::use_awaitable, ec));
      if (attempt->timed_out) co_return;
      if (ec) throw_connect_failed("cannot resolve the host: " + ec.message());
      for (const auto& entry : results) endpoints.push_back(entry.endpoint());
      if (endpoints.empty()) throw_connect_failed("the host has no address");
    }

    attempt->phase = "connecting";
    error_code last;
    bool connected = false;
    for (const auto& e : endpoints) {
      if (attempt->timed_out) co_return;
      socket.close(ec);
      socket.open(e.protocol(), ec);
      if (ec) {
        last = ec;
        continue;
      }
      co_await socket.async_connect(e, asio::redirect_error(asio::use_awaitable, ec));
      if (attempt->timed_out) co_return;
      if (!ec) {
        connected = true;
        break;
      }
      last = ec;
    }
    if (!connected) throw_connect_failed(last.message());
    socket.set_option(tcp::no_delay(true), ec);

    if (server.tls) {
      attempt->phase = "in the TLS handshake";
      std::shared_ptr<const net::tls_config> config;
      try {
        config = net::tls_config::make(options.ca_file, options.verify);
      } catch (const net::tls_config_error& e) {
        if (options.ca_file.empty()) {
          throw_connect_failed("cannot load the system's CA certificates: " +
                               std::string(e.what()));
        }
        throw_connect_failed("cannot read the CA file " + options.ca_file + ": " + e.what());
      }
      tls = std::make_unique<net::tls_stream>(socket, std::move(config), server.host);
      ec = co_await tls->handshake();
      if (attempt->timed_out) co_return;
      if (ec) {
        if (tls->wrong_host()) {
          throw_connect_failed(
              "TLS certificate verification failed: the certificate does not match "
              "the host name " +
              server.host);
        }
        if (tls->verification_failed()) {
          throw_connect_failed("TLS certificate verification failed: " +
                               tls->verification_failure());
        }
        if (ec == asio::error::eof || ec == asio::error::connection_reset) {
          throw_connect_failed(
              "TLS handshake failed: the server closed the connection (is it a TLS port?)");
        }
        throw_connect_failed("TLS handshake failed: " + ec.message());
      }
    }
  }

  asio::awaitable<void> hello(std::shared_ptr<attempt_state> attempt) {
    const endpoint& server = options.server;
    attempt->phase = "waiting for the server's answer to AUTH, SELECT or CLIENT SETNAME";
    request_ptr auth, select, setname;
    if (!server.password.empty()) {
      std::vector<std::string_view> args;
      args.emplace_back("AUTH");
      if (!server.user.empty()) args.emplace_back(server.user);
      args.emplace_back(server.password);
      auth = enqueue(args);
    }
    std::string db = std::to_string(server.db);
    if (server.db != 0) {
      std::vector<std::string_view> args{"SELECT", db};
      select = enqueue(args);
    }
    if (!options.client_name.empty()) {
      std::vector<std::string_view> args{"CLIENT", "SETNAME", options.client_name};
      setname = enqueue(args);
    }
    std::optional<std::chrono::milliseconds> no_timeout;
    if (auth) {
      reply r = co_await await_reply(shared_from_this(), auth, no_timeout);
      if (r.is_error()) {
        throw error(errc::auth_failed,
                    "Redis at " + name + " refused the credentials for user " +
                        (server.user.empty() ? std::string("default") : server.user) + ": " +
                        r.str);
      }
    }
    if (select) {
      reply r = co_await await_reply(shared_from_this(), select, no_timeout);
      if (r.is_error()) {
        throw error(errc::auth_failed, "Redis at " + name + " refused SELECT " + db + ": " + r.str);
      }
    }
    if (setname) {
      reply r = co_await await_reply(shared_from_this(), setname, no_timeout);
      if (r.is_error()) {
        throw error(errc::connect_failed, "Redis at " + name + " refused CLIENT SETNAME: " + r.str);
      }
    }
  }

  /// Connects to options.server alone (no routing). Throws error.
  static asio::awaitable<std::shared_ptr<impl>> open_direct(asio::any_io_executor executor,
                                                            const connect_options& options);

  asio::awaitable<void> establish(std::shared_ptr<attempt_state> attempt) {
    co_await open_transport(attempt);
    if (attempt->timed_out) co_return;
    reader = std::make_unique<reply_reader>();
    asio::co_spawn(executor, read_loop(shared_from_this()), asio::detached);
    co_await hello(attempt);
  }
};

asio::awaitable<std::shared_ptr<connection::impl>> connection::impl::open_direct(
    asio::any_io_executor executor, const connect_options& options) {
  auto self = std::make_shared<impl>(executor, options);
  auto attempt = std::make_shared<attempt_state>(executor);
  const auto timeout = options.connect_timeout;
  auto timed_out_message = [self, attempt, timeout] {
    return "cannot connect to Redis at " + self->name + ": timed out after " + format_ms(timeout) +
           " (" + attempt->phase + ")";
  };

  asio::steady_timer watchdog(executor, timeout);
  watchdog.async_wait([self, attempt](error_code ec) {
    if (ec || attempt->finished) return;
    attempt->timed_out = true;
    attempt->resolver.cancel();
    self->fail(errc::connect_failed, "timed out");
  });

  std::optional<error> failure;
  try {
    co_await self->establish(attempt);
  } catch (const error& e) {
    failure = e;
  } catch (const boost::system::system_error& e) {
    failure = error(errc::connect_failed,
                    "cannot connect to Redis at " + self->name + ": " + e.code().message());
  }
  attempt->finished = true;
  watchdog.cancel();
  if (attempt->timed_out) {
    failure = error(errc::connect_failed, timed_out_message());
  } else if (!failure && !self->open) {
    failure = error(errc::connect_failed,
                    "cannot connect to Redis at " + self->name + ": " + self->close_cause);
  }
  if (failure) {
    std::string cause = self->close_cause;  // why the connection broke, when it did
    self->fail(errc::connect_failed, "connect failed");
    if (failure->code() == errc::io || failure->code() == errc::protocol ||
        failure->code() == errc::timeout) {
      throw error(errc::connect_failed, "cannot connect to Redis at " + self->name + ": " +
                                            (cause.empty() ? std::string(failure->what()) : cause));
    }
    throw *failure;
  }
  co_return self;
}

struct connection::route {
  route(asio::any_io_executor ex, connect_options o, std::string k, std::uint16_t s)
      : executor(std::move(ex)),
        options(std::move(o)),
        key(std::move(k)),
        slot(s),
        moved_event(executor, asio::steady_timer::time_point::max()) {}

  asio::any_io_executor executor;
  connect_options options;  ///< As given (the seeds).
  std::string key;          ///< cluster::deployment_key
  std::uint16_t slot;
  bool sharded = false;
  std::size_t masters = 0;
  bool moving = false;  ///< A MOVED is being followed: others wait for it.
  bool closed = false;
  asio::steady_timer moved_event;

  /// The options for one node of the cluster (same scheme, credentials and TLS settings).
  connect_options at(const cluster::node& n) const {
    connect_options o = options;
    o.server.host = n.host;
    o.server.port = n.port;
    o.server.more_seeds.clear();
    o.route_key.clear();
    return o;
  }
};

namespace {

/// What the node behind `conn` says about itself: standalone, or a cluster and its map.
/// Throws error (the node is unusable) or cluster::topology_error.
template <class Impl>
asio::awaitable<cluster::knowledge> discover(std::shared_ptr<Impl> conn, const cluster::node& asked,
                                             const connect_options& options) {
  const auto timeout = options.connect_timeout;
  // Standalone: "ERR This instance has cluster support disabled". A server (or a proxy)
  // without CLUSTER, or an ACL that denies it, is taken as standalone too: funcie then
  // works as it always did.
  auto standalone = [](const reply& r) {
    return r.str.find("cluster support disabled") != std::string::npos ||
           r.str.starts_with("NOPERM") || r.str.find("unknown command") != std::string::npos;
  };
  cluster::knowledge k;
  const std::vector<std::string_view> shards_command{"CLUSTER", "SHARDS"};
  reply shards = co_await Impl::await_reply(conn, conn->enqueue(shards_command), timeout);
  if (!shards.is_error()) {
    k.kind = cluster::mode::cluster;
    k.map = cluster::parse_shards(shards, asked, options.server.tls);
    k.sharded_pubsub = true;
    co_return k;
  }
  if (!shards.str.starts_with("NOPERM") && standalone(shards)) {
    k.kind = cluster::mode::standalone;
    co_return k;
  }
  // Before 7.0 (or a user allowed CLUSTER SLOTS only): the classic pub/sub.
  const std::vector<std::string_view> slots_command{"CLUSTER", "SLOTS"};
  reply slots = co_await Impl::await_reply(conn, conn->enqueue(slots_command), timeout);
  if (slots.is_error()) {
    if (standalone(slots)) {
      k.kind = cluster::mode::standalone;
      co_return k;
    }
    throw error(errc::connect_failed,
                "Redis at " + cluster::describe(asked) +
                    " refused CLUSTER SHARDS and CLUSTER SLOTS: " + slots.str);
  }
  k.kind = cluster::mode::cluster;
  k.map = cluster::parse_slots(slots, asked);
  co_return k;
}

}  // namespace

asio::awaitable<std::unique_ptr<connection>> connection::connect(asio::any_io_executor executor,
                                                                 const connect_options& options) {
  if (options.route_key.empty()) {
    auto direct = co_await impl::open_direct(executor, options);
    co_return std::unique_ptr<connection>(new connection(std::move(direct)));
  }
  const std::string key = cluster::deployment_key(options.server);
  const std::uint16_t slot = cluster::key_slot(options.route_key);
  auto r = std::make_shared<route>(executor, options, key, slot);
  auto routed = [&](std::shared_ptr<impl> state, const cluster::knowledge& k) {
    auto conn = std::unique_ptr<connection>(new connection(std::move(state)));
    r->sharded = k.sharded_pubsub;
    r->masters = k.map.masters;
    conn->route_ = r;
    return conn;
  };

  cluster::knowledge k = cluster::known(key);
  if (k.kind == cluster::mode::standalone) {
    const cluster::node seed{options.server.host, options.server.port};
    const connect_options seed_options = r->at(seed);
    auto direct = co_await impl::open_direct(executor, seed_options);
    co_return std::unique_ptr<connection>(new connection(std::move(direct)));
  }
  if (k.kind == cluster::mode::cluster) {
    if (auto owner = cluster::owner(key, slot)) {
      bool refused_credentials = false;
      try {
        const connect_options owner_options = r->at(*owner);
        auto state = co_await impl::open_direct(executor, owner_options);
        co_return routed(std::move(state), k);
      } catch (const error& e) {
        // Gone (a failover?): ask the cluster again below.
        refused_credentials = e.code() == errc::auth_failed;
        if (refused_credentials) throw;
      }
    }
  }

  // Ask the seeds, then the masters last known, until one answers.
  std::vector<cluster::node> candidates;
  candidates.push_back(cluster::node{options.server.host, options.server.port});
  for (const auto& s : options.server.more_seeds) {
    candidates.push_back(cluster::node{s.host, s.port});
  }
  for (const auto& range : k.map.ranges) {
    if (std::find(candidates.begin(), candidates.end(), range.master) == candidates.end()) {
      candidates.push_back(range.master);
    }
  }
  std::optional<error> last;
  for (const auto& candidate : candidates) {
    std::shared_ptr<impl> state;
    try {
      const connect_options candidate_options = r->at(candidate);
      state = co_await impl::open_direct(executor, candidate_options);
    } catch (const error& e) {
      if (e.code() == errc::auth_failed) throw;
      last = e;
      continue;
    }
    cluster::knowledge learnt;
    try {
      learnt = co_await discover(state, candidate, options);
    } catch (const error& e) {
      last = e;
    } catch (const cluster::topology_error& e) {
      last = error(errc::protocol, "Redis at " + cluster::describe(candidate) +
                                       " gave a bad topology: " + e.what());
    }
    if (learnt.kind == cluster::mode::unknown) {
      state->fail(errc::io, "the connection was closed");
      continue;
    }
    cluster::learn(key, learnt);
    if (learnt.kind == cluster::mode::standalone) {
      co_return std::unique_ptr<connection>(new connection(std::move(state)));
    }
    const auto owner = learnt.map.owner(slot);
    if (!owner) {
      state->fail(errc::io, "the connection was closed");
      last = error(errc::connect_failed, "Redis Cluster at " + cluster::describe(candidate) +
                                             ": no master serves slot " + std::to_string(slot) +
                                             " (a failover is under way, or the cluster is " +
                                             "not fully set up)");
      continue;
    }
    if (*owner == candidate) co_return routed(std::move(state), learnt);
    state->fail(errc::io, "the connection was closed");
    try {
      const connect_options owned_options = r->at(*owner);
      auto owned = co_await impl::open_direct(executor, owned_options);
      co_return routed(std::move(owned), learnt);
    } catch (const error& e) {
      if (e.code() == errc::auth_failed) throw;
      last = e;
    }
  }
  throw last ? *last : error(errc::connect_failed, "cannot connect to Redis: no seed node to ask");
}

connection::connection(std::shared_ptr<impl> state) : impl_(std::move(state)) {}

connection::~connection() {
  close();
}

asio::awaitable<reply> connection::execute(std::vector<std::string_view> args,
                                           std::optional<std::chrono::milliseconds> timeout) {
  for (int attempt = 0;; ++attempt) {
    auto self = impl_;
    request_ptr r = self->enqueue(args);
    reply result = co_await impl::await_reply(self, r, timeout);
    // A command refused with MOVED, ASK or TRYAGAIN was not run: it is safe to send again.
    if (!route_ || !result.is_error() || attempt >= 50) co_return result;
    const bool subscribing = !args.empty() && r->pubsub != pubsub_command::none;
    if (result.str.starts_with("TRYAGAIN")) {
      // Keys of the slot are split between two nodes mid-migration: wait a moment.
      asio::steady_timer pause(self->executor, std::chrono::milliseconds(20));
      co_await pause.async_wait(asio::use_awaitable);
      continue;
    }
    const cluster::node here{self->options.server.host, self->options.server.port};
    const auto redirect = cluster::parse_redirect(result.str, here);
    if (!redirect) co_return result;
    if (redirect->ask) {
      if (subscribing) {
        // A subscription must stay on one node: wait for the migration to end.
        asio::steady_timer pause(self->executor, std::chrono::milliseconds(20));
        co_await pause.async_wait(asio::use_awaitable);
        continue;
      }
      co_return co_await follow_ask(args, redirect->target.host, redirect->target.port, timeout);
    }
    co_await follow_moved(self, redirect->target.host, redirect->target.port, redirect->slot);
  }
}

asio::awaitable<void> connection::follow_moved(std::shared_ptr<impl> from, const std::string& host,
                                               std::uint16_t port, std::uint16_t slot) {
  const auto r = route_;
  cluster::moved(r->key, slot, {host, port});
  if (impl_ != from) co_return;  // another caller moved the connection already
  if (r->moving) {
    while (r->moving) {
      error_code ignored;
      r->moved_event.expires_at(asio::steady_timer::time_point::max());
      co_await r->moved_event.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    co_return;
  }
  r->moving = true;
  std::shared_ptr<impl> fresh;
  std::optional<error> failure;
  try {
    const cluster::node moved_to{host, port};
    const connect_options moved_options = r->at(moved_to);
    fresh = co_await impl::open_direct(r->executor, moved_options);
  } catch (const error& e) {
    failure = e;
  }
  r->moving = false;
  r->moved_event.cancel();
  if (failure) throw *failure;
  if (r->closed) {
    fresh->fail(errc::io, "the connection was closed");
    throw from->closed_error();
  }
  impl_ = fresh;
  // Commands still on the old node get their replies (MOVED too) before it is closed.
  asio::co_spawn(
      r->executor,
      [](std::shared_ptr<impl> old) -> asio::awaitable<void> {
        asio::steady_timer tick(old->executor);
        for (int i = 0;
             i < 600 && old->open && (!old->pending.empty() || !old->write_queue.empty()); ++i) {
          tick.expires_after(std::chrono::milliseconds(50));
          co_await tick.async_wait(asio::use_awaitable);
        }
        old->fail(errc::io, "the connection moved to another node");
      }(from),
      asio::detached);
}

asio::awaitable<reply> connection::follow_ask(const std::vector<std::string_view>& args,
                                              const std::string& host, std::uint16_t port,
                                              std::optional<std::chrono::milliseconds> timeout) {
  // ASKING holds for the next command of the connection only: a connection of its own keeps
  // other callers' commands from coming between.
  const auto r = route_;
  const cluster::node asked{host, port};
  const connect_options ask_options = r->at(asked);
  auto target = co_await impl::open_direct(r->executor, ask_options);
  std::optional<reply> result;
  std::optional<error> failure;
  try {
    std::vector<std::string_view> asking{"ASKING"};
    request_ptr first = target->enqueue(asking);
    request_ptr command = target->enqueue(args);
    co_await impl::await_reply(target, first, timeout);
    result = co_await impl::await_reply(target, command, timeout);
  } catch (const error& e) {
    failure = e;
  }
  target->fail(errc::io, "the connection was closed");
  if (failure) throw *failure;
  co_return std::move(*result);
}

asio::awaitable<reply> connection::execute_checked(
    std::vector<std::string_view> args, std::optional<std::chrono::milliseconds> timeout) {
  auto self = impl_;
  std::string command = args.empty() ? std::string() : upper(args[0]);
  reply result = co_await execute(std::move(args), timeout);
  if (result.is_error()) {
    throw error(errc::server, self->prefix() + command + " failed: " + result.str);
  }
  co_return result;
}

asio::awaitable<reply> connection::execute_pieces_checked(
    std::vector<std::vector<std::string_view>> args,
    std::optional<std::chrono::milliseconds> timeout) {
  auto self = impl_;
  if (route_) {
    // A redirection sends the command again: joined, through execute_checked().
    std::vector<std::string> joined;
    joined.reserve(args.size());
    for (const auto& a : args) {
      std::string whole;
      for (auto p : a) whole += p;
      joined.push_back(std::move(whole));
    }
    co_return co_await execute_checked(std::vector<std::string_view>(joined.begin(), joined.end()),
                                       timeout);
  }
  request_ptr r = self->enqueue_pieces(args);
  reply result = co_await impl::await_reply(self, r, timeout);
  if (result.is_error()) {
    throw error(errc::server, self->prefix() + r->command + " failed: " + result.str);
  }
  co_return result;
}

asio::awaitable<void> connection::subscribe(std::string_view channel) {
  std::vector<std::string_view> args{route_ && route_->sharded ? "SSUBSCRIBE" : "SUBSCRIBE",
                                     channel};
  co_await execute_checked(std::move(args));
}

asio::awaitable<message> connection::receive() {
  auto self = impl_;
  for (;;) {
    if (!self->messages.empty()) {
      message m = std::move(self->messages.front());
      self->messages.pop_front();
      co_return m;
    }
    if (!self->open) throw self->closed_error();
    error_code ec;
    co_await self->message_event.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (self->messages.empty() && self->open) {
      asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
      if (state.cancelled() != asio::cancellation_type::none) {
        throw boost::system::system_error(asio::error::operation_aborted);
      }
    }
  }
}

bool connection::has_unread_input() const noexcept {
  if (!impl_ || !impl_->open) return false;
  if (!impl_->messages.empty()) return true;
  error_code ec;
  if (impl_->tls && impl_->tls->has_buffered_input()) return true;
  const std::size_t waiting = impl_->socket.available(ec);
  return !ec && waiting > 0;
}

void connection::close() noexcept {
  if (route_) route_->closed = true;
  if (impl_) impl_->fail(errc::io, "the connection was closed");
}

bool connection::clustered() const noexcept {
  return route_ != nullptr;
}

bool connection::sharded_pubsub() const noexcept {
  return route_ && route_->sharded;
}

std::size_t connection::cluster_masters() const noexcept {
  return route_ ? route_->masters : 0;
}

std::uint16_t connection::route_slot() const noexcept {
  return route_ ? route_->slot : 0;
}

bool connection::is_open() const noexcept {
  return impl_ && impl_->open;
}

const std::string& connection::server_name() const noexcept {
  return impl_->name;
}

}  // namespace funcie::redis
