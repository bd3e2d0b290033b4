// The SQS forwarder's wait for the answer to a committed request: a whole response, or the
// pieces of a streamed one in order, with the heartbeat and the deadline watched throughout
// (docs/sqs.md, "Who runs a request" and "Streamed responses").
#include "backend/sqs/forwarder.hpp"

#include "tunnel/envelope.hpp"

#include <utility>
#include <variant>

namespace funcie::sqs_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace detail {

namespace {

/// The most bytes of a stream's pieces a forwarder keeps before their turn.
constexpr std::size_t max_held_stream_bytes = 16 * 1024 * 1024;
/// ... and the most pieces (a piece is at least a message, so memory stays bounded).
constexpr std::size_t max_held_stream_pieces = 4096;
/// The largest envelope of one message kind's parts.
constexpr std::size_t max_envelope_bytes = tunnel::max_header_bytes + tunnel::max_body_bytes + 1024;

/// The rest of a streamed answer.
class sqs_pieces final : public tunnel::response_pieces {
 public:
  sqs_pieces(std::shared_ptr<forwarder_state> s, std::shared_ptr<answer_wait> w)
      : state_(std::move(s)), wait_(std::move(w)) {}

  asio::awaitable<tunnel::forward_outcome> next(steady::time_point give_up_at) override {
    if (!wait_->streaming) {
      co_return tunnel::failed("Funcie.BadResponse", "read past the end of a streamed response");
    }
    co_return co_await await_answer(state_, wait_, give_up_at);
  }

 private:
  std::shared_ptr<forwarder_state> state_;
  std::shared_ptr<answer_wait> wait_;
};

/// The decoded response in `envelope`, or why it is not this request's answer from its owner.
std::variant<tunnel::response, std::string> read_envelope(const answer_wait& w,
                                                          const std::string& envelope) {
  tunnel::response answer;
  try {
    answer = tunnel::decode_response(envelope);
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
  if (answer.id != w.id || answer.app != w.app || answer.consumer != w.owner) {
    return std::string("it carries another request id, app or session");
  }
  return answer;
}

/// Passes on the next piece once it is in: answered, or nullopt while it has not come.
std::optional<tunnel::forward_outcome> next_piece_in(answer_wait& w) {
  const auto it = w.early.find(w.next_piece);
  if (it == w.early.end()) return std::nullopt;
  const std::string envelope = std::move(it->second);
  w.early.erase(it);
  w.held_bytes -= std::min(w.held_bytes, envelope.size());
  auto read = read_envelope(w, envelope);
  if (auto* why = std::get_if<std::string>(&read)) return tunnel::bad_response(*why);
  auto& answer = std::get<tunnel::response>(read);
  if (!answer.is_piece() || answer.piece != w.next_piece) {
    return tunnel::bad_response("a piece message carries another piece of the stream");
  }
  ++w.next_piece;
  w.streaming = answer.more;
  // Progress: what the owner said it stored is given a heartbeat more from now.
  w.gap_since = w.stored > w.next_piece ? steady::now() : steady::time_point{};
  return tunnel::answered(std::move(answer));
}

/// Takes a `piece` message: its part is kept until the piece is whole and its turn comes.
std::optional<tunnel::forward_outcome> take_piece(answer_wait& w, const message& m) {
  if (m.piece < w.next_piece || w.early.contains(m.piece)) return std::nullopt;  // a copy
  std::optional<std::string> whole;
  try {
    whole = w.partial[m.piece].add(m, max_envelope_bytes);
  } catch (const std::exception& e) {
    return tunnel::bad_response(e.what());
  }
  w.held_bytes += m.data.size();
  if (w.held_bytes > max_held_stream_bytes ||
      w.partial.size() + w.early.size() > max_held_stream_pieces) {
    return tunnel::bad_response(fmt::format(
        "more than {} MiB or {} pieces of the stream came before piece {}, which did not",
        max_held_stream_bytes >> 20, max_held_stream_pieces, w.next_piece));
  }
  if (!whole) return std::nullopt;
  w.partial.erase(m.piece);
  w.early.emplace(m.piece, std::move(*whole));
  return next_piece_in(w);
}

}  // namespace

asio::awaitable<tunnel::forward_outcome> await_answer(std::shared_ptr<forwarder_state> s,
                                                      std::shared_ptr<answer_wait> w,
                                                      steady::time_point give_up_at) {
  auto& inbox = w->reg.get();
  while (true) {
    if (auto ready = next_piece_in(*w)) {
      if (ready->outcome == tunnel::forward_outcome::kind::answered && ready->answer.more) {
        ready->pieces = std::make_shared<sqs_pieces>(s, w);
      }
      co_return std::move(*ready);
    }
    const auto now = steady::now();
    // Any message of the owner's, for this request or another one, says it is alive; while
    // the response queue is backlogged its messages may wait behind others', so its silence
    // is given longer (silence_bound).
    w->last_heard = std::max(w->last_heard, s->last_heard_from(w->owner));
    const milliseconds bound = s->silence_bound();
    if (now - w->last_heard > bound) {
      co_return tunnel::failed(
          "Funcie.ConsumerLost",
          fmt::format("the consumer (session {}) stopped answering on {} for more "
                      "than {} ms while running the request",
                      w->owner.substr(0, 8), s->net.where, bound.count()));
    }
    if (w->gap_since != steady::time_point{} && now - w->gap_since > bound) {
      co_return tunnel::broker_lost(
          s->net.where, fmt::format("piece {} of the streamed response, which the consumer "
                                    "stored on the queue, did not come within {} ms",
                                    w->next_piece, bound.count()));
    }
    if (now >= give_up_at) {
      co_return tunnel::timed_out(w->owner,
                                  std::chrono::duration_cast<milliseconds>(now - w->started));
    }
    if (inbox.inbox.empty()) {
      // A backlog that clears wakes this wait (state::saw_receive).
      auto until = std::min(give_up_at, w->last_heard + bound + 1ms);
      if (w->gap_since != steady::time_point{}) {
        until = std::min(until, w->gap_since + bound + 1ms);
      }
      co_await inbox.wake.wait_until(until);
      continue;
    }
    message m = std::move(inbox.inbox.front());
    inbox.inbox.pop_front();
    if (m.kind != message_kind::claim && m.kind != message_kind::alive &&
        m.kind != message_kind::response && m.kind != message_kind::piece) {
      spdlog::warn("dropped a {} message on the response queue for request {}", to_string(m.kind),
                   w->id);
      continue;
    }
    if (m.session != w->owner) {
      if (m.kind != message_kind::claim) {
        spdlog::warn("dropped a {} for request {} from session {}, which did not claim it",
                     to_string(m.kind), w->id, m.session.substr(0, 8));
      }
      continue;  // another session's claim (a second delivery of the offer): never committed
    }
    w->last_heard = steady::now();
    if (m.kind == message_kind::alive) {
      if (m.sent > w->stored) {
        w->stored = m.sent;
        if (w->stored > w->next_piece && w->gap_since == steady::time_point{}) {
          w->gap_since = steady::now();
        }
      }
      continue;
    }
    if (m.kind == message_kind::piece) {
      if (auto outcome = take_piece(*w, m)) {
        if (outcome->outcome == tunnel::forward_outcome::kind::answered && outcome->answer.more) {
          outcome->pieces = std::make_shared<sqs_pieces>(s, w);
        }
        co_return std::move(*outcome);
      }
      continue;
    }
    if (m.kind != message_kind::response) continue;
    // A whole response: the answer, or (after pieces) how the stream ends, e.g. the
    // consumer left.
    std::optional<std::string> whole;
    try {
      whole = w->whole.add(m, max_envelope_bytes);
    } catch (const std::exception& e) {
      co_return tunnel::bad_response(e.what());
    }
    if (!whole) continue;
    auto read = read_envelope(*w, *whole);
    if (auto* why = std::get_if<std::string>(&read)) co_return tunnel::bad_response(*why);
    if (std::get<tunnel::response>(read).is_piece()) {
      co_return tunnel::bad_response("a piece of the stream came as a whole response");
    }
    w->streaming = false;
    co_return tunnel::answered(std::move(std::get<tunnel::response>(read)));
  }
}

}  // namespace detail

}  // namespace funcie::sqs_backend
