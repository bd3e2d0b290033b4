// The SQS forwarder's response queue: one poller while anybody waits, handing each message
// to the forward() (or ping) waiting for its id.
#include "backend/sqs/forwarder.hpp"
#include "tunnel/try_await.hpp"
#include "util/ids.hpp"

namespace funcie::sqs_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace detail {

namespace {

void on_response_message(const std::shared_ptr<forwarder_state>& s,
                         aws::sqs_json::received_message received) {
  const std::string& queue = s->config().response_queue;
  auto taken = s->net.take(queue, received, "response");
  if (!taken) return;
  message m = std::move(*taken);
  if (m.app != s->config().app) {
    s->net.release(queue, received);  // another app shares the queue
    return;
  }
  if (!on_response_queue(m.kind) || s->net.expired(m, "response")) {
    s->net.drop(queue, received.receipt_handle);
    return;
  }
  s->heard_from(m.session);
  const auto it = s->waiters.find(m.id);
  if (it == s->waiters.end()) {
    if (s->finished.contains(m.id)) {
      s->net.drop(queue, received.receipt_handle);  // late: its forward() has returned
    } else {
      s->net.release(queue, received);  // another function instance's
    }
    return;
  }
  s->net.drop(queue, received.receipt_handle);
  it->second->inbox.push_back(std::move(m));
  it->second->wake.notify();
}

/// Receives from the response queue while anybody waits.
asio::awaitable<void> poll_responses(std::shared_ptr<forwarder_state> s) {
  asio::steady_timer pause(s->executor);
  std::size_t last_got = 0;
  while (!s->waiters.empty() && !s->stopped && s->polling <= s->pollers_wanted()) {
    const auto [asked, wait] = s->net.next_receive(last_got, forwarder_wait_seconds);
    const std::int64_t started_ms = util::unix_ms_now();
    auto polled = co_await tunnel::try_await(s->net.client->receive_message(
        s->config().response_queue, asked, wait, visibility_seconds));
    std::vector<aws::sqs_json::received_message> got;
    if (polled) got = std::move(*polled.value);
    last_got = got.size();
    s->net.check_receive(got, started_ms, util::unix_ms_now(), wait, asked);
    if (!polled) {
      const std::string& error = polled.error;
      spdlog::debug("receiving from the response queue failed: {}", error);
      pause.expires_after(100ms);
      boost::system::error_code ignored;
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      continue;
    }
    s->saw_receive(got.size(), asked);
    for (auto& received : got) on_response_message(s, std::move(received));
  }
  --s->polling;
}

}  // namespace

registration::registration(std::shared_ptr<forwarder_state> s, std::string id,
                           std::int64_t expires_ms)
    : s_(std::move(s)),
      id_(std::move(id)),
      expires_ms_(expires_ms),
      waiter_(std::make_shared<waiter>(s_->executor)) {
  s_->waiters[id_] = waiter_;
  while (s_->polling < s_->pollers_wanted()) {
    ++s_->polling;
    asio::co_spawn(s_->executor, poll_responses(s_), asio::detached);
  }
}

registration::~registration() {
  s_->waiters.erase(id_);
  auto& finished = s_->finished;
  finished[id_] = expires_ms_;
  if (finished.size() >= 2 * s_->finished_pruned_at + 64) {
    const std::int64_t now = util::unix_ms_now();
    std::erase_if(finished, [now](const auto& entry) { return entry.second < now; });
    s_->finished_pruned_at = finished.size();
  }
}

/// Sends a ping and collects the pongs until the claim window (plus grace) ends. With
/// `first_only`, returns at the first pong. With sessions in `to`, one ping addressed to
/// each (docs/sqs.md, "Routes"), and returns once each has answered.
asio::awaitable<std::vector<message>> ping(std::shared_ptr<forwarder_state> s, bool first_only,
                                           std::vector<std::string> to) {
  const std::string probe_id = util::random_hex(32);
  const std::int64_t expires_ms = util::unix_ms_now() + s->config().claim_window.count();
  registration reg(s, probe_id, expires_ms);
  const auto until = steady::now() + s->config().claim_window + s->config().claim_grace;
  message m;
  m.kind = message_kind::ping;
  m.app = s->config().app;
  m.id = probe_id;
  m.expires_ms = expires_ms;
  std::vector<std::string> bodies;
  for (const auto& session : to) {
    m.session = session;
    bodies.push_back(s->net.body_of(m));
  }
  if (bodies.empty()) bodies.push_back(s->net.body_of(m));
  co_await s->net.send_all(s->config().request_queue, std::move(bodies));
  std::vector<message> pongs;
  std::set<std::string> waiting(to.begin(), to.end());
  while (steady::now() < until) {
    auto& w = reg.get();
    if (w.inbox.empty()) co_await w.wake.wait_until(until);
    while (!w.inbox.empty()) {
      if (w.inbox.front().kind == message_kind::pong) {
        waiting.erase(w.inbox.front().session);
        pongs.push_back(std::move(w.inbox.front()));
      }
      w.inbox.pop_front();
    }
    if (first_only && !pongs.empty()) break;
    if (!to.empty() && waiting.empty()) break;
  }
  co_return pongs;
}

}  // namespace detail

}  // namespace funcie::sqs_backend
