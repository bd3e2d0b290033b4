// The SQS backend's local side: the session's loops (receive, alive, presence, sweep) and
// the consumer_session interface.
#include "backend/sqs/session.hpp"
#include "tunnel/try_await.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>

namespace funcie::sqs_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

using namespace detail;

namespace {

/// After releasing a message for another session, waits a little before receiving again:
/// a receive of ours right away would take it back before the other session's does (both
/// test servers hand a message made visible to whichever receive comes first), and two
/// sessions could pass another's commit between them for seconds (docs/sqs.md, "Routes").
asio::awaitable<void> pause_after_hand_off(std::shared_ptr<session_state> s) {
  asio::steady_timer pause(s->executor, s->hand_off_pause());
  boost::system::error_code ignored;
  co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

/// Helps the receive loop through a backlog on the request queue (a storm of others'
/// messages ahead of an offer or a commit): short polls of up to 10, which every server
/// answers at once, until one finds nothing.
asio::awaitable<void> drain_backlog(std::shared_ptr<session_state> s) {
  while (!s->over()) {
    auto polled = co_await tunnel::try_await(s->net.client->receive_message(
        s->config().request_queue, static_cast<int>(max_batch_entries), 0, visibility_seconds));
    if (!polled || polled.value->empty()) break;
    s->forget_old_claims();
    const auto handed_off = s->handed_off;
    for (auto& received : *polled.value) on_request_message(s, std::move(received));
    if (s->handed_off != handed_off) co_await pause_after_hand_off(s);
  }
  --s->helpers;
}

asio::awaitable<void> receive_loop(std::shared_ptr<session_state> s) {
  asio::steady_timer pause(s->executor);
  milliseconds retry_pause = 100ms;
  s->last_receive = steady::now();
  std::size_t last_got = 0;
  while (!s->over()) {
    const auto [asked, wait] = s->net.next_receive(last_got, consumer_wait_seconds);
    const std::int64_t started_ms = util::unix_ms_now();
    auto polled = co_await tunnel::try_await(
        s->net.client->receive_message(s->config().request_queue, asked, wait, visibility_seconds));
    std::vector<aws::sqs_json::received_message> got;
    if (polled) got = std::move(*polled.value);
    last_got = got.size();
    s->net.check_receive(got, started_ms, util::unix_ms_now(), wait, asked);
    if (!polled) {
      const std::string& error = polled.error;
      if (s->stopped) break;
      // What we hold was failed by its forwarders once they heard nothing for a heartbeat.
      if (steady::now() - s->last_receive > s->config().heartbeat * 2) {
        s->lose(fmt::format("cannot receive from {}: {}", s->net.where, error));
        break;
      }
      spdlog::warn("receiving from {} failed: {}; retrying", s->net.where, error);
      pause.expires_after(retry_pause);
      retry_pause = std::min(retry_pause * 2, milliseconds(2000));
      boost::system::error_code ignored;
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      continue;
    }
    retry_pause = 100ms;
    s->last_receive = steady::now();
    s->forget_old_claims();
    // One message at a time (a server that holds batched long polls): more may wait behind
    // it. Short polls of 10 beside this loop's long one read the backlog (never more long
    // polls: such a server would hold the message each of them took). A server that
    // honours batches gives 10 per long poll already.
    if (asked == 1 && !got.empty()) {
      while (s->helpers < consumer_receivers - 1) {
        ++s->helpers;
        asio::co_spawn(s->executor, drain_backlog(s), asio::detached);
      }
    }
    const auto handed_off = s->handed_off;
    for (auto& received : got) on_request_message(s, std::move(received));
    if (s->handed_off != handed_off) co_await pause_after_hand_off(s);
  }
}

/// Tells the forwarders of every request this session holds that it still runs them.
asio::awaitable<void> alive_loop(std::shared_ptr<session_state> s) {
  const milliseconds interval = std::max(s->config().heartbeat / 3, milliseconds(100));
  while (!s->over()) {
    s->alive_timer.expires_after(interval);
    boost::system::error_code ignored;
    co_await s->alive_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (s->over()) break;
    std::vector<std::string> bodies;
    const std::int64_t now = util::unix_ms_now();
    for (const auto& [id, entry] : s->held) {
      if (entry.ff) continue;
      // A claim not committed yet is said alive too, until this session stops waiting for
      // its commit: a forwarder that committed it while the commit waits behind a backlog
      // on the request queue must not report this session lost (docs/sqs.md).
      if (!entry.committed && entry.commit_by_ms < now) continue;
      if (entry.expires_ms < now) continue;  // its forwarder has stopped waiting
      message alive;
      alive.kind = message_kind::alive;
      alive.app = s->config().app;
      alive.id = id;
      alive.session = s->session_id;
      alive.sent = entry.pieces_sent;
      alive.expires_ms =
          entry.committed ? entry.expires_ms : std::min(entry.expires_ms, entry.commit_by_ms);
      bodies.push_back(s->net.body_of(alive, entry.key));
    }
    if (bodies.empty()) continue;
    try {
      co_await s->net.send_all(s->config().response_queue, std::move(bodies));
    } catch (const std::exception& e) {
      spdlog::warn("could not tell SQS that session {} is alive: {}", s->session_id.substr(0, 8),
                   e.what());
    }
  }
}

/// Sets this session's presence tag on the request queue (here until now + presence_ttl,
/// its id, how many route tags), with its route tags, in one TagQueue.
asio::awaitable<void> publish_presence(std::shared_ptr<session_state> s) {
  const std::string key = presence_tag_key(s->config().app, s->session_id);
  std::map<std::string, std::string> tags = s->route_tag_values;
  tags[key] = presence_tag_value(
      key, util::unix_ms_now() + presence_ttl_periods * s->config().presence_every.count(),
      s->config().keys, s->session_id, s->route_tag_values.size());
  co_await s->net.client->tag_queue(s->config().request_queue, tags);
}

/// Removes the tags of this app's sessions whose time is over (killed ones): a queue holds
/// at most 50 tags. Best effort.
asio::awaitable<void> remove_stale_presence(std::shared_ptr<session_state> s) {
  try {
    const auto tags = co_await s->net.client->list_queue_tags(s->config().request_queue);
    const auto seen = read_presence(tags, s->config().app, util::unix_ms_now(), s->config().keys);
    if (!seen.stale_keys.empty()) {
      co_await s->net.client->untag_queue(s->config().request_queue, seen.stale_keys);
    }
  } catch (const std::exception& e) {
    spdlog::debug("could not remove stale presence tags: {}", e.what());
  }
}

/// Forwarders read the response queue only while they wait, so a message nobody waits for
/// any more (a late alive, a claim nobody committed, a forged or foreign one) could stay
/// there until the queue's retention ends. While connected, a session looks at the
/// response queue every sweep_every and deletes what has expired or is not funcie's,
/// releasing the rest at once (docs/sqs.md, "Nothing circulates").
asio::awaitable<void> sweep_loop(std::shared_ptr<session_state> s) {
  const std::string& queue = s->config().response_queue;
  while (!s->over()) {
    s->sweep_timer.expires_after(sweep_every);
    boost::system::error_code ignored;
    co_await s->sweep_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    for (int round = 0; round < 50 && !s->over(); ++round) {
      std::vector<aws::sqs_json::received_message> got;
      try {
        got = co_await s->net.client->receive_message(queue, 10, 0, visibility_seconds);
      } catch (const std::exception& e) {
        spdlog::debug("sweeping the response queue failed: {}", e.what());
        break;
      }
      std::size_t dropped = 0;
      for (const auto& received : got) {
        std::optional<message> m;
        bool foreign_key = false;
        try {
          m = decode(s->config().keys.open(received.body));
        } catch (const tunnel::seal_error&) {
          const auto key = tunnel::keyring::key_id_of(received.body);
          foreign_key = key && s->config().keys.enabled() && !s->config().keys.holds(*key);
        } catch (const std::exception&) {
        }
        if (foreign_key || (m && !s->net.expired(*m, "response"))) {
          s->net.release(queue, received, true);
        } else {
          s->net.drop(queue, received.receipt_handle);
          ++dropped;
        }
      }
      if (got.size() < 10 || dropped == 0) break;
    }
  }
}

/// Keeps the presence tag fresh while the session lives.
asio::awaitable<void> presence_loop(std::shared_ptr<session_state> s) {
  while (!s->over()) {
    s->presence_timer.expires_after(s->config().presence_every);
    boost::system::error_code ignored;
    co_await s->presence_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (s->over()) break;
    try {
      co_await publish_presence(s);
    } catch (const std::exception& e) {
      spdlog::warn("could not refresh this session's presence tag on {}: {}", s->net.where,
                   e.what());
    }
  }
}

}  // namespace

sqs_consumer_session::sqs_consumer_session(asio::any_io_executor executor,
                                           const tunnel::backend_options& options)
    : state_(std::make_shared<state>(std::move(executor), options)) {}

sqs_consumer_session::~sqs_consumer_session() {
  state_->shutdown();
}

const std::string& sqs_consumer_session::id() const {
  return state_->session_id;
}

void sqs_consumer_session::set_in_flight(std::int64_t count) {
  state_->in_flight = count;
}

asio::awaitable<void> sqs_consumer_session::open() {
  const std::shared_ptr<state> s = state_;
  s->begin_open();
  try {
    // Forwarders read the routes from the request queue's tags (docs/sqs.md, "Routes").
    s->route_tag_values =
        route_tags(s->config().app, s->session_id, s->route_texts, s->config().keys);
  } catch (const message_error& e) {
    // Not broker trouble: trying again would not help.
    throw tunnel::backend_config_error(e.what());
  }
  auto joined = co_await tunnel::try_await([&]() -> asio::awaitable<void> {
    // Both queues must exist and be ours to use: a clear error now rather than silence.
    co_await s->net.queue_limit(s->config().request_queue, true);
    if (!s->config().response_queue.empty()) {
      co_await s->net.queue_limit(s->config().response_queue, true);
      // Forwarders learn that a session is connected from its tag (docs/sqs.md).
      co_await publish_presence(s);
    }
  }());
  if (!joined) {
    throw tunnel::backend_error(fmt::format("cannot join the tunnel: {}", joined.error));
  }
  if (s->config().response_queue.empty()) {
    spdlog::warn(
        "no response queue: requests are fire-and-forget, their answers are dropped (set "
        "FUNCIE_RESPONSE_QUEUE_URL or --response-queue for answers)");
  }
  const auto offset = s->net.client->clock_offset();
  if (offset > 2s || offset < -2s) {
    spdlog::warn(
        "this machine's clock differs from SQS's by about {} ms: claims may come too late and "
        "invocations run in the cloud; synchronise the clock (NTP)",
        offset.count());
  }
  s->opened = true;
  if (!s->config().response_queue.empty()) {
    spdlog::info(
        "new function instances forward to this session at once; warm ones once they read the "
        "presence tags again, within their FUNCIE_SQS_PRESENCE_IDLE_MS (default 5 min)");
  }
  asio::co_spawn(s->executor, receive_loop(s),
                 asio::bind_cancellation_slot(s->stop_receiving.slot(), asio::detached));
  asio::co_spawn(s->executor, alive_loop(s), asio::detached);
  if (!s->config().response_queue.empty()) {
    asio::co_spawn(s->executor, presence_loop(s), asio::detached);
    asio::co_spawn(s->executor, sweep_loop(s), asio::detached);
    asio::co_spawn(s->executor, remove_stale_presence(s), asio::detached);
  }
}

asio::awaitable<tunnel::request> sqs_consumer_session::next() {
  const std::shared_ptr<state> s = state_;
  s->check_open();
  while (true) {
    s->check_running();
    if (!s->ready.empty()) {
      tunnel::request req = std::move(s->ready.front());
      s->ready.pop_front();
      co_return req;
    }
    co_await s->ready_signal.wait_until(steady::time_point::max());
  }
}

asio::awaitable<void> sqs_consumer_session::respond(const tunnel::response& answer) {
  const std::shared_ptr<state> s = state_;
  const auto it = s->held.find(answer.id);
  std::int64_t expires = util::unix_ms_now() + 60000;
  bool ff = false;
  std::string key;
  // A piece of a stream with more to come keeps the request held: its alives go on (the
  // heartbeat) and count the pieces stored. The last piece, or a whole response, ends it.
  const bool more = answer.is_piece() && answer.more;
  if (it != s->held.end()) {
    expires = it->second.expires_ms;
    ff = it->second.ff;
    key = it->second.key;
  }
  // Held (and said alive every heartbeat/3) until the answer is stored: a big one takes
  // a while to upload, and the forwarder hears nothing else from us meanwhile.
  struct forget_when_sent {
    std::shared_ptr<state> s;
    std::string id;
    bool now;
    ~forget_when_sent() {
      if (now) s->held.erase(id);
    }
  } forget{s, answer.id, !more};
  if (ff || s->config().response_queue.empty()) {
    spdlog::debug("request {} was fire-and-forget: its answer is dropped", answer.id);
    co_return;
  }
  co_await send_response(s, answer, expires, std::move(key));
  if (!more) co_return;
  if (const auto held = s->held.find(answer.id); held != s->held.end()) {
    held->second.pieces_sent =
        std::max(held->second.pieces_sent, static_cast<std::uint32_t>(answer.piece + 1));
  }
}

asio::awaitable<void> sqs_consumer_session::close() {
  const std::shared_ptr<state> s = state_;
  const bool was_open = s->opened && !s->stopped;
  s->shutdown();
  if (!was_open || s->config().response_queue.empty()) co_return;
  // Gone: forwarders stop offering at their next presence read. One attempt; if it fails
  // the tag's own time ends it.
  std::vector<std::string> keys{presence_tag_key(s->config().app, s->session_id)};
  for (const auto& [key, value] : s->route_tag_values) keys.push_back(key);
  try {
    co_await s->net.single_attempt->untag_queue(s->config().request_queue, keys);
  } catch (const std::exception& e) {
    spdlog::debug("could not remove this session's presence tag: {}", e.what());
  }
}

}  // namespace funcie::sqs_backend
