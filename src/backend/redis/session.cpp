// The Redis backend's local side: an inbox connection that pops the requests assigned to this
// session (BLPOP), a subscriber connection whose subscription tells forwarders the session
// still listens, a command connection for responses and the heartbeat (docs/routing.md).
#include "backend/redis/keys.hpp"
#include "backend/redis/outgoing.hpp"
#include "backend/redis/redis_backend.hpp"
#include "backend/redis/refused.hpp"
#include "backend/redis/settings.hpp"
#include "tunnel/consumer_info.hpp"
#include "tunnel/core.hpp"
#include "tunnel/route.hpp"
#include "tunnel/try_await.hpp"
#include "util/clock.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <optional>
#include <unordered_map>
#include <utility>

namespace funcie::redis_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

struct redis_consumer_session::state : tunnel::session_lifecycle {
  state(asio::any_io_executor ex, const tunnel::backend_options& opts)
      : executor(std::move(ex)),
        options(opts),
        connect(connect_options_for(opts, "funcie-consumer-" + session_id.substr(0, 8))),
        keys(opts.app),
        broker(broker_name(opts)),
        consumer_key(keys.consumer(session_id)),
        consumers_key(keys.consumers()),
        channel(keys.channel(session_id)),
        inbox_key(keys.inbox(session_id)),
        heartbeat_timer(executor),
        ping_timer(executor) {
    // Checked by the caller (funcie connect refuses a bad route with its column).
    for (const auto& text : options.routes) routes.push_back(tunnel::parse_route(text));
  }

  asio::any_io_executor executor;
  tunnel::backend_options options;
  redis::connect_options connect;
  app_keys keys;
  std::string broker;  ///< "Redis at host:port"
  std::string consumer_key;
  std::string consumers_key;
  std::string channel;
  std::string inbox_key;
  std::shared_ptr<redis::connection> command;
  std::shared_ptr<redis::connection> subscriber;
  std::shared_ptr<redis::connection> inbox;
  asio::steady_timer heartbeat_timer;
  asio::steady_timer ping_timer;
  /// The key each held request was sealed with: its response is sealed with the same one,
  /// so a function still on the previous secret during a rotation can open it.
  std::unordered_map<std::string, std::string> reply_keys;
  /// This session's routes (docs/routing.md): forwarders offer it only what they match, and
  /// it refuses a request none of them holds for (a broker that rewrote to:<id>).
  std::vector<tunnel::route> routes;
  /// Items popped by one BLMPOP after the first, handed out by the next calls of next().
  std::deque<std::string> ready;
  bool batch_pop = true;  ///< false once the server refused BLMPOP

  milliseconds ttl() const { return options.timing.heartbeat * 5 / 6; }
  milliseconds interval() const { return std::max(options.timing.heartbeat / 6, milliseconds(10)); }

  std::string info_json() const {
    tunnel::consumer_card card;
    card.host = host;
    card.pid = pid;
    card.since_ms = since_ms;
    card.in_flight = in_flight;
    card.ttl_ms = static_cast<std::int64_t>(ttl().count());
    card.session = session_id;
    card.routes = options.routes;
    // Sealed with the shared secret: a broker cannot rewrite a route (docs/routing.md).
    return options.keys.seal(tunnel::encode_consumer_card(card));
  }

  /// The session is over: next() throws `reason` from now on.
  void lose(std::string reason) {
    if (!mark_lost(std::move(reason))) return;
    heartbeat_timer.cancel();
    ping_timer.cancel();
    if (subscriber) subscriber->close();
    if (inbox) inbox->close();
  }

  /// Ends the session (if it is not over yet) and throws why.
  [[noreturn]] void fail(std::string reason) {
    lose(std::move(reason));
    check_running();
    throw tunnel::backend_error(lost);  // not reached: check_running threw
  }

  std::string expired() const {
    return fmt::format(
        "session expired on {}: its heartbeat lapsed (stopped longer than the heartbeat bound)",
        broker);
  }

  void shutdown() noexcept {
    stopped = true;
    heartbeat_timer.cancel();
    ping_timer.cancel();
    if (subscriber) subscriber->close();
    if (inbox) inbox->close();
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
  while (!s->over()) {
    boost::system::error_code ignored;
    s->heartbeat_timer.expires_after(s->interval());
    co_await s->heartbeat_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (s->over()) co_return;
    auto alive = co_await tunnel::try_await(beat(s, false));
    if (!alive) {
      s->lose(fmt::format("its heartbeat to {} failed: {}", s->broker, alive.error));
    } else if (*alive == 0) {
      s->lose(s->expired());
    }
  }
}

/// Tells forwarders (their presence subscription) that this session joined or left, so that
/// one that trusts an empty view reads it again (docs/routing.md, "Presence by subscription").
/// A refusal (an ACL user without +publish) is logged once: forwarders then see the session
/// only when they read their view again (at most the heartbeat bound).
asio::awaitable<void> announce(std::shared_ptr<session_state> s, std::string_view what) {
  const auto conn = s->command;
  if (!conn || !conn->is_open()) co_return;
  const std::string channel = s->keys.presence();
  const std::string payload = std::string(what) + " " + s->session_id;
  std::vector<std::string_view> publish{conn->sharded_pubsub() ? "SPUBLISH" : "PUBLISH", channel,
                                        payload};
  auto sent = co_await tunnel::try_await([&]() -> asio::awaitable<void> {
    co_await conn->execute_checked(publish, s->options.timing.command_timeout);
    // One more round trip: Redis wrote the announcement to its subscribers before it read
    // this PING, so once it is answered every forwarder on this host has the announcement in
    // its socket (an invocation made after open() returned sees this session).
    std::vector<std::string_view> ping{"PING"};
    co_await conn->execute_checked(ping, s->options.timing.command_timeout);
  }());
  if (!sent) {
    spdlog::warn(
        "could not announce session {} on {} ({}); forwarders will see it within the "
        "heartbeat bound instead of at once",
        s->session_id, s->broker, sent.error);
  }
}

/// PINGs the subscriber connection; throws when it does not answer.
asio::awaitable<void> ping(std::shared_ptr<redis::connection> conn, milliseconds timeout) {
  std::vector<std::string_view> ping{"PING"};
  const redis::reply reply = co_await conn->execute(ping, timeout);
  if (reply.is_error()) throw redis::error(redis::errc::server, reply.str);
}

/// A subscriber connection can die silently (no RST): PING it like the heartbeat.
asio::awaitable<void> ping_loop(std::shared_ptr<session_state> s) {
  while (!s->over()) {
    boost::system::error_code ignored;
    s->ping_timer.expires_after(s->interval());
    co_await s->ping_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (s->over()) co_return;
    const auto conn = s->subscriber;
    if (!conn) co_return;
    auto pinged = co_await tunnel::try_await(ping(conn, s->options.timing.command_timeout));
    if (!pinged) {
      s->lose(fmt::format("its subscription on {} stopped answering: {}", s->broker, pinged.error));
    }
  }
}

/// The subscription only says "this session listens" (an assignment's count of receivers);
/// what arrives on it (the ids of assigned requests) is read and dropped.
asio::awaitable<void> drain_loop(std::shared_ptr<session_state> s) {
  const auto conn = s->subscriber;
  while (!s->over() && conn) {
    auto message = co_await tunnel::try_await(conn->receive());
    if (!message) {
      if (!s->over()) {
        s->lose(fmt::format("its subscription on {} broke: {}", s->broker, message.error));
      }
      co_return;
    }
  }
}

asio::awaitable<void> send_response(std::shared_ptr<session_state> s,
                                    const tunnel::response& answer) {
  const auto conn = s->command;
  if (!conn || !conn->is_open()) {
    throw tunnel::backend_error(
        fmt::format("cannot send the response for request {}: the session on {} is closed",
                    answer.id, s->broker));
  }
  const tunnel::labelled_response labelled(answer, s->session_id, s->options.app);
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
  const outgoing_envelope envelope(s->options.keys, labelled.get(), big_envelope_bytes, reply_key);
  const std::string key = s->keys.resp(answer.id);
  const milliseconds timeout =
      timeout_for(s->options.timing.command_timeout, envelope.size(), 1024);
  auto sent = co_await tunnel::try_await<redis::error>([&]() -> asio::awaitable<void> {
    if (envelope.size() > big_envelope_bytes) {
      // Big: plain commands (Lua would copy it twice); the expiry follows at once.
      std::vector<std::vector<std::string_view>> rpush{{"RPUSH"}, {key}, envelope.pieces()};
      co_await conn->execute_pieces_checked(std::move(rpush), timeout);
      std::vector<std::string_view> pexpire{"PEXPIRE", key, response_ttl_ms};
      co_await conn->execute_checked(pexpire, s->options.timing.command_timeout);
    } else {
      std::vector<std::string_view> keys{key};
      std::vector<std::string_view> args{envelope.whole(), response_ttl_ms};
      co_await run_script(*conn, all_scripts().respond, keys, args, timeout);
    }
  }());
  if (!sent) {
    throw tunnel::backend_error(fmt::format("cannot send the response for request {} to {}: {}",
                                            answer.id, s->broker, sent.error));
  }
}

/// What one wait on this session's inbox brought.
struct popped_item {
  std::optional<std::string> item;  ///< nullopt: the wait ended with nothing
  bool late = false;                ///< it came back later than a stopped session's key would live
};

/// Pops the next item of this session's inbox, waiting up to a heartbeat/6 (so that a silently
/// dead connection is noticed). Under load one wait takes every item waiting, up to
/// max_batch_pop (BLMPOP, Redis 7.0), so that a burst costs one round trip, not one each; the
/// rest are handed out by the next calls without a round trip. On a server without BLMPOP
/// (before 7.0, or an ACL user without +blmpop) one item per BLPOP, as before. Throws.
asio::awaitable<popped_item> pop(std::shared_ptr<session_state> s) {
  popped_item out;
  if (!s->ready.empty()) {
    out.item = std::move(s->ready.front());
    s->ready.pop_front();
    co_return out;
  }
  const auto& timing = s->options.timing;
  const milliseconds wait = s->interval();
  const std::string wait_text = fmt::format("{}.{:03}", wait.count() / 1000, wait.count() % 1000);
  const auto conn = s->inbox;
  const std::int64_t sent_at = util::boot_ms_now();
  const std::string count = std::to_string(max_batch_pop);
  redis::reply popped;
  if (s->batch_pop) {
    std::vector<std::string_view> blmpop{"BLMPOP", wait_text, "1",  s->inbox_key,
                                         "LEFT",   "COUNT",   count};
    popped = co_await conn->execute(blmpop, wait + timing.command_timeout);
    if (popped.is_error()) {
      spdlog::debug("BLMPOP refused on {} ({}): one item per BLPOP", s->broker, popped.str);
      s->batch_pop = false;
    }
  }
  if (!s->batch_pop) {
    std::vector<std::string_view> blpop{"BLPOP", s->inbox_key, wait_text};
    popped = co_await conn->execute_checked(blpop, wait + timing.command_timeout);
  }
  if (popped.type != redis::reply::kind::array || popped.elements.size() != 2) co_return out;
  // The inbox connection carries small items only: a reply this late means the process was
  // stopped (or its link dead) for longer than its key lives after its last heartbeat.
  out.late = util::boot_ms_now() - sent_at >= (wait + s->ttl()).count();
  auto& value = popped.elements[1];
  if (value.type == redis::reply::kind::array) {  // BLMPOP: [key, [item, ...]]
    if (value.elements.empty()) co_return out;
    out.item = std::move(value.elements[0].str);
    for (std::size_t i = 1; i < value.elements.size(); ++i) {
      s->ready.push_back(std::move(value.elements[i].str));
    }
  } else {
    out.item = std::move(value.str);
  }
  co_return out;
}

/// The envelope a big request's inbox item refers to (GETDEL), nullopt when it expired.
asio::awaitable<std::optional<std::string>> fetch(std::shared_ptr<session_state> s,
                                                  std::string_view id) {
  const std::string req_key = s->keys.req(id);
  std::vector<std::string_view> getdel{"GETDEL", req_key};
  redis::reply got =
      co_await s->command->execute_checked(getdel, s->options.timing.command_timeout + 6000ms);
  if (got.type != redis::reply::kind::string) co_return std::nullopt;
  co_return std::move(got.str);
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
  s->begin_open();
  auto joined = co_await tunnel::try_await([&]() -> asio::awaitable<void> {
    s->subscriber = co_await open_connection(s->executor, s->connect);
    s->command = co_await open_connection(s->executor, s->connect);
    s->inbox = co_await open_connection(s->executor, s->connect);
    co_await s->subscriber->subscribe(s->channel);
    co_await beat(s, true);
    co_await announce(s, "join");
  }());
  if (!joined || s->stopped) {
    if (s->subscriber) s->subscriber->close();
    if (s->command) s->command->close();
    if (s->inbox) s->inbox->close();
    auto message = fmt::format("cannot join the tunnel on {}: {}", s->broker,
                               joined ? std::string("the session was closed") : joined.error);
    if (!joined && refused_by_server(joined.exception)) {
      throw tunnel::backend_refused_error(message + refused_hint);
    }
    throw tunnel::backend_error(message);
  }
  s->opened = true;
  spdlog::debug("consumer session {} joined app {} on {}", s->session_id, s->options.app,
                s->broker);
  asio::co_spawn(s->executor, heartbeat_loop(s), asio::detached);
  asio::co_spawn(s->executor, ping_loop(s), asio::detached);
  asio::co_spawn(s->executor, drain_loop(s), asio::detached);
}

asio::awaitable<tunnel::request> redis_consumer_session::next() {
  const std::shared_ptr<state> s = state_;
  s->check_open();
  while (true) {
    s->check_running();
    auto popped = co_await tunnel::try_await(pop(s));
    if (!popped) s->fail(fmt::format("its inbox on {} broke: {}", s->broker, popped.error));
    if (!popped->item) continue;
    std::string item = std::move(*popped->item);
    // Popped: it is this session's alone now (the forwarder can no longer withdraw it). A
    // session stopped meanwhile past the life of its key runs nothing more: its forwarder
    // has failed it already (Funcie.ConsumerLost).
    if (popped->late) {
      spdlog::warn("dropped a request popped before this session was stopped past its heartbeat");
      s->fail(s->expired());
    }
    // "<id>\n<envelope>", or "<id>\n" for a big one stored in req:<id> (docs/routing.md).
    const std::size_t newline = item.find('\n');
    const std::string expected_id = item.substr(0, std::min(newline, item.size()));
    if (newline == std::string::npos || !tunnel::is_valid_id(expected_id)) {
      spdlog::warn(
          "dropped an item of this session's inbox on {}: it does not start with a "
          "request id",
          s->broker);
      continue;
    }
    item.erase(0, newline + 1);
    if (item.empty()) {
      auto fetched = co_await tunnel::try_await(fetch(s, expected_id));
      if (!fetched) {
        s->fail(fmt::format("fetching request {} from {} failed: {}", expected_id, s->broker,
                            fetched.error));
      }
      if (!*fetched) {
        spdlog::warn("request {} expired before it could be fetched", expected_id);
        continue;
      }
      item = std::move(**fetched);
    }

    tunnel::request req;
    std::string key_id;
    std::string bad;
    try {
      req = tunnel::decode_request_owned(s->options.keys.open_owned(std::move(item), &key_id));
    } catch (const std::exception& e) {
      bad = e.what();
    }
    if (bad.empty() && (req.id != expected_id || req.app != s->options.app)) {
      bad = "its id or app differs from its inbox item";
    }
    req.id = expected_id;
    if (bad.empty() && !s->routes.empty()) {
      tunnel::routed_invocation invocation(req.context.request_id, req.payload,
                                           req.context.client_context);
      const bool wanted = std::any_of(s->routes.begin(), s->routes.end(),
                                      [&](const tunnel::route& r) { return invocation.holds(r); });
      if (!wanted) bad = "none of this session's routes holds for it (was it diverted?)";
    }
    if (bad.empty()) {
      if (!key_id.empty()) s->reply_keys[req.id] = std::move(key_id);
      co_return req;
    }

    spdlog::warn("dropped request {}: {}", req.id, bad);
    // It is ours now and nobody else will run it: tell its forwarder at once.
    const tunnel::response refusal =
        tunnel::bad_request_response(req.id, s->options.app, s->session_id, bad);
    auto refused = co_await tunnel::try_await(send_response(s, refusal));
    if (!refused) spdlog::warn("could not refuse request {}: {}", req.id, refused.error);
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
  if (s->inbox) s->inbox->close();
  const auto conn = s->command;
  if (s->opened && conn && conn->is_open()) {
    std::vector<std::string_view> keys{s->consumers_key, s->consumer_key};
    std::vector<std::string_view> args{s->session_id};
    auto left = co_await tunnel::try_await(
        run_script(*conn, all_scripts().leave, keys, args, s->options.timing.command_timeout));
    if (!left) {
      spdlog::debug("consumer session {} left without removing its presence: {}", s->session_id,
                    left.error);
    } else {
      co_await announce(s, "leave");
    }
  }
  s->shutdown();
}

}  // namespace funcie::redis_backend
