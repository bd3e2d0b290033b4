// The SQS backend's cloud side: presence from the request queue's tags, then offer, claim,
// commit and the answer by message (docs/sqs.md, "Who runs a request").
#include "backend/sqs/forwarder.hpp"
#include "tunnel/try_await.hpp"

#include <utility>

namespace funcie::sqs_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

using namespace detail;

namespace {

/// Reads the request queue's tags once (one attempt): who is connected. A throttled or
/// failed read leaves the last known state (nobody, at a cold start) and is tried again
/// later, with a growing pause; a refused one (no sqs:ListQueueTags, a server without
/// tags) makes this forwarder offer every invocation and learn from unclaimed offers.
asio::awaitable<void> read_presence_tags(std::shared_ptr<forwarder_state> s) {
  s->presence_reading = true;
  auto read =
      co_await tunnel::try_await(s->net.single_attempt->list_queue_tags(s->config().request_queue));
  const std::string& error = read.error;
  const auto sqs = read.as<aws::sqs_error>();
  const bool refused = sqs.has_value() && (sqs->cause() == aws::sqs_error::kind::access_denied ||
                                           sqs->cause() == aws::sqs_error::kind::invalid);
  // Said at warning level, once.
  const bool user_fixable =
      sqs.has_value() && (sqs->cause() == aws::sqs_error::kind::queue_missing ||
                          sqs->cause() == aws::sqs_error::kind::credentials);
  s->presence_reading = false;
  // Invocations that came while this cold start's read was under way go on with its result.
  for (auto& waiting : std::exchange(s->presence_waiters, {})) waiting->notify();
  const auto now = steady::now();
  if (read) {
    const auto& tags = *read.value;
    const bool was = s->present();
    const bool saw_nobody_before = s->presence_known && !s->saw_session;
    s->seen = read_presence(tags, s->config().app, util::unix_ms_now(), s->config().keys);
    s->set_view(s->seen);
    s->presence_known = true;
    s->presence_read_at = now;
    s->presence_backoff = 0ms;
    ++s->presence_reads;
    s->saw_session = s->seen.until_ms != 0;
    // Somebody there: read again every FUNCIE_SQS_PRESENCE_MS (to follow sessions that come
    // and go). Nobody: each read that finds nobody again doubles the pause, up to
    // FUNCIE_SQS_PRESENCE_IDLE_MS, so that a function nobody debugs makes a handful of
    // reads per instance and then one per FUNCIE_SQS_PRESENCE_IDLE_MS while it is invoked.
    const auto every = s->config().presence_every;
    s->presence_interval = s->saw_session || !saw_nobody_before
                               ? every
                               : std::min(s->presence_interval * 2, s->config().presence_idle_max);
    // +-20 % so that many instances started together do not read together.
    const auto pause = s->presence_interval;
    s->next_presence_read =
        now + pause * 4 / 5 + milliseconds(random_below(pause.count() * 2 / 5 + 1));
    if (!was && s->present()) {
      spdlog::info("a consumer is connected on {}: forwarding invocations", s->net.where);
    }
    co_return;
  }
  if (refused) {
    s->tags_usable = false;
    spdlog::warn(
        "cannot read who is connected from the tags of {} ({}); every invocation is offered, "
        "and one nobody claims makes the next {} ms run in the cloud. Allow "
        "sqs:ListQueueTags (docs/sqs.md)",
        s->net.where, error, s->config().absent_for.count());
    co_return;
  }
  s->presence_backoff = std::min(std::max(s->presence_backoff * 2, milliseconds(1000)),
                                 std::max(s->config().presence_every, milliseconds(1000)));
  s->next_presence_read =
      now + s->presence_backoff + milliseconds(random_below(s->presence_backoff.count() + 1));
  if (user_fixable && !s->said_presence_error) {
    s->said_presence_error = true;
    spdlog::warn(
        "cannot read who is connected on {} ({}); invocations run in the cloud until "
        "a read succeeds",
        s->net.where, error);
  } else {
    spdlog::debug(
        "reading the presence tags of {} failed ({}); invocations run in the cloud "
        "until a read succeeds",
        s->net.where, error);
  }
}

/// Starts a presence read in the background when the last one is old.
void refresh_presence(const std::shared_ptr<forwarder_state>& s) {
  if (!s->tags_usable || s->presence_reading || steady::now() < s->next_presence_read) return;
  s->presence_reading = true;
  asio::co_spawn(s->executor, read_presence_tags(s), asio::detached);
}

asio::awaitable<tunnel::forward_outcome> fire_and_forget(std::shared_ptr<forwarder_state> s,
                                                         const tunnel::request& req) {
  auto queued_all = co_await tunnel::try_await([&]() -> asio::awaitable<void> {
    const std::size_t limit = co_await s->net.limit_of(s->config().request_queue);
    message proto;
    proto.kind = message_kind::ff;
    proto.app = s->config().app;
    proto.id = req.id;
    proto.sent_ms = util::unix_ms_now();
    proto.expires_ms = proto.sent_ms + ff_lifetime.count();
    std::vector<std::string> bodies;
    for (const auto& piece : split(proto, tunnel::encode(req), limit)) {
      bodies.push_back(s->net.body_of(piece));
    }
    co_await s->net.send_all(s->config().request_queue, std::move(bodies));
  }());
  if (!queued_all) {
    s->backoff.enter(queued_all.error);
    co_return tunnel::not_taken(fmt::format("could not queue the request: {}", queued_all.error));
  }
  s->backoff.reset();
  tunnel::response queued;
  queued.id = req.id;
  queued.app = req.app;
  queued.result = tunnel::response::outcome::success;
  queued.content_type = "application/json";
  queued.body = "null";
  co_return tunnel::answered(std::move(queued));
}

}  // namespace

sqs_forwarder_backend::sqs_forwarder_backend(asio::any_io_executor executor,
                                             const tunnel::backend_options& options)
    : state_(std::make_shared<state>(std::move(executor), options)) {}

sqs_forwarder_backend::~sqs_forwarder_backend() {
  state_->stopped = true;
}

asio::awaitable<tunnel::forward_outcome> sqs_forwarder_backend::forward(
    const tunnel::request& req, steady::time_point give_up_at) {
  const std::shared_ptr<state> s = state_;
  const settings& config = s->config();
  const auto started = steady::now();
  if (auto refused = tunnel::refuse_early(s->backoff, req, started)) co_return std::move(*refused);
  const tunnel::labelled_request labelled(req, config.app);
  const tunnel::request& request = labelled.get();
  if (config.response_queue.empty()) co_return co_await fire_and_forget(s, request);
  // A session seen long ago (an instance thawed after an idle spell while somebody debugs),
  // or a view whose sessions' tags have run out since it was read (they refresh them, but
  // this instance reads them only every FUNCIE_SQS_PRESENCE_MS and only while invoked: a
  // claim window spent on an offer to a session that left ages it), is read again in the
  // invocation, so that the developer's next call is forwarded rather than taken for
  // nobody; what a read of nobody said is only ever refreshed in the background.
  // (After a failed read, not before its pause is over.)
  const bool failing = s->presence_backoff > 0ms && steady::now() < s->next_presence_read;
  const bool stale = s->saw_session && !failing &&
                     (steady::now() - s->presence_read_at > s->config().presence_every * 3 ||
                      s->seen.until_ms <= util::unix_ms_now());
  if (s->tags_usable && (!s->presence_known || stale) && !s->presence_reading) {
    // A cold start: one ListQueueTags, the only SQS call in the latency of an invocation
    // nobody debugs.
    co_await read_presence_tags(s);
  } else if (s->tags_usable && (!s->presence_known || stale)) {
    // Another invocation's read is under way (several in flight at once): its answer is
    // this one's too, rather than "nobody" before anything (or anything in time) was read.
    auto waiting = std::make_shared<wakeup>(s->executor);
    s->presence_waiters.push_back(waiting);
    co_await waiting->wait_until(std::min(give_up_at, steady::now() + 5s));
  } else {
    refresh_presence(s);  // in the background, never in an invocation's latency
  }
  if (!s->present()) {
    co_return tunnel::not_taken(
        s->tags_usable ? "no consumer is connected (presence tags of the request queue)"
                       : "no consumer claimed the last offer");
  }
  if (give_up_at - started < 1ms) co_return tunnel::not_taken("no time left before the deadline");
  // The one session this invocation is offered to (docs/sqs.md, "Routes"); empty without
  // the tags: anyone may claim it.
  std::string to;
  if (s->tags_usable) {
    auto chosen = s->choose(request);
    if (!chosen) co_return tunnel::not_taken("no connected session's route holds for it");
    to = std::move(*chosen);
  }
  struct counted {
    forwarder_state& s;
    std::string id;
    explicit counted(forwarder_state& state, std::string session)
        : s(state), id(std::move(session)) {
      if (!id.empty()) ++s.in_flight[id];
    }
    ~counted() {
      if (id.empty()) return;
      if (const auto it = s.in_flight.find(id); it != s.in_flight.end() && --it->second == 0) {
        s.in_flight.erase(it);
      }
    }
    counted(const counted&) = delete;
    counted& operator=(const counted&) = delete;
  } counting(*s, to);

  // 1. Offer: the first piece, with the claim window.
  const std::int64_t expires_ms =
      request.answer_by_ms != 0
          ? request.answer_by_ms
          : util::unix_ms_now() +
                std::chrono::duration_cast<milliseconds>(give_up_at - started).count();
  auto w = std::make_shared<answer_wait>(s, request.id, config.app, expires_ms);
  std::vector<message> pieces;
  std::int64_t claim_by_ms = 0;
  bool maybe_stored = false;
  auto offered = co_await tunnel::try_await([&]() -> asio::awaitable<void> {
    const std::size_t limit = co_await s->net.limit_of(config.request_queue);
    message proto;
    proto.kind = message_kind::offer;
    proto.app = config.app;
    proto.id = request.id;
    proto.session = to;
    proto.expires_ms = expires_ms;
    claim_by_ms = util::unix_ms_now() + config.claim_window.count();
    proto.claim_by_ms = claim_by_ms;
    pieces = split(proto, tunnel::encode(request), limit);
    maybe_stored = true;
    co_await s->net.send(config.request_queue, s->net.body_of(pieces.front()));
  }());
  if (!offered) {
    const std::string& error = offered.error;
    // Refused for sure (missing queue, no permission, bad request): nobody can claim it.
    const auto sqs = offered.as<aws::sqs_error>();
    if (!sqs.has_value() || (sqs->cause() != aws::sqs_error::kind::transport &&
                             sqs->cause() != aws::sqs_error::kind::server)) {
      maybe_stored = false;
    }
    s->backoff.enter(error);
    if (!maybe_stored)
      co_return tunnel::not_taken(fmt::format("could not offer the request: {}", error));
    // The offer may be stored although its answer was lost: a consumer may claim it, so
    // wait out the claim window as for any offer.
  } else {
    s->backoff.reset();
  }

  // 2. Wait for the claim on the response queue; then, once committed, for the answer.
  const auto claim_until = started + config.claim_window + config.claim_grace;
  auto& inbox = w->reg.get();
  while (true) {
    const auto now = steady::now();
    if (now >= claim_until) {
      s->mark_absent(to);
      co_return tunnel::not_taken(
          fmt::format("no consumer claimed it within {} ms", config.claim_window.count()));
    }
    if (now >= give_up_at) {
      co_return tunnel::timed_out(std::nullopt,
                                  std::chrono::duration_cast<milliseconds>(now - started));
    }
    if (inbox.inbox.empty()) {
      co_await inbox.wake.wait_until(std::min(give_up_at, claim_until));
      continue;
    }
    message m = std::move(inbox.inbox.front());
    inbox.inbox.pop_front();
    if (!to.empty() && m.session != to) {
      // Only the session it was offered to may claim it: another one's claim (an older
      // funcie, or forged without a secret) is never committed.
      spdlog::warn("dropped a {} for request {} from session {}, which it was not offered to",
                   to_string(m.kind), request.id, m.session.substr(0, 8));
      continue;
    }
    if (m.kind != message_kind::claim) {
      // Nothing runs before our commit, so nothing but a claim (or the alive of a session
      // that claimed it, whose claim came first or was lost) can come first.
      if (m.kind != message_kind::alive) {
        spdlog::warn("dropped a {} for request {} from session {}, which did not claim it",
                     to_string(m.kind), request.id, m.session.substr(0, 8));
      }
      continue;
    }
    // 3. Commit: this session, and only it, runs the request (with the rest of a big
    // one). From here on the request never runs in the cloud.
    const std::string owner = m.session;
    s->mark_present(owner);
    message commit;
    commit.kind = message_kind::commit;
    commit.app = config.app;
    commit.id = request.id;
    commit.session = owner;
    commit.expires_ms = std::min(expires_ms, util::unix_ms_now() + commit_lifetime.count());
    std::vector<std::string> bodies{s->net.body_of(commit)};
    for (std::size_t i = 1; i < pieces.size(); ++i) bodies.push_back(s->net.body_of(pieces[i]));
    const bool alone = bodies.size() == 1;
    pieces.clear();
    auto committed =
        co_await tunnel::try_await(s->net.send_all(config.request_queue, std::move(bodies)));
    if (!committed) {
      const std::string& send_error = committed.error;
      const auto sqs = committed.as<aws::sqs_error>();
      const bool not_stored = alone && sqs.has_value() &&
                              sqs->cause() != aws::sqs_error::kind::transport &&
                              sqs->cause() != aws::sqs_error::kind::server;
      s->backoff.enter(send_error);
      // A commit SQS refused for sure reaches nobody: the cloud may run the request. One
      // whose fate is unknown may be run locally: it must not run here too.
      if (not_stored) {
        co_return tunnel::not_taken(
            fmt::format("could not commit the request to its consumer: {}", send_error));
      }
      co_return tunnel::failed(
          "Funcie.BrokerLost",
          fmt::format("could not send the commit for the request to {}, so it may or may not "
                      "run on the consumer that claimed it: {}",
                      s->net.where, send_error));
    }
    // 4. The answer: a whole response, or a stream's pieces (docs/sqs.md).
    w->started = started;
    w->owner = owner;
    w->last_heard = steady::now();
    co_return co_await await_answer(s, std::move(w), give_up_at);
  }
}

bool sqs_forwarder_backend::streams() const {
  // Fire-and-forget drops every answer: nothing to stream.
  return !state_->config().response_queue.empty();
}

}  // namespace funcie::sqs_backend
