// The SQS backend's local side, as its files share it: the session's state and how it
// takes each kind of message off the request queue.
#pragma once

#include "backend/sqs/link.hpp"
#include "tunnel/core.hpp"
#include "tunnel/route.hpp"

#include <boost/asio/cancellation_signal.hpp>

#include <deque>

namespace funcie::sqs_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace detail {

/// A request this session claimed (or a fire-and-forget one it took).
struct held_request {
  std::string key;  ///< The key its offer was sealed with: what answers it are sealed with.
  bool ff = false;
  bool committed = false;  ///< The forwarder committed it to this session (ff: always)
  bool delivered = false;
  std::int64_t expires_ms = 0;
  std::int64_t commit_by_ms = 0;  ///< Forgotten when not committed by then
  reassembly parts;
  std::optional<std::string> envelope;  ///< Whole, waiting for the commit
  /// Pieces of its streamed response stored on the response queue so far: its alives say
  /// so, and a forwarder that misses one of them ends the stream (docs/sqs.md, "Streamed
  /// responses").
  std::uint32_t pieces_sent = 0;
};

}  // namespace detail

struct sqs_consumer_session::state : tunnel::session_lifecycle {
  state(asio::any_io_executor ex, const tunnel::backend_options& opts,
        const aws::getenv_fn& getenv = detail::environment_snapshot())
      : executor(ex),
        net(ex, resolve_settings(opts, getenv),
            std::max(opts.timing.command_timeout * 3, milliseconds(3000)), 3, getenv),
        ready_signal(ex),
        alive_timer(ex),
        presence_timer(ex),
        sweep_timer(ex),
        route_texts(opts.routes) {
    // Checked by the caller (funcie connect refuses a bad route with its column).
    for (const auto& text : route_texts) routes.push_back(tunnel::parse_route(text));
  }

  asio::any_io_executor executor;
  detail::link net;
  std::map<std::string, detail::held_request> held;
  /// Offers claimed (id -> expiry), so a second delivery of one is ignored, and so are the
  /// late copies of its pieces and commit.
  std::map<std::string, std::int64_t> claimed;
  std::deque<tunnel::request> ready;
  detail::wakeup ready_signal;
  asio::steady_timer alive_timer;
  asio::steady_timer presence_timer;
  asio::steady_timer sweep_timer;
  asio::cancellation_signal stop_receiving;  ///< Ends the long poll in flight at close()
  int helpers = 0;  ///< Short-poll loops draining a backlog (drain_backlog)
  steady::time_point last_receive{};
  /// This session's routes (docs/sqs.md, "Routes"), as written and parsed, and the route
  /// tags that carry them to forwarders (made once, at open: the same values at each refresh).
  std::vector<std::string> route_texts;
  std::vector<tunnel::route> routes;
  std::map<std::string, std::string> route_tag_values;

  const settings& config() const { return net.config; }

  /// Releases a message on the request queue for another session (its offer, commit or
  /// piece), counted: a receive loop that handed something off pauses before its next
  /// receive (hand_off_pause), so that the other session's receive gets it rather than
  /// this one again (docs/sqs.md, "Routes").
  std::uint64_t handed_off = 0;
  void hand_off(const aws::sqs_json::received_message& received) {
    ++handed_off;
    net.release(config().request_queue, received);
  }
  /// Two of this side's release round trips: one for the release to land, one for the
  /// other session's next receive to arrive.
  milliseconds hand_off_pause() const {
    return std::clamp(*net.release_took * 2, milliseconds(20), milliseconds(500));
  }

  /// Whether this session wants `req`: any of its routes holds, or it has none.
  bool wants(const tunnel::request& req) const {
    if (routes.empty()) return true;
    tunnel::routed_invocation invocation(req.context.request_id, req.payload,
                                         req.context.client_context);
    return std::any_of(routes.begin(), routes.end(),
                       [&](const tunnel::route& r) { return invocation.holds(r); });
  }

  void lose(std::string reason) {
    if (!mark_lost(std::move(reason))) return;
    alive_timer.cancel();
    presence_timer.cancel();
    sweep_timer.cancel();
    ready_signal.notify();
  }

  void shutdown() {
    stopped = true;
    alive_timer.cancel();
    presence_timer.cancel();
    sweep_timer.cancel();
    ready_signal.notify();
    stop_receiving.emit(asio::cancellation_type::terminal);
  }

  /// Drops what can no longer matter: claims past their expiry, and requests whose pieces
  /// never all came (their forwarder gave up or died).
  void forget_old_claims() {
    const std::int64_t now = util::unix_ms_now();
    std::erase_if(claimed, [now](const auto& entry) { return entry.second < now; });
    std::erase_if(held, [now](const auto& entry) {
      const auto& h = entry.second;
      if (!h.committed && h.commit_by_ms < now) {
        spdlog::debug("request {} was claimed but never committed: its forwarder ran it itself",
                      entry.first);
        return true;
      }
      return !h.delivered && h.expires_ms < now;
    });
  }
};

namespace detail {

using session_state = sqs_consumer_session::state;

asio::awaitable<void> send_response(std::shared_ptr<session_state> s,
                                    const tunnel::response& answer, std::int64_t expires_ms,
                                    std::string key);
/// Takes one message off the request queue: an offer, a piece, a commit, a fire-and-forget
/// request or a ping.
void on_request_message(const std::shared_ptr<session_state>& s,
                        aws::sqs_json::received_message received);

}  // namespace detail

}  // namespace funcie::sqs_backend
