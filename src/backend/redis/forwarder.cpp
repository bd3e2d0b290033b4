// The Redis backend's cloud side: assign the request to one session's inbox (one script), then
// BLPOP in slices for the answer; between slices, see whether the session popped it and still
// lives, and withdraw it when it did not (docs/routing.md, "Assignment").
#include "backend/redis/keys.hpp"
#include "backend/redis/outgoing.hpp"
#include "backend/redis/pool.hpp"
#include "backend/redis/redis_backend.hpp"
#include "backend/redis/settings.hpp"
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
#include <optional>
#include <random>
#include <unordered_set>
#include <utility>

namespace funcie::redis_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct redis_forwarder_backend::state {
  state(asio::any_io_executor ex, const tunnel::backend_options& opts)
      : executor(std::move(ex)),
        options(opts),
        keys(opts.app),
        broker(broker_name(opts)),
        pool(std::make_shared<connection_pool>(executor,
                                               connect_options_for(opts, "funcie-forwarder"),
                                               opts.timing.command_timeout * 2)),
        backoff(broker),
        random(std::random_device{}()) {}

  asio::any_io_executor executor;
  tunnel::backend_options options;
  app_keys keys;
  std::string broker;  ///< "Redis at host:port"
  std::shared_ptr<connection_pool> pool;
  tunnel::broker_backoff backoff;

  /// One live session as the presence view has it (docs/routing.md).
  struct present_session {
    std::string id;
    std::vector<tunnel::route> routes;
    std::int64_t in_flight = 0;
  };
  /// The presence view: read with the sessions script. A view with sessions is trusted for a
  /// heartbeat/6 on CLOCK_BOOTTIME (a thawed Lambda environment reads it again); an empty one
  /// while the presence subscription vouches for it (docs/routing.md, "Presence by
  /// subscription").
  std::vector<present_session> view;
  std::int64_t view_read_at = 0;  ///< util::boot_ms_now() when read; 0: never / stale
  /// presence_epoch when the view's read was sent, or -1: the subscription was not live then.
  std::int64_t view_epoch = -1;
  /// Sessions whose info did not open or parse, each logged once.
  std::unordered_set<std::string> refused_sessions;
  std::mt19937_64 random;

  /// The presence subscription (a connection subscribed to the app's presence channel, where
  /// sessions announce joins and leaves). Started by the first forward() that reached Redis.
  std::shared_ptr<redis::connection> watcher;
  bool watching = false;      ///< the watch loop runs
  bool watcher_live = false;  ///< subscribed, and its PINGs are answered
  bool closed = false;        ///< the backend is being destroyed
  /// Bumped by every announcement received and every (re)subscription or loss: a view read
  /// under another epoch may miss a session that joined.
  std::int64_t presence_epoch = 0;
  /// util::boot_ms_now() when the last answered PING of the subscription was sent: every
  /// announcement published before it has been received. 0: none.
  std::int64_t confirmed_at = 0;
  std::optional<asio::steady_timer> watch_timer;

  std::int64_t short_bound() const {
    return std::max<std::int64_t>(options.timing.heartbeat.count() / 6, 10);
  }

  bool view_fresh() const {
    if (view_read_at == 0) return false;
    const std::int64_t now = util::boot_ms_now();
    if (!view.empty()) return now - view_read_at < short_bound();
    // Nobody: trusted with no Redis call while the subscription has received every
    // announcement up to a heartbeat/6 ago (on the boot clock: a thawed forwarder's is older)
    // and none since the view was read; and never past the heartbeat bound since the read.
    return watcher_live && view_epoch == presence_epoch && confirmed_at != 0 &&
           now - confirmed_at < short_bound() &&
           now - view_read_at < options.timing.heartbeat.count();
  }

  void stop_watching() noexcept {
    closed = true;
    watcher_live = false;
    if (watch_timer) watch_timer->cancel();
    if (watcher) watcher->close();
  }
};

namespace {

using forwarder_state = redis_forwarder_backend::state;

/// A response popped for `req`, or nullopt (with one log line) when it is not one.
std::optional<tunnel::response> check_response(std::string&& bytes, const tunnel::request& req,
                                               const tunnel::backend_options& options,
                                               const std::optional<std::string>& owner) {
  const std::string& app = options.app;
  tunnel::response answer;
  try {
    answer = tunnel::decode_response_owned(options.keys.open_owned(std::move(bytes)));
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

std::string seconds_text(milliseconds wait) {
  return fmt::format("{}.{:03}", wait.count() / 1000, wait.count() % 1000);
}

/// What a wait for the answer to one request keeps between the pieces of a stream.
struct wait_state {
  tunnel::request req;  ///< id and app only
  steady::time_point offered_at;
  std::string cloud_ttl;
  std::optional<std::string> owner;  ///< The session it was assigned to.
  std::string item;                  ///< What was pushed onto the owner's inbox.
  std::int64_t next_piece = 0;
  bool streaming = false;
  bool withdrawn = false;  ///< taken back out of the owner's inbox unrun: nobody can run it
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
  // check_response checked that the owner (the session it was assigned to) sent it.
  return tunnel::answered(std::move(answer));
}

/// Waits for the next answer (a whole response or the next piece) until `give_up_at`.
asio::awaitable<tunnel::forward_outcome> await_answer(std::shared_ptr<forwarder_state> s,
                                                      wait_state& w,
                                                      steady::time_point give_up_at) {
  const auto& timing = s->options.timing;
  const auto& code = all_scripts();
  const tunnel::request& req = w.req;
  std::optional<std::string>& owner = w.owner;
  const std::string resp_key = s->keys.resp(req.id);
  const std::string claim_key = s->keys.claim(req.id);
  const std::string req_key = s->keys.req(req.id);
  const milliseconds slice = std::max(timing.heartbeat / 6, milliseconds(10));
  const std::string owner_key = s->keys.consumer(*owner);
  const std::string inbox_key = s->keys.inbox(*owner);

  connection_lease blocking = co_await s->pool->get_blocking();
  if (!blocking) co_return tunnel::broker_lost(s->broker, blocking.error());
  bool first_blocking_command = true;

  while (true) {
    const auto now = steady::now();
    if (now >= give_up_at) break;
    const milliseconds wait =
        std::clamp(std::chrono::ceil<milliseconds>(give_up_at - now), milliseconds(1), slice);
    const std::string wait_text = seconds_text(wait);
    std::vector<std::string_view> blpop{"BLPOP", resp_key, wait_text};
    auto popped = co_await tunnel::try_await<redis::error>(
        blocking->execute(blpop, wait + timing.command_timeout));
    if (!popped) {
      blocking->close();
      std::string what = popped.error;
      if (first_blocking_command && !blocking.fresh() &&
          popped.failure->code() == redis::errc::io) {
        // A stale idle connection (Lambda froze us): one fresh one.
        first_blocking_command = false;
        s->pool->drop_idle();
        blocking = co_await s->pool->get_blocking();
        if (blocking) continue;
        what = redis::error(redis::errc::connect_failed, blocking.error()).what();
      }
      co_return tunnel::broker_lost(s->broker, what);
    }
    first_blocking_command = false;
    if (popped->is_error()) {
      co_return tunnel::broker_lost(s->broker,
                                    "it refused the wait for the answer: " + popped->str);
    }
    if (popped->type == redis::reply::kind::array && popped->elements.size() == 2) {
      if (auto answer =
              check_response(std::move(popped->elements[1].str), req, s->options, owner)) {
        co_return in_order(w, std::move(*answer));
      }
    }

    // Who holds it?
    got_connection cmd = co_await s->pool->get_command();
    if (!cmd.conn) co_return tunnel::broker_lost(s->broker, cmd.error);
    const milliseconds check_timeout =
        std::clamp(std::chrono::ceil<milliseconds>(give_up_at - steady::now()), milliseconds(50),
                   std::max(timing.command_timeout, milliseconds(50)));
    // Did the owner pop it, and does it still live? Not popped when the owner is gone or the
    // bound has passed: withdrawn (atomically: only while still in the inbox), run in the cloud.
    const bool bound_passed = steady::now() - w.offered_at >= timing.heartbeat;
    std::vector<std::string_view> keys{inbox_key, owner_key, req_key, claim_key};
    std::vector<std::string_view> args{w.item, bound_passed ? "1" : "0", w.cloud_ttl};
    auto held = co_await tunnel::try_await<redis::error>(
        run_script(*cmd.conn, code.withdraw, keys, args, check_timeout));
    if (!held) {
      s->pool->forget(cmd.conn);
      co_return tunnel::broker_lost(s->broker, held.error);
    }
    if (!held->elements.empty() && held->elements[0].integer == 1) {
      w.withdrawn = true;
      co_return tunnel::not_taken(
          fmt::format("session {} did not take it within the heartbeat bound ({} ms) or left "
                      "before taking it; withdrawn",
                      *owner, timing.heartbeat.count()));
    }
    if (held->elements.size() == 2 && held->elements[1].integer == 0) {
      // The owner popped it and is gone. It may have answered just before leaving: look once more.
      for (int i = 0; i < max_late_responses; ++i) {
        std::vector<std::string_view> lpop{"LPOP", resp_key};
        auto late =
            co_await tunnel::try_await<redis::error>(cmd.conn->execute(lpop, check_timeout));
        if (!late || late->type != redis::reply::kind::string) break;
        if (auto answer = check_response(std::move(late->str), req, s->options, owner)) {
          co_return in_order(w, std::move(*answer));
        }
      }
      co_return tunnel::failed(
          "Funcie.ConsumerLost",
          fmt::format("the consumer session {} that took this request is gone (killed, stopped "
                      "or cut off) without answering",
                      *owner));
    }
  }
  co_return tunnel::timed_out(
      owner, std::chrono::duration_cast<milliseconds>(steady::now() - w.offered_at));
}

/// The pieces of a streamed answer after the first.
class redis_pieces final : public tunnel::response_pieces {
 public:
  redis_pieces(std::shared_ptr<forwarder_state> s, std::shared_ptr<wait_state> w)
      : state_(std::move(s)), wait_(std::move(w)) {}

  asio::awaitable<tunnel::forward_outcome> next(steady::time_point give_up_at) override {
    if (!wait_->streaming) {
      co_return tunnel::failed("Funcie.BadResponse", "read past the end of a streamed response");
    }
    co_return co_await await_answer(state_, *wait_, give_up_at);
  }

 private:
  std::shared_ptr<forwarder_state> state_;
  std::shared_ptr<wait_state> wait_;
};

/// Reads the presence view: every live session with its (sealed) info. A session whose info
/// does not open with our keys, is about another session, or has a route that does not parse
/// is left out (logged once): a broker cannot divert invocations by rewriting a route.
asio::awaitable<void> read_view(const std::shared_ptr<forwarder_state>& s,
                                redis::connection& conn) {
  const std::string consumers_key = s->keys.consumers();
  const std::string prefix = s->keys.consumer("");
  std::vector<std::string_view> keys{consumers_key};
  std::vector<std::string_view> args{prefix, "256"};
  const std::int64_t epoch = s->watcher_live ? s->presence_epoch : -1;
  const redis::reply listed = co_await run_script(conn, all_scripts().sessions, keys, args,
                                                  s->options.timing.command_timeout);
  std::vector<forwarder_state::present_session> view;
  for (std::size_t i = 0; i + 1 < listed.elements.size(); i += 2) {
    const std::string& id = listed.elements[i].str;
    auto refuse = [&](std::string_view why) {
      if (s->refused_sessions.size() > 1024) s->refused_sessions.clear();  // bounded memory
      if (s->refused_sessions.insert(id).second) {
        spdlog::warn("ignored consumer session {} on {}: {}", id, s->broker, why);
      }
    };
    if (!tunnel::is_valid_id(id)) {
      refuse("its id is not 32 hex digits");
      continue;
    }
    std::optional<tunnel::consumer_card> card;
    try {
      card = tunnel::decode_consumer_card(s->options.keys.open(listed.elements[i + 1].str));
    } catch (const std::exception& e) {
      refuse(fmt::format("its info does not open with our shared secret ({})", e.what()));
      continue;
    }
    if (!card || card->session != id) {
      refuse("its info is not JSON or is about another session (an older funcie?)");
      continue;
    }
    forwarder_state::present_session entry{id, {}, card->in_flight};
    try {
      for (const auto& text : card->routes) entry.routes.push_back(tunnel::parse_route(text));
    } catch (const tunnel::route_error& e) {
      refuse(fmt::format("its route does not parse: {}", e.what()));
      continue;
    }
    view.push_back(std::move(entry));
  }
  s->view = std::move(view);
  s->view_read_at = util::boot_ms_now();
  s->view_epoch = epoch;
}

/// Reads the announcements of the presence subscription: each one means the view may miss a
/// session (or name one that left), so the next invocation reads it again.
asio::awaitable<void> drain_announcements(std::shared_ptr<forwarder_state> s,
                                          std::shared_ptr<redis::connection> conn) {
  while (!s->closed && conn->is_open()) {
    auto message = co_await tunnel::try_await(conn->receive());
    if (!message) break;
    ++s->presence_epoch;
    s->view_read_at = 0;
  }
  if (s->watcher == conn) {
    s->watcher_live = false;
    ++s->presence_epoch;
  }
}

/// Keeps the presence subscription: subscribes (again after a loss, backing off 1 s doubling
/// to 5 s) and PINGs it every heartbeat/12. An answered PING vouches that every announcement
/// published before it was sent has been received (one connection delivers in order).
asio::awaitable<void> watch_presence(std::shared_ptr<forwarder_state> s) {
  const std::string channel = s->keys.presence();
  const auto connect = connect_options_for(s->options, "funcie-forwarder-presence");
  const milliseconds pace(std::max<std::int64_t>(s->short_bound() / 2, 5));
  milliseconds backoff = 1000ms;
  bool refused_logged = false;
  while (!s->closed) {
    milliseconds pause = pace;
    if (!s->watcher || !s->watcher->is_open()) {
      s->watcher_live = false;
      auto opened = co_await tunnel::try_await([&]() -> asio::awaitable<void> {
        auto conn = co_await open_connection(s->executor, connect);
        s->watcher = conn;
        co_await conn->subscribe(channel);
      }());
      if (s->closed) break;
      if (opened) {
        ++s->presence_epoch;
        s->watcher_live = true;
        backoff = 1000ms;
        asio::co_spawn(s->executor, drain_announcements(s, s->watcher), asio::detached);
        continue;  // PING at once: the view is vouched for from then on
      }
      if (s->watcher) s->watcher->close();
      if (!refused_logged) {
        refused_logged = true;
        spdlog::info(
            "presence subscription on {} failed ({}); each invocation reads presence "
            "instead",
            s->broker, opened.error);
      }
      pause = backoff;
      backoff = std::min(backoff * 2, milliseconds(5000));
    } else {
      const auto conn = s->watcher;
      const std::int64_t sent_at = util::boot_ms_now();
      std::vector<std::string_view> ping{"PING"};
      auto pinged = co_await tunnel::try_await(
          conn->execute_checked(ping, s->options.timing.command_timeout));
      if (s->closed) break;
      if (!pinged) {
        conn->close();
        s->watcher_live = false;
        ++s->presence_epoch;
        continue;
      }
      // An announcement read just before the answer may not have reached the drain loop.
      if (conn->has_unread_input()) {
        ++s->presence_epoch;
        s->view_read_at = 0;
      }
      s->confirmed_at = sent_at;
    }
    if (!s->watch_timer) s->watch_timer.emplace(s->executor);
    boost::system::error_code ignored;
    s->watch_timer->expires_after(pause);
    co_await s->watch_timer->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  if (s->watcher) s->watcher->close();  // opened while the backend was being destroyed
  s->watcher_live = false;
  s->watching = false;
}

/// The session the presence view gives `req` to, nullopt for nobody (docs/routing.md,
/// "Choosing a session").
std::optional<std::string> choose(const std::shared_ptr<forwarder_state>& s,
                                  const tunnel::request& req) {
  std::vector<tunnel::route_candidate> candidates;
  candidates.reserve(s->view.size());
  for (const auto& entry : s->view) {
    candidates.push_back({entry.routes, static_cast<std::uint32_t>(std::clamp<std::int64_t>(
                                            entry.in_flight, 0, 1 << 30))});
  }
  tunnel::routed_invocation invocation(req.context.request_id, req.payload,
                                       req.context.client_context);
  const auto chosen = tunnel::choose_session(candidates, invocation, s->random());
  if (!chosen) return std::nullopt;
  return s->view[*chosen].id;
}

/// Assigns the request to `session` alone: pushes `item` (the envelope, or a reference to it
/// stored first with a plain SET) onto the session's inbox in one script. Returns the number of
/// receivers of the wake-up (0: nobody is present; -1: the session is gone); `session` becomes
/// the owner named by an earlier assignment of the same request (a retry). Throws redis::error.
asio::awaitable<long long> offer(const std::shared_ptr<forwarder_state>& s, redis::connection& conn,
                                 const outgoing_envelope& envelope, const std::string& item,
                                 const std::string& id, const std::string& req_ttl,
                                 std::string& session, bool after_withdrawal) {
  const auto& timing = s->options.timing;
  const auto& code = all_scripts();
  const std::string consumers_key = s->keys.consumers();
  const std::string req_key = s->keys.req(id);
  const std::string inbox_key = s->keys.inbox(session);
  const std::string session_key = s->keys.consumer(session);
  const std::string channel = s->keys.channel(session);
  const milliseconds offer_timeout = timeout_for(timing.command_timeout, envelope.size(), 10240);
  const std::string_view publish = conn.sharded_pubsub() ? "SPUBLISH" : "PUBLISH";
  const std::string claim_key = s->keys.claim(id);
  std::vector<std::string_view> keys{consumers_key, session_key, inbox_key, req_key, claim_key};
  std::vector<std::string_view> args{"assign", item, req_ttl, channel, publish, id, session};
  // Its own withdrawal wrote claim:<id> = cloud: that claim may be replaced, no other.
  if (after_withdrawal) args.emplace_back("cloud");
  auto result = [&](const redis::reply& reply) -> long long {
    if (reply.type == redis::reply::kind::string) {
      session = reply.str;  // assigned before: that assignment stands
      return session == "cloud" ? 0 : 1;
    }
    return reply.integer;
  };
  if (envelope.size() <= presence_first_bytes) {
    co_return result(co_await run_script(conn, code.offer, keys, args, offer_timeout));
  }
  std::vector<std::string_view> presence_keys{consumers_key};
  std::vector<std::string_view> presence_args{"presence"};
  const redis::reply present =
      co_await run_script(conn, code.offer, presence_keys, presence_args, timing.command_timeout);
  if (present.integer == 0) co_return 0;
  // Big: a plain SET (no copy through Lua), then assign the reference.
  std::vector<std::vector<std::string_view>> set{
      {"SET"}, {req_key}, envelope.pieces(), {"PX"}, {req_ttl}};
  co_await conn.execute_pieces_checked(std::move(set), offer_timeout);
  co_return result(co_await run_script(conn, code.offer, keys, args, timing.command_timeout));
}

struct offered_to {
  long long receivers = 0;
  std::string reason;   ///< why nobody took it, when receivers == 0
  std::string session;  ///< who it was assigned to, when receivers > 0
};

/// Picks a session from the presence view (read again when stale or empty) and offers it the
/// request; a chosen session that is gone or no longer listens is left out and another picked
/// (the view is read again when none is left), a few times at most. Throws redis::error.
asio::awaitable<offered_to> offer_to_chosen(const std::shared_ptr<forwarder_state>& s,
                                            redis::connection& conn, const tunnel::request& req,
                                            const outgoing_envelope& envelope,
                                            const std::string& item, const std::string& req_ttl,
                                            const std::vector<std::string>& withdrawn_from) {
  // Chosen for this request and found gone, or withdrawn from before.
  std::vector<std::string> gone = withdrawn_from;
  const bool again = !withdrawn_from.empty();
  auto leave_out_gone = [&] {
    std::erase_if(s->view, [&](const forwarder_state::present_session& entry) {
      return std::find(gone.begin(), gone.end(), entry.id) != gone.end();
    });
  };
  bool read = !s->view_fresh();
  if (again) leave_out_gone();
  for (int pick = 0; pick < 4; ++pick) {
    if (read) {
      co_await read_view(s, conn);
      leave_out_gone();
      read = false;
    }
    if (s->view.empty()) co_return offered_to{0, "no consumer", {}};
    auto session = choose(s, req);
    if (!session) co_return offered_to{0, "no connected session's route holds for it", {}};
    const long long receivers =
        co_await offer(s, conn, envelope, item, req.id, req_ttl, *session, again);
    if (receivers >= 0) co_return offered_to{receivers, "no consumer", *session};
    gone.push_back(*session);
    leave_out_gone();
    if (s->view.empty()) read = true;
  }
  co_return offered_to{0, "the sessions chosen for it left", {}};
}

}  // namespace

redis_forwarder_backend::redis_forwarder_backend(asio::any_io_executor executor,
                                                 const tunnel::backend_options& options)
    : state_(std::make_shared<state>(std::move(executor), options)) {}

redis_forwarder_backend::~redis_forwarder_backend() {
  state_->stop_watching();
  state_->pool->drop_connections();
}

asio::awaitable<tunnel::forward_outcome> redis_forwarder_backend::forward(
    const tunnel::request& req, steady::time_point give_up_at) {
  const std::shared_ptr<state> s = state_;
  const auto started = steady::now();
  if (auto refused = tunnel::refuse_early(s->backoff, req, started)) co_return std::move(*refused);
  const auto left = std::chrono::duration_cast<milliseconds>(give_up_at - started);
  if (left < 1ms) co_return tunnel::not_taken("no time left before the deadline");

  // Nobody present, and the presence subscription vouches for it: the function's own code,
  // with no Redis call (docs/routing.md, "Presence by subscription").
  // An announcement already in the subscription's socket, not read yet, is heeded too.
  if (s->view_fresh() && s->view.empty()) {
    if (!s->watcher || !s->watcher->has_unread_input()) co_return tunnel::not_taken("no consumer");
    s->view_read_at = 0;
  }

  // 1. Assign.
  const tunnel::labelled_request request(req, s->options.app);
  const outgoing_envelope envelope(s->options.keys, request.get(), presence_first_bytes);
  // "<id>\n<envelope>"; "<id>\n" refers to req:<id> for a big one (docs/routing.md).
  std::string item = req.id + "\n";
  if (envelope.size() <= presence_first_bytes) item += envelope.whole();
  const std::string req_ttl = std::to_string(left.count());

  // A session that is gone before it took the request (withdrawn) lets the forwarder pick
  // another one, leaving the withdrawn ones out, before the function's own code runs it.
  std::vector<std::string> withdrawn_from;
  std::string withdrawal;  ///< why the last assignment was withdrawn
  for (int round = 0;; ++round) {
    offered_to receivers;
    for (int attempt = 0;; ++attempt) {
      if (attempt > 0 && s->backoff.active(steady::now())) {
        co_return tunnel::not_taken(fmt::format("backing off from {}", s->broker));
      }
      got_connection cmd = co_await s->pool->get_command();
      if (!cmd.conn) {
        s->backoff.enter(cmd.error);
        co_return tunnel::not_taken(fmt::format("broker unreachable: {}", cmd.error));
      }
      auto offered = co_await tunnel::try_await<redis::error>(
          offer_to_chosen(s, *cmd.conn, req, envelope, item, req_ttl, withdrawn_from));
      if (offered) {
        receivers = *offered.value;
        break;
      }
      s->pool->forget(cmd.conn);
      if (attempt == 0 && !cmd.fresh && offered.failure->code() == redis::errc::io) {
        // Most likely a socket that died while Lambda froze us: reopen once, same envelope id,
        // so that even an offer that did reach Redis cannot be claimed twice.
        spdlog::debug("Redis connection found broken; reopening it once");
        s->pool->drop_idle();
        continue;
      }
      s->pool->drop_connections();
      s->backoff.enter(offered.error);
      if (round > 0) {
        co_return tunnel::not_taken(
            fmt::format("{}; broker trouble: {}", withdrawal, offered.error));
      }
      co_return tunnel::not_taken(fmt::format("broker trouble: {}", offered.error));
    }
    s->backoff.reset();
    if (!s->watching && !s->closed) {
      s->watching = true;
      asio::co_spawn(s->executor, watch_presence(s), asio::detached);
    }
    if (receivers.receivers == 0) {
      if (round > 0) {
        co_return tunnel::not_taken(
            fmt::format("{}; no other session took it ({})", withdrawal, receivers.reason));
      }
      co_return tunnel::not_taken(std::move(receivers.reason));
    }

    // 2. Wait: BLPOP in slices; between slices, see whether the owner took it and lives.
    auto w = std::make_shared<wait_state>();
    w->req.id = req.id;
    w->req.app = req.app;
    w->offered_at = steady::now();
    w->owner = std::move(receivers.session);
    w->item = item;
    w->cloud_ttl = std::to_string(left.count() + 60000);
    tunnel::forward_outcome outcome = co_await await_answer(s, *w, give_up_at);
    if (w->withdrawn && round < max_repicks && steady::now() < give_up_at) {
      withdrawal = outcome.reason;
      withdrawn_from.push_back(*w->owner);
      continue;
    }
    if (outcome.outcome == tunnel::forward_outcome::kind::answered && outcome.answer.is_piece() &&
        outcome.answer.more) {
      outcome.pieces = std::make_shared<redis_pieces>(s, std::move(w));
    }
    co_return outcome;
  }
}

}  // namespace funcie::redis_backend
