// `funcie status` on SQS: a ping on the request queue, the pongs collected for one claim
// window.
#include "backend/sqs/forwarder.hpp"
#include "tunnel/consumer_info.hpp"
#include "tunnel/try_await.hpp"

namespace funcie::sqs_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

using namespace detail;

// ------------------------------------------------------------------------------------------
// Status

asio::awaitable<std::vector<tunnel::consumer_info>> list_consumers(
    asio::any_io_executor executor, const tunnel::backend_options& options) {
  auto s = std::make_shared<forwarder_state>(executor, options);
  if (s->config().response_queue.empty()) {
    throw tunnel::backend_error(
        "cannot list consumers without a response queue (FUNCIE_RESPONSE_QUEUE_URL)");
  }
  // Who is connected, from the tags (one ListQueueTags): one ping addressed to each
  // (docs/sqs.md, "Routes"), since a message on the request queue reaches one session only.
  // Without the tags, one ping that whoever takes it answers.
  std::vector<std::string> to;
  auto tags = co_await tunnel::try_await(s->net.client->list_queue_tags(s->config().request_queue));
  if (tags) {
    for (const auto& session :
         read_presence(*tags.value, s->config().app, util::unix_ms_now(), s->config().keys)
             .sessions) {
      to.push_back(session.id);
    }
  } else {
    spdlog::debug("cannot read the presence tags of {}: {}", s->net.where, tags.error);
  }
  auto pinged = co_await tunnel::try_await(ping(s, false, to));
  s->stopped = true;
  if (!pinged)
    throw tunnel::backend_error(fmt::format("cannot list the consumers: {}", pinged.error));
  const std::vector<message>& pongs = *pinged.value;
  const std::int64_t now_ms = util::unix_ms_now();
  std::vector<tunnel::consumer_info> out;
  std::set<std::string> seen;
  for (const auto& pong : pongs) {
    if (!seen.insert(pong.session).second) continue;
    tunnel::consumer_info entry;
    entry.session = pong.session;
    if (const auto card = tunnel::decode_consumer_card(pong.data)) {
      entry.host = card->host;
      entry.pid = card->pid;
      entry.since_ms = card->since_ms;
      entry.in_flight = card->in_flight;
      // A pong is the session's heartbeat: its age is how long ago it answered. at_ms is
      // by the consumer's clock (the same one when status runs on the developer's machine);
      // a clock behind ours cannot make it negative.
      if (card->at_ms) entry.heartbeat_age_ms = std::max<std::int64_t>(0, now_ms - *card->at_ms);
      entry.routes = card->routes;
    }
    out.push_back(std::move(entry));
  }
  co_return out;
}

}  // namespace funcie::sqs_backend
