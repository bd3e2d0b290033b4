// The SQS backend's cloud side, as its files share it: the forwarder's state, the waiters
// for messages on the response queue, and the ping `funcie status` also uses.
#pragma once

#include "backend/sqs/link.hpp"
#include "tunnel/core.hpp"
#include "tunnel/route.hpp"

#include <deque>
#include <map>
#include <unordered_map>

namespace funcie::sqs_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace detail {

/// One forward() (or probe) waiting for messages about its id.
struct waiter {
  explicit waiter(asio::any_io_executor ex) : wake(std::move(ex)) {}
  std::deque<message> inbox;
  wakeup wake;
};

}  // namespace detail

struct sqs_forwarder_backend::state {
  state(asio::any_io_executor ex, const tunnel::backend_options& opts,
        const aws::getenv_fn& getenv = detail::environment_snapshot())
      : executor(ex),
        net(ex, resolve_settings(opts, getenv), opts.timing.command_timeout, 2, getenv),
        backoff(net.where) {}

  asio::any_io_executor executor;
  detail::link net;
  std::unordered_map<std::string, std::shared_ptr<detail::waiter>> waiters;
  /// Ids this process waited for and no longer does, until their messages expire (Unix
  /// ms): a late `alive` or piece for one is deleted, not passed round to other instances.
  std::unordered_map<std::string, std::int64_t> finished;
  std::size_t finished_pruned_at = 0;
  /// When each consumer session was last heard of on the response queue (any message of
  /// this app from it, whoever it was for): a session that answers other requests is
  /// alive, although the one message for a given request may wait behind a flood of
  /// others' on the queue.
  std::unordered_map<std::string, steady::time_point> session_heard;
  std::size_t session_heard_pruned_at = 0;
  void heard_from(const std::string& session) {
    if (session.empty()) return;
    const auto now = steady::now();
    session_heard[session] = now;
    if (session_heard.size() >= 2 * session_heard_pruned_at + 64) {
      std::erase_if(session_heard, [&](const auto& entry) { return now - entry.second > 60s; });
      session_heard_pruned_at = session_heard.size();
    }
  }
  steady::time_point last_heard_from(const std::string& session) const {
    const auto it = session_heard.find(session);
    return it == session_heard.end() ? steady::time_point{} : it->second;
  }
  /// Since when every receive of the response queue came back full (as many messages as it
  /// asked for): the queue holds more than this instance reads at once, and a session's
  /// messages may wait behind others' (a flood of claims nobody takes, on a server that
  /// hands out the oldest first). Zero: the last receive came back with room to spare.
  /// While it lasts, a session's silence is no sign that it died (see silence_bound).
  steady::time_point backlog_since{};
  bool backlogged() const { return backlog_since != steady::time_point{}; }
  /// A receive brought `got` of the `asked` messages it asked for. A receive of one that
  /// got one says nothing either way (on a server that holds batched receives, the short
  /// poll of 10 after it tells).
  void saw_receive(std::size_t got, int asked) {
    if (asked == 1 && got == 1) return;
    if (asked > 1 && got >= static_cast<std::size_t>(asked)) {
      if (!backlogged()) backlog_since = steady::now();
      return;
    }
    if (!backlogged()) return;
    backlog_since = {};
    // The waiters whose owners were given longer while it lasted look again.
    for (auto& [id, w] : waiters) w->wake.notify();
  }
  /// How long a committed request's session may stay silent before it is reported lost:
  /// the heartbeat, or detail::backlog_heartbeats of them while the response queue is
  /// backlogged (docs/sqs.md, "Nothing starves").
  milliseconds silence_bound() const;
  /// Receives of the response queue running: one while anybody waits, up to max_pollers
  /// one per 2 waiting.
  std::size_t polling = 0;
  /// One per forward() waiting for a cold start's presence read already under way.
  std::vector<std::shared_ptr<detail::wakeup>> presence_waiters;
  std::size_t pollers_wanted() const {
    // A server that honours batches gives up to 10 per receive: one receive is enough.
    if (net.receive_batch() > 1) return 1;
    return std::clamp<std::size_t>((waiters.size() + 1) / 2, 1, detail::max_pollers);
  }
  bool stopped = false;
  /// Presence from the request queue's tags (docs/sqs.md, "Presence").
  bool presence_known = false;    ///< A read succeeded once
  bool presence_reading = false;  ///< A read is under way
  bool tags_usable = true;        ///< False once ListQueueTags was refused: offer and learn
  steady::time_point next_presence_read{};
  presence seen;  ///< What the last successful read said
  steady::time_point presence_read_at{};
  /// The pause before the next background read: FUNCIE_SQS_PRESENCE_MS while a session is
  /// seen, doubling after each read that sees nobody, up to FUNCIE_SQS_PRESENCE_IDLE_MS.
  milliseconds presence_interval{0};
  bool saw_session = false;          ///< The last read saw a session's tag in its time
  std::uint64_t presence_reads = 0;  ///< Successful reads, for tests and logs
  bool said_presence_error = false;
  milliseconds presence_backoff{0};
  /// Without tags: after an unclaimed offer, nobody is assumed connected until then.
  steady::time_point absent_until{};
  tunnel::broker_backoff backoff;

  const settings& config() const { return net.config; }

  /// The sessions the last presence read saw, with their routes parsed (docs/sqs.md,
  /// "Routes"), and this instance's requests offered or committed to each, waiting.
  struct candidate {
    std::string id;
    std::vector<tunnel::route> routes;
    std::string tag;  ///< Its presence tag's value when read
  };
  std::vector<candidate> view;
  std::unordered_map<std::string, std::uint32_t> in_flight;
  /// Sessions whose offer went unclaimed -> their tag's value then: left out until it changes.
  std::unordered_map<std::string, std::string> unclaimed_by;
  std::set<std::string> said_ignored;  ///< Sessions left out of the view, said once each

  /// Sets the view from what a presence read saw. A session whose routes do not parse is
  /// left out (a forwarder of an older funcie with fewer route terms; said once).
  void set_view(const presence& p) {
    for (const auto& why : p.ignored) {
      if (said_ignored.size() > 1024) said_ignored.clear();  // bounded memory
      if (said_ignored.insert(why).second) {
        spdlog::warn("ignored consumer session {} on {}", why, net.where);
      }
    }
    std::vector<candidate> next;
    for (const auto& session : p.sessions) {
      candidate c{session.id, {}, session.tag};
      try {
        for (const auto& text : session.routes) c.routes.push_back(tunnel::parse_route(text));
      } catch (const tunnel::route_error& e) {
        if (said_ignored.insert(session.id).second) {
          spdlog::warn("ignored consumer session {} on {}: its route does not parse: {}",
                       session.id.substr(0, 8), net.where, e.what());
        }
        continue;
      }
      next.push_back(std::move(c));
    }
    view = std::move(next);
    std::erase_if(unclaimed_by, [&](const auto& entry) {
      return std::none_of(view.begin(), view.end(),
                          [&](const candidate& c) { return c.id == entry.first; });
    });
  }
  bool offerable(const candidate& c) const {
    const auto it = unclaimed_by.find(c.id);
    return it == unclaimed_by.end() || it->second != c.tag;
  }

  /// Whether to offer an invocation: a session's tag is there, fresh, and changed since its
  /// last unclaimed offer (a killed session's tag costs one claim window, not one per call).
  bool present() const {
    if (!tags_usable) return steady::now() >= absent_until;
    if (!presence_known || seen.until_ms <= util::unix_ms_now()) return false;
    return std::any_of(view.begin(), view.end(), [&](const candidate& c) { return offerable(c); });
  }
  /// The session `req` goes to (docs/routing.md, "Choosing a session"), nullopt for nobody.
  std::optional<std::string> choose(const tunnel::request& req) {
    std::vector<tunnel::route_candidate> candidates;
    std::vector<const candidate*> of;
    for (const auto& c : view) {
      if (!offerable(c)) continue;
      const auto it = in_flight.find(c.id);
      candidates.push_back({c.routes, it == in_flight.end() ? 0u : it->second});
      of.push_back(&c);
    }
    tunnel::routed_invocation invocation(req.context.request_id, req.payload,
                                         req.context.client_context);
    const auto chosen = tunnel::choose_session(
        candidates, invocation, static_cast<std::uint64_t>(detail::random_below(1 << 30)));
    if (!chosen) return std::nullopt;
    return of[*chosen]->id;
  }
  void mark_present(const std::string& session) {
    absent_until = {};
    unclaimed_by.erase(session);
  }
  /// An offer to `session` went unclaimed. Without tags: nobody for FUNCIE_SQS_ABSENT_MS.
  /// With them: that session is left out until its tag changes: a live session refreshes
  /// its tag every FUNCIE_SQS_PRESENCE_MS, so it is offered invocations again after that and
  /// a read; a killed one never does, so it costs each instance one claim window in all.
  void mark_absent(const std::string& session) {
    if (!tags_usable) {
      absent_until = steady::now() + config().absent_for;
      return;
    }
    for (const auto& c : view) {
      if (c.id == session) unclaimed_by[session] = c.tag;
    }
  }
};

inline milliseconds sqs_forwarder_backend::state::silence_bound() const {
  return backlogged() ? config().heartbeat * detail::backlog_heartbeats : config().heartbeat;
}

namespace detail {

using forwarder_state = sqs_forwarder_backend::state;

/// Registers a waiter for `id` (and starts the poller); unregisters when destroyed.
class registration {
 public:
  /// `expires_ms`: when messages about `id` stop meaning anything.
  registration(std::shared_ptr<forwarder_state> s, std::string id, std::int64_t expires_ms);
  ~registration();
  registration(const registration&) = delete;
  registration& operator=(const registration&) = delete;
  waiter& get() { return *waiter_; }

 private:
  std::shared_ptr<forwarder_state> s_;
  std::string id_;
  std::int64_t expires_ms_;
  std::shared_ptr<waiter> waiter_;
};

/// Sends a ping and collects the pongs until the claim window (plus grace) ends. With
/// `first_only`, returns at the first pong. With sessions in `to`, one ping addressed to
/// each, and returns once each has answered.
asio::awaitable<std::vector<message>> ping(std::shared_ptr<forwarder_state> s, bool first_only,
                                           std::vector<std::string> to = {});

/// The wait for the answer to one request, from its offer to its answer; kept between the
/// pieces of a streamed answer (docs/sqs.md, "Streamed responses").
struct answer_wait {
  answer_wait(std::shared_ptr<forwarder_state> s, std::string request_id, std::string app_name,
              std::int64_t expires_ms)
      : reg(std::move(s), request_id, expires_ms),
        id(std::move(request_id)),
        app(std::move(app_name)) {}
  registration reg;
  std::string id;
  std::string app;
  steady::time_point started{};
  std::string owner;                ///< The session it was committed to.
  steady::time_point last_heard{};  ///< Last message from the owner
  reassembly whole;                 ///< The parts of a whole response
  /// Pieces of a stream not passed on yet: their parts, and the whole envelopes of those
  /// that came before their turn (a standard queue may reorder).
  std::map<std::uint32_t, reassembly> partial;
  std::map<std::uint32_t, std::string> early;
  std::size_t held_bytes = 0;
  std::uint32_t next_piece = 0;
  bool streaming = false;  ///< A piece came and the last has not
  /// The most pieces the owner said it stored (its alives' `sent`), and since when one
  /// of them is known to be stored but has not come.
  std::uint32_t stored = 0;
  steady::time_point gap_since{};
};

/// Waits for the next answer to a committed request (a whole response or the next piece)
/// until `give_up_at`. An answered piece with more after it carries `pieces`, which goes on
/// with the same wait.
asio::awaitable<tunnel::forward_outcome> await_answer(std::shared_ptr<forwarder_state> s,
                                                      std::shared_ptr<answer_wait> w,
                                                      steady::time_point give_up_at);

}  // namespace detail

}  // namespace funcie::sqs_backend
