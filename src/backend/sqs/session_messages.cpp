// How an SQS consumer session takes each message off the request queue: claims an offer,
// runs a request once it is committed to it and whole, answers a ping (docs/sqs.md).
#include "backend/sqs/session.hpp"
#include "tunnel/consumer_info.hpp"
#include "tunnel/try_await.hpp"

namespace funcie::sqs_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace detail {

asio::awaitable<void> send_response(std::shared_ptr<session_state> s,
                                    const tunnel::response& answer, std::int64_t expires_ms,
                                    std::string key) {
  const tunnel::labelled_response labelled(answer, s->session_id, s->config().app);
  auto sent = co_await tunnel::try_await([&]() -> asio::awaitable<void> {
    const std::size_t limit = co_await s->net.limit_of(s->config().response_queue);
    message proto;
    // A piece of a streamed response goes as `piece` messages carrying its number.
    proto.kind = answer.is_piece() ? message_kind::piece : message_kind::response;
    if (answer.is_piece()) {
      if (answer.piece > static_cast<std::int64_t>(max_stream_piece)) {
        throw message_error("the streamed response has too many pieces");
      }
      proto.piece = static_cast<std::uint32_t>(answer.piece);
    }
    proto.app = s->config().app;
    proto.id = answer.id;
    proto.session = s->session_id;
    proto.expires_ms = expires_ms;
    std::vector<std::string> bodies;
    for (const auto& piece : split(proto, tunnel::encode(labelled.get()), limit)) {
      bodies.push_back(s->net.body_of(piece, key));
    }
    co_await s->net.send_all(s->config().response_queue, std::move(bodies));
  }());
  if (!sent) {
    const std::string& error = sent.error;
    throw tunnel::backend_error(
        fmt::format("cannot send the response for request {}: {}", answer.id, error));
  }
}

namespace {

/// A whole envelope arrived: hand it to next(), or refuse it at once when it is unreadable.
void deliver(const std::shared_ptr<session_state>& s, const std::string& id,
             const std::string& envelope) {
  auto it = s->held.find(id);
  if (it == s->held.end()) return;
  it->second.delivered = true;
  tunnel::request req;
  std::string bad;
  try {
    req = tunnel::decode_request(envelope);
  } catch (const std::exception& e) {
    bad = e.what();
  }
  if (bad.empty() && (req.id != id || req.app != s->config().app)) {
    bad = "its id or app differs from its message";
  }
  // A request no route of this session holds for was sent elsewhere or diverted on the queue
  // (docs/sqs.md, "Routes"). An offer of one piece was checked before the claim already.
  if (bad.empty() && !s->wants(req)) {
    bad = "none of this session's routes holds for it (was it diverted?)";
  }
  if (bad.empty()) {
    s->ready.push_back(std::move(req));
    s->ready_signal.notify();
    return;
  }
  spdlog::warn("dropped request {}: {}", id, bad);
  const bool ff = it->second.ff;
  const std::int64_t expires = it->second.expires_ms;
  std::string key = std::move(it->second.key);
  s->held.erase(it);
  if (ff) return;
  const tunnel::response refusal =
      tunnel::bad_request_response(id, s->config().app, s->session_id, bad);
  asio::co_spawn(
      s->executor,
      [s, refusal, expires, key = std::move(key)]() -> asio::awaitable<void> {
        try {
          co_await send_response(s, refusal, expires, key);
        } catch (const std::exception& e) {
          spdlog::warn("could not refuse request {}: {}", refusal.id, e.what());
        }
      },
      asio::detached);
}

/// Hands a held request to next() once it is whole and committed.
void deliver_when_ready(const std::shared_ptr<session_state>& s, const std::string& id) {
  auto it = s->held.find(id);
  if (it == s->held.end() || it->second.delivered || !it->second.committed ||
      !it->second.envelope) {
    return;
  }
  const std::string envelope = std::move(*it->second.envelope);
  it->second.envelope.reset();
  deliver(s, id, envelope);
}

/// Adds a piece to a held request; delivers it once whole (and committed).
void add_piece(const std::shared_ptr<session_state>& s, const message& m) {
  auto it = s->held.find(m.id);
  if (it == s->held.end() || it->second.delivered) return;
  std::optional<std::string> whole;
  std::string bad;
  try {
    whole = it->second.parts.add(m, tunnel::max_header_bytes + tunnel::max_body_bytes + 1024);
  } catch (const std::exception& e) {
    bad = e.what();
  }
  if (!bad.empty()) {
    spdlog::warn("dropped request {}: {}", m.id, bad);
    s->held.erase(it);
    return;
  }
  if (!whole) return;
  it->second.envelope = std::move(*whole);
  deliver_when_ready(s, m.id);
}

/// Why an offer cannot be a funcie request worth claiming, or empty. A request of one
/// piece is checked whole; the first piece of a bigger one must start like a request
/// envelope. A look-alike is never claimed.
std::string offer_problem(const message& m, const std::string& app) {
  try {
    if (m.count == 1) {
      const auto req = tunnel::decode_request(m.data);
      if (req.id != m.id || req.app != app) return "its id or app differs from its message";
      return {};
    }
    if (tunnel::peek_kind(m.data) != tunnel::message_kind::request) {
      return "its first piece is not a request envelope";
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

asio::awaitable<void> take_offer(std::shared_ptr<session_state> s,
                                 aws::sqs_json::received_message received, message m,
                                 std::string key) {
  const std::string& queue = s->config().request_queue;
  const std::int64_t now = util::unix_ms_now();
  if (s->claimed.contains(m.id) || s->held.contains(m.id)) {  // delivered twice
    s->net.drop(queue, received.receipt_handle);
    co_return;
  }
  if (m.claim_by_ms <= now || s->config().response_queue.empty()) {
    spdlog::debug("dropped offer {}: its claim window is over", m.id);
    s->net.drop(queue, received.receipt_handle);
    co_return;
  }
  if (const auto problem = offer_problem(m, s->config().app); !problem.empty()) {
    spdlog::warn("dropped an offer on the request queue that is not a valid request: {}", problem);
    s->net.drop(queue, received.receipt_handle);
    co_return;
  }
  // Routes (docs/sqs.md, "Routes"): an offer of one piece none of this session's routes
  // holds for is never claimed. Addressed to this session it was diverted (or the forwarder
  // is another version): refused, and the forwarder's own code runs it after the claim
  // window. Addressed to nobody (a forwarder without sqs:ListQueueTags): left for another
  // session. A bigger request is checked once whole (deliver).
  if (!s->routes.empty() && m.count == 1 && !s->wants(tunnel::decode_request(m.data))) {
    if (m.session.empty()) {
      s->net.release(queue, received);
      co_return;
    }
    spdlog::warn("refused request {}: none of this session's routes holds for it", m.id);
    s->net.drop(queue, received.receipt_handle);
    co_return;
  }
  s->net.drop(queue, received.receipt_handle);  // claimed or not, nobody else needs it
  // A claim runs nothing: the request runs here only when its forwarder commits it to this
  // session (docs/sqs.md, "Who runs a request").
  const std::int64_t claim_by = std::min(m.claim_by_ms, now + max_claim_window_ms);
  held_request entry;
  entry.key = key;
  entry.expires_ms = m.expires_ms;
  entry.commit_by_ms = claim_by + commit_wait_ms;
  s->claimed[m.id] = std::max(m.expires_ms, entry.commit_by_ms);
  s->held.emplace(m.id, std::move(entry));
  add_piece(s, m);
  message claim;
  claim.kind = message_kind::claim;
  claim.app = s->config().app;
  claim.id = m.id;
  claim.session = s->session_id;
  claim.expires_ms = claim_by + claim_lifetime_ms;
  try {
    co_await s->net.send(s->config().response_queue, s->net.body_of(claim, key));
  } catch (const std::exception& e) {
    spdlog::warn("could not claim request {}: {}; it runs in the cloud", m.id, e.what());
    if (auto it = s->held.find(m.id); it != s->held.end() && !it->second.committed) {
      s->held.erase(it);
    }
  }
}

/// A commit: the forwarder chose the session it names to run the request.
void take_commit(const std::shared_ptr<session_state>& s,
                 const aws::sqs_json::received_message& received, const message& m) {
  const std::string& queue = s->config().request_queue;
  auto it = s->held.find(m.id);
  if (m.session != s->session_id) {
    // Another session's: that one runs it. If this one claimed it too (a second delivery
    // of the offer), it forgets its claim.
    if (it != s->held.end() && !it->second.committed) s->held.erase(it);
    s->hand_off(received);
    return;
  }
  s->net.drop(queue, received.receipt_handle);
  if (it == s->held.end()) {
    if (!s->claimed.contains(m.id)) {
      spdlog::warn(
          "request {} was committed to this session after it stopped waiting for the commit; "
          "its forwarder reports the consumer lost",
          m.id);
    }
    return;  // else a second copy of a commit already taken
  }
  if (it->second.committed) return;
  it->second.committed = true;
  deliver_when_ready(s, m.id);
}

void take_piece(const std::shared_ptr<session_state>& s,
                const aws::sqs_json::received_message& received, const message& m) {
  const std::string& queue = s->config().request_queue;
  if (!s->held.contains(m.id)) {
    if (s->claimed.contains(m.id)) {
      s->net.drop(queue, received.receipt_handle);  // a late copy of a piece we had
    } else {
      s->hand_off(received);  // for the session that holds it
    }
    return;
  }
  s->net.drop(queue, received.receipt_handle);
  add_piece(s, m);
}

void take_ff(const std::shared_ptr<session_state>& s,
             const aws::sqs_json::received_message& received, const message& m, std::string key) {
  const std::string& queue = s->config().request_queue;
  if (m.part != 0) {
    take_piece(s, received, m);
    return;
  }
  s->net.drop(queue, received.receipt_handle);
  if (m.sent_ms < s->since_ms - ff_skew_ms || s->claimed.contains(m.id) || s->held.contains(m.id)) {
    return;  // sent before this session (rule 4), or delivered twice
  }
  held_request entry;
  entry.key = std::move(key);
  entry.ff = true;
  entry.committed = true;  // nobody waits to choose: whoever takes it runs it
  entry.expires_ms = m.expires_ms;
  entry.commit_by_ms = m.expires_ms;
  s->held.emplace(m.id, std::move(entry));
  s->claimed[m.id] = m.expires_ms;
  add_piece(s, m);
}

asio::awaitable<void> answer_ping(std::shared_ptr<session_state> s, message m, std::string key) {
  if (s->config().response_queue.empty()) co_return;
  message pong;
  pong.kind = message_kind::pong;
  pong.app = s->config().app;
  pong.id = m.id;
  pong.session = s->session_id;
  pong.expires_ms = m.expires_ms;
  tunnel::consumer_card card;
  card.host = s->host;
  card.pid = s->pid;
  card.since_ms = s->since_ms;
  card.in_flight = s->in_flight;
  card.at_ms = util::unix_ms_now();  // when it answered
  card.routes = s->route_texts;
  pong.data = tunnel::encode_consumer_card(card);
  try {
    co_await s->net.send(s->config().response_queue, s->net.body_of(pong, key));
  } catch (const std::exception& e) {
    spdlog::debug("could not answer a ping: {}", e.what());
  }
}

}  // namespace

void on_request_message(const std::shared_ptr<session_state>& s,
                        aws::sqs_json::received_message received) {
  const std::string& queue = s->config().request_queue;
  if (s->over()) {
    s->net.release(queue, received);  // for the next session
    return;
  }
  std::string key;
  auto taken = s->net.take(queue, received, "request", &key);
  if (!taken) return;
  message m = std::move(*taken);
  if (m.app != s->config().app) {
    s->net.release(queue, received);
    return;
  }
  if (s->net.expired(m, "request")) {
    s->net.drop(queue, received.receipt_handle);
    return;
  }
  // An offer or ping addressed to another session (docs/sqs.md, "Routes"): for that one.
  if ((m.kind == message_kind::offer || m.kind == message_kind::ping) && !m.session.empty() &&
      m.session != s->session_id) {
    s->hand_off(received);
    return;
  }
  switch (m.kind) {
    case message_kind::offer:
      asio::co_spawn(s->executor, take_offer(s, std::move(received), std::move(m), std::move(key)),
                     asio::detached);
      return;
    case message_kind::part:
      take_piece(s, received, m);
      return;
    case message_kind::commit:
      take_commit(s, received, m);
      return;
    case message_kind::ff:
      take_ff(s, received, m, std::move(key));
      return;
    case message_kind::ping:
      s->net.drop(queue, received.receipt_handle);
      asio::co_spawn(s->executor, answer_ping(s, std::move(m), std::move(key)), asio::detached);
      return;
    default:
      spdlog::warn("dropped a {} message on the request queue: it belongs on the response queue",
                   to_string(m.kind));
      s->net.drop(queue, received.receipt_handle);
      return;
  }
}

}  // namespace detail

}  // namespace funcie::sqs_backend
