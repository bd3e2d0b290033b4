#include "backend/redis/redis_backend.hpp"

#include "backend/redis/keys.hpp"
#include "backend/redis/scripts.hpp"
#include "redis/connection.hpp"
#include "redis/url.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdlib>
#include <optional>
#include <unordered_map>
#include <utility>

namespace funcie::redis_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

/// Payloads above this are preceded by a presence-only check (no 6 MB upload for nobody),
/// and envelopes above it bypass Lua, which would copy them twice.
constexpr std::size_t presence_first_bytes = 64 * 1024;
constexpr std::size_t big_envelope_bytes = presence_first_bytes;
/// A response nobody waits for vanishes after this.
constexpr std::string_view response_ttl_ms = "60000";
/// Idle blocking connections kept by a forwarder for reuse.
constexpr std::size_t max_idle_blocking = 64;
/// Responses read at once when the owner is found gone (one may have been sent just before).
constexpr int max_late_responses = 16;

/// Checks what every backend object needs before any I/O; throws backend_config_error.
redis::connect_options connect_options_for(const tunnel::backend_options& options,
                                           std::string client_name) {
  tunnel::check_app(options.app);
  const auto& timing = options.timing;
  if (timing.heartbeat < 60ms) {
    throw tunnel::backend_config_error(
        fmt::format("heartbeat {} ms is too short: use at least 60 ms", timing.heartbeat.count()));
  }
  if (timing.connect_timeout <= 0ms || timing.command_timeout <= 0ms) {
    throw tunnel::backend_config_error("connect and command timeouts must be positive");
  }
  redis::connect_options connect;
  try {
    connect.server = redis::parse_url(options.url);
  } catch (const redis::url_error& e) {
    throw tunnel::backend_config_error(fmt::format("bad Redis URL: {}", e.what()));
  }
  connect.ca_file = options.ca_file;
  connect.verify = options.tls_verify;
  connect.connect_timeout = timing.connect_timeout;
  connect.client_name = std::move(client_name);
  // On a Redis Cluster: the node of the app's slot (all its keys share the {app} hash tag).
  connect.route_key = app_keys(options.app).channel();
  return connect;
}

asio::awaitable<std::shared_ptr<redis::connection>> open_connection(
    asio::any_io_executor executor, const redis::connect_options& options) {
  std::unique_ptr<redis::connection> conn = co_await redis::connection::connect(executor, options);
  co_return std::shared_ptr<redis::connection>(std::move(conn));
}

/// EVALSHA, or EVAL when the server lost its script cache. An error reply is thrown as
/// redis::errc::server.
asio::awaitable<redis::reply> run_script(redis::connection& conn, const script& code,
                                         std::vector<std::string_view> keys,
                                         std::vector<std::string_view> args, milliseconds timeout) {
  const std::string key_count = std::to_string(keys.size());
  std::vector<std::string_view> command;
  command.reserve(3 + keys.size() + args.size());
  command.emplace_back("EVALSHA");
  command.emplace_back(code.sha);
  command.emplace_back(key_count);
  command.insert(command.end(), keys.begin(), keys.end());
  command.insert(command.end(), args.begin(), args.end());
  redis::reply reply = co_await conn.execute(command, timeout);
  if (reply.is_error() && reply.str.starts_with("NOSCRIPT")) {
    command[0] = "EVAL";
    command[1] = code.text;
    reply = co_await conn.execute(std::move(command), timeout);
  }
  if (reply.is_error()) {
    throw redis::error(redis::errc::server, fmt::format("the {} script failed on {}: {}", code.name,
                                                        conn.server_name(), reply.str));
  }
  co_return reply;
}

/// The bound of a command that carries `bytes`: a 6 MB payload over a slow uplink is not a
/// dead broker.
milliseconds timeout_for(milliseconds base, std::size_t bytes, std::size_t bytes_per_ms) {
  return base + milliseconds(static_cast<std::int64_t>(bytes / bytes_per_ms));
}

/// A response popped for `req`, or nullopt (with one log line) when it is not one.
std::optional<tunnel::response> check_response(std::string_view bytes, const tunnel::request& req,
                                               const tunnel::backend_options& options,
                                               const std::optional<std::string>& owner) {
  const std::string& app = options.app;
  tunnel::response answer;
  try {
    answer = tunnel::decode_response(options.keys.open(bytes));
  } catch (const std::exception& e) {
    spdlog::warn("dropped a response for request {}: {}", req.id, e.what());
    return std::nullopt;
  }
  if (answer.id != req.id || answer.app != app) {
    spdlog::warn("dropped a response for request {} carrying another request id or app", req.id);
    return std::nullopt;
  }
  if (owner && answer.consumer != *owner) {
    spdlog::warn("dropped a response for request {} from session {}, which did not claim it",
                 req.id, answer.consumer);
    return std::nullopt;
  }
  return answer;
}

/// The broker went away after the offer: a consumer may be running the request, so it
/// must not run in the cloud.
tunnel::forward_outcome broker_lost(const std::string& where, std::string_view what) {
  return tunnel::failed(
      "Funcie.BrokerLost",
      fmt::format("lost Redis at {} while a consumer may be running the request: {}", where, what));
}

struct got_connection {
  std::shared_ptr<redis::connection> conn;
  bool fresh = false;  ///< Opened for this call (so an I/O error is not a stale socket).
  std::string error;
};

}  // namespace

// ------------------------------------------------------------------------------------------
// Forwarder

struct redis_forwarder_backend::state {
  state(asio::any_io_executor ex, const tunnel::backend_options& opts)
      : executor(std::move(ex)),
        options(opts),
        connect(connect_options_for(opts, "funcie-forwarder")),
        keys(opts.app),
        where(redis::redact(opts.url)),
        connected(executor, steady::time_point::max()) {}

  asio::any_io_executor executor;
  tunnel::backend_options options;
  redis::connect_options connect;
  app_keys keys;
  std::string where;

  std::shared_ptr<redis::connection> command;
  bool connecting = false;
  asio::steady_timer connected;  ///< Cancelled when a connect attempt ends.
  std::string connect_error;
  std::vector<std::shared_ptr<redis::connection>> idle;

  steady::time_point backoff_until{};
  milliseconds backoff{1000};

  /// Called by every forward() that met the trouble; only the first of a burst counts.
  void enter_backoff(std::string_view why) {
    if (steady::now() < backoff_until) return;
    backoff_until = steady::now() + backoff;
    spdlog::warn("Redis at {} unusable ({}); invocations run in the cloud for the next {} ms",
                 where, why, backoff.count());
    backoff = std::min(backoff * 2, milliseconds(5000));
  }

  void drop_idle() {
    for (auto& conn : idle) conn->close();
    idle.clear();
  }

  void drop_connections() {
    if (command) command->close();
    command.reset();
    drop_idle();
  }

  void forget(const std::shared_ptr<redis::connection>& conn) {
    conn->close();
    if (command == conn) command.reset();
  }

  void release(const std::shared_ptr<redis::connection>& conn) {
    if (conn->is_open() && idle.size() < max_idle_blocking) {
      idle.push_back(conn);
    } else {
      conn->close();
    }
  }
};

namespace {

using forwarder_state = redis_forwarder_backend::state;

/// The command connection, opened once for all callers that need it at the same moment.
asio::awaitable<got_connection> get_command(std::shared_ptr<forwarder_state> s) {
  if (s->command && s->command->is_open()) co_return got_connection{s->command, false, {}};
  if (s->connecting) {
    boost::system::error_code ignored;
    co_await s->connected.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (s->command && s->command->is_open()) co_return got_connection{s->command, true, {}};
    co_return got_connection{nullptr, false, s->connect_error};
  }
  s->connecting = true;
  std::shared_ptr<redis::connection> conn;
  std::string error;
  try {
    conn = co_await open_connection(s->executor, s->connect);
  } catch (const std::exception& e) {
    error = e.what();
  }
  s->connecting = false;
  s->command = conn;
  s->connect_error = error;
  s->connected.cancel();
  co_return got_connection{conn, true, error};
}

/// A connection for one BLPOP: an idle one, or a new one.
asio::awaitable<got_connection> get_blocking(std::shared_ptr<forwarder_state> s) {
  while (!s->idle.empty()) {
    auto conn = std::move(s->idle.back());
    s->idle.pop_back();
    if (conn->is_open()) co_return got_connection{conn, false, {}};
  }
  std::string error;
  std::shared_ptr<redis::connection> conn;
  // The offer just went through, so the broker is reachable: a busy one (20 x 6 MB in
  // flight) may take longer than the first-contact bound to greet a new connection, and
  // failing here would fail an invocation a consumer may already run.
  auto options = s->connect;
  options.connect_timeout =
      std::max(options.connect_timeout, s->options.timing.command_timeout * 2);
  try {
    conn = co_await open_connection(s->executor, options);
  } catch (const std::exception& e) {
    error = e.what();
  }
  co_return got_connection{conn, true, error};
}

std::string seconds_text(milliseconds wait) {
  return fmt::format("{}.{:03}", wait.count() / 1000, wait.count() % 1000);
}

}  // namespace

namespace {

/// What a wait for the answer to one request keeps between the pieces of a stream.
struct wait_state {
  tunnel::request req;  ///< id and app only
  steady::time_point offered_at;
  std::string cloud_ttl;
  std::optional<std::string> owner;  ///< The session that claimed it, once known.
  std::int64_t next_piece = 0;
  bool streaming = false;
};

/// A piece must be the next one; a whole response after pieces ends the stream (the
/// consumer left, or refused the request).
tunnel::forward_outcome in_order(wait_state& w, tunnel::response answer) {
  if (answer.is_piece()) {
    if (answer.piece != w.next_piece) {
      return tunnel::failed(
          "Funcie.BadResponse",
          fmt::format("piece {} of the streamed response came where piece {} was due", answer.piece,
                      w.next_piece));
    }
    ++w.next_piece;
    w.streaming = answer.more;
  } else {
    w.streaming = false;
  }
  // The owner is who sent it (check_response checked it against the claim, when known).
  if (!w.owner) w.owner = answer.consumer;
  return tunnel::answered(std::move(answer));
}

/// Waits for the next answer (a whole response or the next piece) until `give_up_at`.
asio::awaitable<tunnel::forward_outcome> await_answer(
    std::shared_ptr<redis_forwarder_backend::state> s, wait_state& w,
    steady::time_point give_up_at) {
  const auto& timing = s->options.timing;
  const auto& code = all_scripts();
  const tunnel::request& req = w.req;
  const auto offered_at = w.offered_at;
  const std::string& cloud_ttl = w.cloud_ttl;
  std::optional<std::string>& owner = w.owner;
  const std::string resp_key = s->keys.resp(req.id);
  const std::string claim_key = s->keys.claim(req.id);
  const std::string req_key = s->keys.req(req.id);
  const milliseconds slice = std::max(timing.heartbeat / 6, milliseconds(10));
  std::string owner_key = owner ? s->keys.consumer(*owner) : std::string();

  got_connection blocking = co_await get_blocking(s);
  if (!blocking.conn) {
    co_return broker_lost(s->where, blocking.error);
  }
  bool first_blocking_command = true;

  while (true) {
    const auto now = steady::now();
    if (now >= give_up_at) break;
    const milliseconds wait =
        std::clamp(std::chrono::ceil<milliseconds>(give_up_at - now), milliseconds(1), slice);
    const std::string wait_text = seconds_text(wait);
    std::vector<std::string_view> blpop{"BLPOP", resp_key, wait_text};
    std::optional<redis::reply> popped;
    std::optional<redis::error> failure;
    try {
      popped = co_await blocking.conn->execute(blpop, wait + timing.command_timeout);
    } catch (const redis::error& e) {
      failure.emplace(e);
    }
    if (failure) {
      blocking.conn->close();
      if (first_blocking_command && !blocking.fresh && failure->code() == redis::errc::io) {
        first_blocking_command = false;
        s->drop_idle();
        blocking = co_await get_blocking(s);
        if (blocking.conn) continue;
        failure.emplace(redis::errc::connect_failed, blocking.error);
      }
      co_return broker_lost(s->where, failure->what());
    }
    first_blocking_command = false;
    if (popped->is_error()) {
      s->release(blocking.conn);
      co_return broker_lost(s->where, "it refused the wait for the answer: " + popped->str);
    }
    if (popped->type == redis::reply::kind::array && popped->elements.size() == 2) {
      if (auto answer = check_response(popped->elements[1].str, req, s->options, owner)) {
        s->release(blocking.conn);
        co_return in_order(w, std::move(*answer));
      }
    }

    // Who holds it?
    got_connection cmd = co_await get_command(s);
    if (!cmd.conn) {
      s->release(blocking.conn);
      co_return broker_lost(s->where, cmd.error);
    }
    const milliseconds check_timeout =
        std::clamp(std::chrono::ceil<milliseconds>(give_up_at - steady::now()), milliseconds(50),
                   std::max(timing.command_timeout, milliseconds(50)));
    std::optional<redis::reply> watched;
    std::optional<redis::reply> alive;
    std::optional<redis::error> watch_failure;
    try {
      if (!owner) {
        const bool bound_passed = steady::now() - offered_at >= timing.heartbeat;
        std::vector<std::string_view> keys{claim_key, req_key};
        std::vector<std::string_view> args{bound_passed ? "1" : "0", cloud_ttl};
        watched = co_await run_script(*cmd.conn, code.watch, keys, args, check_timeout);
      }
      if (watched && !watched->elements.empty()) {
        const auto verdict = watched->elements[0].integer;
        if (verdict == 1) {
          s->release(blocking.conn);
          co_return tunnel::not_taken(
              fmt::format("no consumer claimed it within the heartbeat bound ({} ms)",
                          timing.heartbeat.count()));
        }
        if (verdict == 2 && watched->elements.size() == 2) {
          owner = watched->elements[1].str;
          owner_key = s->keys.consumer(*owner);
        }
      }
      if (owner) {
        std::vector<std::string_view> exists{"EXISTS", owner_key};
        alive = co_await cmd.conn->execute(exists, check_timeout);
      }
    } catch (const redis::error& e) {
      watch_failure.emplace(e);
    }
    if (watch_failure) {
      s->forget(cmd.conn);
      s->release(blocking.conn);
      co_return broker_lost(s->where, watch_failure->what());
    }
    if (owner && *owner == "cloud") {
      s->release(blocking.conn);
      co_return tunnel::not_taken("no consumer claimed it");
    }
    if (alive && alive->type == redis::reply::kind::integer && alive->integer == 0) {
      // The owner is gone. It may have answered just before leaving: look once more.
      for (int i = 0; i < max_late_responses; ++i) {
        std::vector<std::string_view> lpop{"LPOP", resp_key};
        std::optional<redis::reply> late;
        try {
          late = co_await cmd.conn->execute(lpop, check_timeout);
        } catch (const redis::error&) {
        }
        if (!late || late->type != redis::reply::kind::string) break;
        if (auto answer = check_response(late->str, req, s->options, owner)) {
          s->release(blocking.conn);
          co_return in_order(w, std::move(*answer));
        }
      }
      s->release(blocking.conn);
      co_return tunnel::failed(
          "Funcie.ConsumerLost",
          fmt::format("the consumer session {} that took this request is gone (killed, stopped "
                      "or cut off) without answering",
                      *owner));
    }
  }

  s->release(blocking.conn);
  const auto waited = std::chrono::duration_cast<milliseconds>(steady::now() - offered_at).count();
  if (owner) {
    co_return tunnel::failed(
        "Funcie.Timeout",
        fmt::format("the local handler did not answer in time: session {} held the request for "
                    "{} ms, until the deadline",
                    *owner, waited));
  }
  co_return tunnel::failed(
      "Funcie.Timeout",
      fmt::format("the local handler did not answer in time: no consumer took the "
                  "request in the {} ms before the deadline",
                  waited));
}

/// The pieces of a streamed answer after the first.
class redis_pieces final : public tunnel::response_pieces {
 public:
  redis_pieces(std::shared_ptr<redis_forwarder_backend::state> s, std::shared_ptr<wait_state> w)
      : state_(std::move(s)), wait_(std::move(w)) {}

  asio::awaitable<tunnel::forward_outcome> next(steady::time_point give_up_at) override {
    if (!wait_->streaming) {
      co_return tunnel::failed("Funcie.BadResponse", "read past the end of a streamed response");
    }
    co_return co_await await_answer(state_, *wait_, give_up_at);
  }

 private:
  std::shared_ptr<redis_forwarder_backend::state> state_;
  std::shared_ptr<wait_state> wait_;
};

}  // namespace

redis_forwarder_backend::redis_forwarder_backend(asio::any_io_executor executor,
                                                 const tunnel::backend_options& options)
    : state_(std::make_shared<state>(std::move(executor), options)) {}

redis_forwarder_backend::~redis_forwarder_backend() {
  state_->drop_connections();
}

asio::awaitable<tunnel::forward_outcome> redis_forwarder_backend::forward(
    const tunnel::request& req, steady::time_point give_up_at) {
  const std::shared_ptr<state> s = state_;
  const auto& timing = s->options.timing;
  const auto& code = all_scripts();
  const auto started = steady::now();
  if (started < s->backoff_until) {
    co_return tunnel::not_taken(
        fmt::format("backing off from Redis at {} for {} ms more", s->where,
                    std::chrono::duration_cast<milliseconds>(s->backoff_until - started).count()));
  }
  if (!tunnel::is_valid_id(req.id)) {
    spdlog::error("cannot forward a request whose id is not 32 lower-case hex digits");
    co_return tunnel::not_taken("invalid request id");
  }
  const auto left = std::chrono::duration_cast<milliseconds>(give_up_at - started);
  if (left < 1ms) co_return tunnel::not_taken("no time left before the deadline");

  // 1. Offer.
  std::optional<tunnel::request> relabelled;
  if (req.app != s->options.app) {
    relabelled = req;
    relabelled->app = s->options.app;
  }
  const std::string envelope = s->options.keys.seal(tunnel::encode(relabelled ? *relabelled : req));
  const std::string notice =
      s->options.keys.seal(tunnel::encode(tunnel::notice{req.id, s->options.app}));
  const std::string consumers_key = s->keys.consumers();
  const std::string req_key = s->keys.req(req.id);
  const std::string channel = s->keys.channel();
  const std::string req_ttl = std::to_string(left.count());
  const milliseconds offer_timeout = timeout_for(timing.command_timeout, envelope.size(), 10240);

  long long receivers = 0;
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0 && steady::now() < s->backoff_until) {
      co_return tunnel::not_taken(fmt::format("backing off from Redis at {}", s->where));
    }
    got_connection cmd = co_await get_command(s);
    if (!cmd.conn) {
      s->enter_backoff(cmd.error);
      co_return tunnel::not_taken(fmt::format("broker unreachable: {}", cmd.error));
    }
    std::optional<redis::error> failure;
    const std::string_view publish = cmd.conn->sharded_pubsub() ? "SPUBLISH" : "PUBLISH";
    try {
      if (envelope.size() > presence_first_bytes) {
        std::vector<std::string_view> keys{consumers_key};
        std::vector<std::string_view> args{"presence"};
        const redis::reply present =
            co_await run_script(*cmd.conn, code.offer, keys, args, timing.command_timeout);
        receivers = present.integer;
      } else {
        receivers = 1;
      }
      if (receivers != 0 && envelope.size() > presence_first_bytes) {
        // Big: a plain SET (no copy through Lua), then announce it.
        std::vector<std::string_view> set{"SET", req_key, envelope, "PX", req_ttl};
        co_await cmd.conn->execute_checked(set, offer_timeout);
        std::vector<std::string_view> keys{consumers_key, req_key};
        std::vector<std::string_view> args{"announce", "", req_ttl, channel, notice, publish};
        const redis::reply offered =
            co_await run_script(*cmd.conn, code.offer, keys, args, timing.command_timeout);
        receivers = offered.integer;
      } else if (receivers != 0) {
        std::vector<std::string_view> keys{consumers_key, req_key};
        std::vector<std::string_view> args{"offer", envelope, req_ttl, channel, notice, publish};
        const redis::reply offered =
            co_await run_script(*cmd.conn, code.offer, keys, args, offer_timeout);
        receivers = offered.integer;
      }
    } catch (const redis::error& e) {
      failure.emplace(e);
    }
    if (!failure) break;
    s->forget(cmd.conn);
    if (attempt == 0 && !cmd.fresh && failure->code() == redis::errc::io) {
      // Most likely a socket that died while Lambda froze us: reopen once, same envelope id,
      // so that even an offer that did reach Redis cannot be claimed twice.
      spdlog::debug("Redis connection found broken; reopening it once");
      s->drop_idle();
      continue;
    }
    s->drop_connections();
    s->enter_backoff(failure->what());
    co_return tunnel::not_taken(fmt::format("broker trouble: {}", failure->what()));
  }
  s->backoff = 1000ms;
  if (receivers == 0) co_return tunnel::not_taken("no consumer");

  // 2. Wait: BLPOP in slices; between slices, see who holds it.
  auto w = std::make_shared<wait_state>();
  w->req.id = req.id;
  w->req.app = req.app;
  w->offered_at = steady::now();
  w->cloud_ttl = std::to_string(left.count() + 60000);
  tunnel::forward_outcome outcome = co_await await_answer(s, *w, give_up_at);
  if (outcome.outcome == tunnel::forward_outcome::kind::answered && outcome.answer.is_piece() &&
      outcome.answer.more) {
    outcome.pieces = std::make_shared<redis_pieces>(s, std::move(w));
  }
  co_return outcome;
}

// ------------------------------------------------------------------------------------------
// Consumer session

struct redis_consumer_session::state {
  state(asio::any_io_executor ex, const tunnel::backend_options& opts)
      : executor(std::move(ex)),
        options(opts),
        session_id(util::random_hex(32)),
        connect(connect_options_for(opts, "funcie-consumer-" + session_id.substr(0, 8))),
        keys(opts.app),
        where(redis::redact(opts.url)),
        consumer_key(keys.consumer(session_id)),
        consumers_key(keys.consumers()),
        channel(keys.channel()),
        heartbeat_timer(executor),
        ping_timer(executor) {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) == 0) host = name;
    pid = static_cast<std::int64_t>(::getpid());
  }

  asio::any_io_executor executor;
  tunnel::backend_options options;
  std::string session_id;
  redis::connect_options connect;
  app_keys keys;
  std::string where;
  std::string consumer_key;
  std::string consumers_key;
  std::string channel;
  std::shared_ptr<redis::connection> command;
  std::shared_ptr<redis::connection> subscriber;
  asio::steady_timer heartbeat_timer;
  asio::steady_timer ping_timer;
  bool opened = false;
  bool stopped = false;
  std::string lost;  ///< Why the session is over, once it is.
  std::int64_t in_flight = 0;
  std::int64_t since_ms = 0;
  std::string host;
  std::int64_t pid = 0;
  /// The key each held request was sealed with: its response is sealed with the same one,
  /// so a function still on the previous secret during a rotation can open it.
  std::unordered_map<std::string, std::string> reply_keys;

  milliseconds ttl() const { return options.timing.heartbeat * 5 / 6; }
  milliseconds interval() const { return std::max(options.timing.heartbeat / 6, milliseconds(10)); }

  std::string info_json() const {
    boost::json::object info;
    info["host"] = host;
    info["pid"] = pid;
    info["since_ms"] = since_ms;
    info["in_flight"] = in_flight;
    info["ttl_ms"] = static_cast<std::int64_t>(ttl().count());
    info["version"] = 1;
    return boost::json::serialize(info);
  }

  /// The session is over: next() throws `reason` from now on.
  void lose(std::string reason) {
    if (stopped || !lost.empty()) return;
    lost = std::move(reason);
    spdlog::warn("consumer session {} is over: {}", session_id, lost);
    heartbeat_timer.cancel();
    ping_timer.cancel();
    if (subscriber) subscriber->close();
  }

  /// Ends the session (if it is not over yet) and throws why.
  [[noreturn]] void fail(std::string reason) {
    lose(std::move(reason));
    if (stopped) throw tunnel::backend_error("the consumer session is closed");
    throw tunnel::backend_error(lost);
  }

  std::string expired() const {
    return fmt::format(
        "session expired on Redis at {}: its heartbeat lapsed (stopped longer than the "
        "heartbeat bound)",
        where);
  }

  void shutdown() noexcept {
    stopped = true;
    heartbeat_timer.cancel();
    ping_timer.cancel();
    if (subscriber) subscriber->close();
    if (command) command->close();
  }
};

namespace {

using session_state = redis_consumer_session::state;

asio::awaitable<long long> beat(std::shared_ptr<session_state> s, bool first) {
  const auto conn = s->command;
  if (!conn) throw redis::error(redis::errc::io, "the session's connection is closed");
  const std::string ttl = std::to_string(s->ttl().count());
  const std::string info = s->info_json();
  std::vector<std::string_view> keys{s->consumers_key, s->consumer_key};
  std::vector<std::string_view> args{s->session_id, ttl, info, first ? "1" : "0"};
  const redis::reply reply = co_await run_script(*conn, all_scripts().heartbeat, keys, args,
                                                 s->options.timing.command_timeout);
  co_return reply.integer;
}

asio::awaitable<void> heartbeat_loop(std::shared_ptr<session_state> s) {
  while (!s->stopped && s->lost.empty()) {
    boost::system::error_code ignored;
    s->heartbeat_timer.expires_after(s->interval());
    co_await s->heartbeat_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (s->stopped || !s->lost.empty()) co_return;
    long long alive = 0;
    std::string error;
    try {
      alive = co_await beat(s, false);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      s->lose(fmt::format("its heartbeat to Redis at {} failed: {}", s->where, error));
    } else if (alive == 0) {
      s->lose(s->expired());
    }
  }
}

/// A subscriber connection can die silently (no RST): PING it like the heartbeat.
asio::awaitable<void> ping_loop(std::shared_ptr<session_state> s) {
  while (!s->stopped && s->lost.empty()) {
    boost::system::error_code ignored;
    s->ping_timer.expires_after(s->interval());
    co_await s->ping_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (s->stopped || !s->lost.empty()) co_return;
    const auto conn = s->subscriber;
    if (!conn) co_return;
    std::string error;
    try {
      std::vector<std::string_view> ping{"PING"};
      const redis::reply reply = co_await conn->execute(ping, s->options.timing.command_timeout);
      if (reply.is_error()) error = reply.str;
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      s->lose(
          fmt::format("its subscription on Redis at {} stopped answering: {}", s->where, error));
    }
  }
}

asio::awaitable<void> send_response(std::shared_ptr<session_state> s,
                                    const tunnel::response& answer) {
  const auto conn = s->command;
  if (!conn || !conn->is_open()) {
    throw tunnel::backend_error(
        fmt::format("cannot send the response for request {}: the session on Redis at {} is closed",
                    answer.id, s->where));
  }
  std::optional<tunnel::response> relabelled;
  if (answer.consumer != s->session_id || answer.app != s->options.app) {
    relabelled = answer;
    relabelled->consumer = s->session_id;
    relabelled->app = s->options.app;
  }
  std::string reply_key;
  if (const auto it = s->reply_keys.find(answer.id); it != s->reply_keys.end()) {
    // The pieces of a stream are all sealed with it: it goes with the last.
    if (answer.is_piece() && answer.more) {
      reply_key = it->second;
    } else {
      reply_key = std::move(it->second);
      s->reply_keys.erase(it);
    }
  }
  const std::string envelope =
      s->options.keys.seal(tunnel::encode(relabelled ? *relabelled : answer), reply_key);
  const std::string key = s->keys.resp(answer.id);
  std::vector<std::string_view> keys{key};
  std::vector<std::string_view> args{envelope, response_ttl_ms};
  const milliseconds timeout =
      timeout_for(s->options.timing.command_timeout, envelope.size(), 1024);
  std::string error;
  try {
    if (envelope.size() > big_envelope_bytes) {
      // Big: plain commands (Lua would copy it twice); the expiry follows at once.
      std::vector<std::string_view> rpush{"RPUSH", key, envelope};
      co_await conn->execute_checked(rpush, timeout);
      std::vector<std::string_view> pexpire{"PEXPIRE", key, response_ttl_ms};
      co_await conn->execute_checked(pexpire, s->options.timing.command_timeout);
    } else {
      co_await run_script(*conn, all_scripts().respond, keys, args, timeout);
    }
  } catch (const redis::error& e) {
    error = e.what();
  }
  if (!error.empty()) {
    throw tunnel::backend_error(
        fmt::format("cannot send the response for request {} to Redis at "
                    "{}: {}",
                    answer.id, s->where, error));
  }
}

}  // namespace

redis_consumer_session::redis_consumer_session(asio::any_io_executor executor,
                                               const tunnel::backend_options& options)
    : state_(std::make_shared<state>(std::move(executor), options)) {}

redis_consumer_session::~redis_consumer_session() {
  state_->shutdown();
}

const std::string& redis_consumer_session::id() const {
  return state_->session_id;
}

void redis_consumer_session::set_in_flight(std::int64_t count) {
  state_->in_flight = count;
}

asio::awaitable<void> redis_consumer_session::open() {
  const std::shared_ptr<state> s = state_;
  if (s->opened || s->stopped) {
    throw tunnel::backend_error("a consumer session can be opened once; make a new one");
  }
  s->since_ms = util::unix_ms_now();
  std::string error;
  try {
    s->subscriber = co_await open_connection(s->executor, s->connect);
    s->command = co_await open_connection(s->executor, s->connect);
    co_await s->subscriber->subscribe(s->channel);
    co_await beat(s, true);
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty() || s->stopped) {
    if (s->subscriber) s->subscriber->close();
    if (s->command) s->command->close();
    throw tunnel::backend_error(
        fmt::format("cannot join the tunnel on Redis at {}: {}", s->where,
                    error.empty() ? std::string("the session was closed") : error));
  }
  s->opened = true;
  spdlog::debug("consumer session {} joined app {} on Redis at {}", s->session_id, s->options.app,
                s->where);
  asio::co_spawn(s->executor, heartbeat_loop(s), asio::detached);
  asio::co_spawn(s->executor, ping_loop(s), asio::detached);
}

asio::awaitable<tunnel::request> redis_consumer_session::next() {
  const std::shared_ptr<state> s = state_;
  if (!s->opened) throw tunnel::backend_error("the consumer session is not open");
  const auto& timing = s->options.timing;
  while (true) {
    if (s->stopped) throw tunnel::backend_error("the consumer session is closed");
    if (!s->lost.empty()) throw tunnel::backend_error(s->lost);
    const auto subscriber = s->subscriber;
    std::optional<redis::message> message;
    std::string error;
    try {
      message = co_await subscriber->receive();
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      s->fail(fmt::format("its subscription on Redis at {} broke: {}", s->where, error));
    }
    if (message->channel != s->channel) continue;

    tunnel::notice notice;
    try {
      notice = tunnel::decode_notice(s->options.keys.open(message->payload));
    } catch (const std::exception& e) {
      spdlog::warn("dropped a message on {}: {}", s->channel, e.what());
      continue;
    }
    if (notice.app != s->options.app) {
      spdlog::warn("dropped a notice for another app on {}", s->channel);
      continue;
    }

    const std::string claim_key = s->keys.claim(notice.id);
    const std::string req_key = s->keys.req(notice.id);
    std::vector<std::string_view> keys{s->consumer_key, claim_key, req_key};
    const std::string big = std::to_string(big_envelope_bytes);
    std::vector<std::string_view> args{s->session_id, big};
    std::optional<redis::reply> claimed;
    try {
      claimed =
          co_await run_script(*s->command, all_scripts().claim, keys, args, timing.command_timeout);
      if (claimed->type == redis::reply::kind::integer && claimed->integer == 1) {
        // Ours, and big: fetch it with a plain command.
        std::vector<std::string_view> getdel{"GETDEL", req_key};
        claimed = co_await s->command->execute_checked(getdel, timing.command_timeout + 6000ms);
        if (claimed->type != redis::reply::kind::string) {
          spdlog::warn("request {} expired before it could be fetched", notice.id);
        }
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      s->fail(fmt::format("claiming a request on Redis at {} failed: {}", s->where, error));
    }
    if (claimed->type == redis::reply::kind::integer && claimed->integer == -1) {
      s->fail(s->expired());
    }
    if (claimed->type != redis::reply::kind::string) continue;  // someone else's, or gone

    tunnel::request req;
    std::string key_id;
    std::string bad;
    try {
      req = tunnel::decode_request(s->options.keys.open(claimed->str, &key_id));
    } catch (const std::exception& e) {
      bad = e.what();
    }
    if (bad.empty() && (req.id != notice.id || req.app != s->options.app)) {
      bad = "its id or app differs from its notice";
    }
    if (bad.empty()) {
      if (!key_id.empty()) s->reply_keys[req.id] = std::move(key_id);
      co_return req;
    }

    spdlog::warn("dropped request {}: {}", notice.id, bad);
    // It is ours now and nobody else will run it: tell its forwarder at once.
    const tunnel::response refusal =
        tunnel::bad_request_response(notice.id, s->options.app, s->session_id, bad);
    try {
      co_await send_response(s, refusal);
    } catch (const std::exception& e) {
      spdlog::warn("could not refuse request {}: {}", notice.id, e.what());
    }
  }
}

asio::awaitable<void> redis_consumer_session::respond(const tunnel::response& answer) {
  co_await send_response(state_, answer);
}

asio::awaitable<void> redis_consumer_session::close() {
  const std::shared_ptr<state> s = state_;
  if (s->stopped) co_return;
  s->stopped = true;
  s->heartbeat_timer.cancel();
  s->ping_timer.cancel();
  if (s->subscriber) s->subscriber->close();
  const auto conn = s->command;
  if (s->opened && conn && conn->is_open()) {
    try {
      std::vector<std::string_view> keys{s->consumers_key, s->consumer_key};
      std::vector<std::string_view> args{s->session_id};
      co_await run_script(*conn, all_scripts().leave, keys, args,
                          s->options.timing.command_timeout);
    } catch (const std::exception& e) {
      spdlog::debug("consumer session {} left without removing its presence: {}", s->session_id,
                    e.what());
    }
  }
  s->shutdown();
}

// ------------------------------------------------------------------------------------------
// Status

asio::awaitable<std::vector<tunnel::consumer_info>> list_consumers(
    asio::any_io_executor executor, const tunnel::backend_options& options) {
  const redis::connect_options connect = connect_options_for(options, "funcie-status");
  const app_keys keys(options.app);
  const std::string where = redis::redact(options.url);
  const std::string consumers_key = keys.consumers();
  const auto timeout = options.timing.command_timeout;
  std::vector<tunnel::consumer_info> out;
  std::shared_ptr<redis::connection> conn;
  std::string error;
  try {
    conn = co_await open_connection(executor, connect);
    std::vector<std::string_view> time{"TIME"};
    const redis::reply now_reply = co_await conn->execute_checked(time, timeout);
    if (now_reply.elements.size() != 2) {
      throw redis::error(redis::errc::protocol, "TIME answered out of protocol");
    }
    const std::int64_t now = std::strtoll(now_reply.elements[0].str.c_str(), nullptr, 10) * 1000 +
                             std::strtoll(now_reply.elements[1].str.c_str(), nullptr, 10) / 1000;
    const std::string min = "(" + std::to_string(now);
    std::vector<std::string_view> range{"ZRANGEBYSCORE", consumers_key, min, "+inf", "WITHSCORES"};
    const redis::reply members = co_await conn->execute_checked(range, timeout);
    for (std::size_t i = 0; i + 1 < members.elements.size(); i += 2) {
      const std::string& session = members.elements[i].str;
      const double expiry = std::strtod(members.elements[i + 1].str.c_str(), nullptr);
      const std::string key = keys.consumer(session);
      std::vector<std::string_view> get{"GET", key};
      const redis::reply info = co_await conn->execute_checked(get, timeout);
      if (info.type != redis::reply::kind::string) continue;  // expired or left
      boost::system::error_code ec;
      const boost::json::value value = boost::json::parse(info.str, ec);
      const auto* object = ec ? nullptr : value.if_object();
      if (object == nullptr) {
        spdlog::warn("skipped consumer session {}: its info is not JSON", session);
        continue;
      }
      auto integer = [&](std::string_view field, std::int64_t fallback) {
        const auto* v = object->if_contains(field);
        if (v != nullptr && v->is_int64()) return v->as_int64();
        if (v != nullptr && v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
        return fallback;
      };
      tunnel::consumer_info entry;
      entry.session = session;
      if (const auto* h = object->if_contains("host"); h != nullptr && h->is_string()) {
        entry.host = std::string(h->as_string());
      }
      entry.pid = integer("pid", 0);
      entry.since_ms = integer("since_ms", 0);
      entry.in_flight = integer("in_flight", 0);
      const std::int64_t ttl = integer("ttl_ms", (options.timing.heartbeat * 5 / 6).count());
      const auto remaining = static_cast<std::int64_t>(expiry) - now;
      entry.heartbeat_age_ms = std::max<std::int64_t>(0, ttl - remaining);
      out.push_back(std::move(entry));
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (conn) conn->close();
  if (!error.empty()) {
    throw tunnel::backend_error(
        fmt::format("cannot list the consumers on Redis at {}: {}", where, error));
  }
  co_return out;
}

}  // namespace funcie::redis_backend
