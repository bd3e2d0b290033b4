#include "backend/sqs/sqs_backend.hpp"

#include "aws/sqs_client.hpp"
#include "backend/sqs/message.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

namespace funcie::sqs_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

/// SQS's own bounds of a message's size; the smallest is what a queue may be set to.
constexpr std::size_t min_message_bytes = 1024;
constexpr std::size_t max_message_bytes = 1024 * 1024;
/// Used when the queue's limit cannot be asked (no sqs:GetQueueAttributes): fits every queue
/// made with the old default.
constexpr std::size_t fallback_message_bytes = 256 * 1024;
/// How long a received message stays hidden from other receivers; every message is deleted
/// or made visible again at once, so this only matters for a receiver that dies holding one.
constexpr int visibility_seconds = 30;
/// A forwarder's receive waits at most this long, so it stops soon after its last waiter.
constexpr int forwarder_wait_seconds = 1;
/// A consumer's long poll.
constexpr int consumer_wait_seconds = 20;
/// A fire-and-forget request means nothing after Lambda's longest timeout.
constexpr milliseconds ff_lifetime = 15min;
/// Pieces sent at once.
constexpr std::size_t max_parallel_sends = 8;
/// Rule 4 for fire-and-forget requests: sent before the session opened, minus clock skew.
constexpr std::int64_t ff_skew_ms = 1000;

// ---- settings ----------------------------------------------------------------------------

std::string variable(const aws::getenv_fn& getenv, const char* name) {
  const char* value = getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::int64_t integer_variable(const aws::getenv_fn& getenv, const char* name, std::int64_t fallback,
                              std::int64_t min, std::int64_t max) {
  const std::string text = variable(getenv, name);
  if (text.empty()) return fallback;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    throw tunnel::backend_config_error(
        fmt::format("{} must be a whole number from {} to {}", name, min, max));
  }
  return value;
}

void check_queue_url(const std::string& url, const char* what) {
  const bool http = url.starts_with("https://") || url.starts_with("http://");
  const auto slash = url.find('/', url.find("://") + 3);
  if (!http || slash == std::string::npos || slash + 1 >= url.size() || url.size() > 2048 ||
      std::any_of(url.begin(), url.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= ' '; })) {
    throw tunnel::backend_config_error(fmt::format(
        "the {} is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)", what));
  }
}

// ---- small helpers -------------------------------------------------------------------------

/// A timer used as a condition: wait() until notify() or a deadline.
class wakeup {
 public:
  explicit wakeup(asio::any_io_executor executor) : timer_(std::move(executor)) {}
  asio::awaitable<void> wait_until(steady::time_point until) {
    timer_.expires_at(until);
    boost::system::error_code ignored;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  void notify() { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
};

/// What every end of the SQS tunnel shares: the client and the queues' size limits.
struct link {
  link(asio::any_io_executor ex, settings conf, milliseconds attempt_timeout, int attempts)
      : executor(std::move(ex)), config(std::move(conf)) {
    credentials = std::make_shared<aws::credential_provider>(
        executor, [](const char* name) { return std::getenv(name); });
    aws::sqs_client_options options;
    options.region = config.service.region;
    options.endpoint = config.service.endpoint;
    options.tls.ca_file = config.ca_file;
    options.tls.verify = config.tls_verify;
    options.attempt_timeout = attempt_timeout;
    options.max_attempts = attempts;
    try {
      client = std::make_shared<aws::sqs_client>(executor, options, credentials);
    } catch (const std::exception& e) {
      throw tunnel::backend_config_error(
          fmt::format("bad SQS endpoint {}: {}", config.service.endpoint, e.what()));
    }
    where = fmt::format("SQS queue {}", config.request_queue);
  }

  asio::any_io_executor executor;
  settings config;
  std::shared_ptr<aws::credential_provider> credentials;
  std::shared_ptr<aws::sqs_client> client;
  std::string where;
  std::map<std::string, std::size_t> limits;
  std::set<std::string> foreign_keys;  // key ids of others' messages, said once each

  /// The body that goes on a queue for `m`: its funcie-sqs text, sealed with the shared
  /// secret's key when there is one (docs/security.md).
  /// `key_id`: the key to seal with (the one the message answered came with, so that a
  /// side still on the previous secret during a rotation can open it); empty: the current.
  std::string body_of(const message& m, std::string_view key_id = {}) const {
    return config.keys.seal_text(encode(m), key_id);
  }

  /// The message in a body taken off `queue` (named `which` in logs), or nullopt once the
  /// body has been dealt with: deleted with one log line when it is not funcie's or fails
  /// the seal check; left for others when it may be another app's (sealed with a key this
  /// side does not hold: said once per key id, in case the secrets were meant to match).
  /// `key_id`, when given, is set to the id of the key it was sealed with.
  std::optional<message> take(const std::string& queue,
                              const aws::sqs_json::received_message& received,
                              std::string_view which, std::string* key_id = nullptr) {
    try {
      return decode(config.keys.open(received.body, key_id));
    } catch (const tunnel::seal_error& e) {
      const auto key = tunnel::keyring::key_id_of(received.body);
      if (key && config.keys.enabled() && !config.keys.holds(*key)) {
        if (foreign_keys.insert(*key).second) {
          spdlog::warn(
              "messages on the {} queue sealed with key {}, which this side does not "
              "hold, are left for whoever holds it: {}",
              which, *key, e.what());
        }
        release(queue, received.receipt_handle);
        return std::nullopt;
      }
      spdlog::warn("dropped a message on the {} queue: {}", which, e.what());
    } catch (const std::exception& e) {
      spdlog::warn("dropped a message on the {} queue that is not funcie's: {}", which, e.what());
    }
    drop(queue, received.receipt_handle);
    return std::nullopt;
  }

  /// The most bytes an envelope piece's body may take on `queue`: the queue's limit (see
  /// queue_limit), less what sealing adds.
  asio::awaitable<std::size_t> limit_of(std::string queue) {
    const std::size_t limit = co_await queue_limit(std::move(queue));
    if (!config.keys.enabled()) co_return limit;
    // sealed64: the first line (at most 36 bytes), then base64 (4 characters per 3 bytes)
    // of the nonce (12), the body and the tag (16).
    constexpr std::size_t first_line = 36, nonce_and_tag = 12 + 16;
    co_return (limit - first_line) / 4 * 3 - nonce_and_tag;
  }

  /// The size limit of `queue`'s messages: the setting, else the queue's attribute (asked
  /// once), else 256 KiB. `strict`: every refusal is thrown (a consumer checks its queues
  /// and permissions so at start); otherwise only a missing queue.
  asio::awaitable<std::size_t> queue_limit(std::string queue, bool strict = false) {
    if (config.max_message_bytes != 0 && !strict) co_return config.max_message_bytes;
    if (const auto it = limits.find(queue); it != limits.end()) co_return it->second;
    std::size_t limit = fallback_message_bytes;
    try {
      const std::vector<std::string> names{"MaximumMessageSize"};
      const auto attributes = co_await client->get_queue_attributes(queue, names);
      const auto it = attributes.find("MaximumMessageSize");
      if (it != attributes.end()) {
        std::size_t value = 0;
        const auto [end, ec] =
            std::from_chars(it->second.data(), it->second.data() + it->second.size(), value);
        if (ec == std::errc() && value >= min_message_bytes && value <= max_message_bytes) {
          limit = value;
        }
      }
    } catch (const aws::sqs_error& e) {
      if (strict || e.cause() == aws::sqs_error::kind::queue_missing) throw;
      spdlog::debug("cannot ask the size limit of {} ({}); using {} bytes", queue, e.what(),
                    fallback_message_bytes);
    }
    if (config.max_message_bytes != 0) limit = config.max_message_bytes;
    limits[queue] = limit;
    co_return limit;
  }

  /// Fire and forget: a message nobody needs any more, or one for another receiver.
  void drop(const std::string& queue, const std::string& receipt) {
    asio::co_spawn(
        executor,
        [c = client, queue, receipt]() -> asio::awaitable<void> {
          try {
            co_await c->delete_message(queue, receipt);
          } catch (const std::exception& e) {
            spdlog::debug("could not delete a message from {}: {}", queue, e.what());
          }
        },
        asio::detached);
  }
  void release(const std::string& queue, const std::string& receipt) {
    asio::co_spawn(
        executor,
        [c = client, queue, receipt]() -> asio::awaitable<void> {
          try {
            co_await c->change_message_visibility(queue, receipt, 0);
          } catch (const std::exception& e) {
            spdlog::debug("could not release a message on {}: {}", queue, e.what());
          }
        },
        asio::detached);
  }

  /// Sends every body, at most max_parallel_sends at once. Throws the first failure.
  asio::awaitable<void> send_all(std::string queue, std::vector<std::string> bodies) {
    if (bodies.size() == 1) {
      co_await client->send_message(queue, bodies.front());
      co_return;
    }
    struct batch {
      explicit batch(asio::any_io_executor ex) : done(std::move(ex)) {}
      std::size_t next = 0;
      std::size_t running = 0;
      std::string error;
      std::exception_ptr first;
      wakeup done;
    };
    auto b = std::make_shared<batch>(executor);
    auto shared_bodies = std::make_shared<std::vector<std::string>>(std::move(bodies));
    std::function<void()> start_more;
    auto c = client;
    // Each finished send starts the next one.
    start_more = [b, shared_bodies, c, queue, ex = executor, &start_more]() {
      while (b->running < max_parallel_sends && b->next < shared_bodies->size() && !b->first) {
        const std::size_t index = b->next++;
        ++b->running;
        asio::co_spawn(
            ex,
            [c, queue, shared_bodies, index]() -> asio::awaitable<void> {
              co_await c->send_message(queue, (*shared_bodies)[index]);
            },
            [b, &start_more](std::exception_ptr error) {
              --b->running;
              if (error && !b->first) b->first = error;
              start_more();
              if (b->running == 0) b->done.notify();
            });
      }
    };
    start_more();
    while (b->running > 0) co_await b->done.wait_until(steady::time_point::max());
    if (b->first) std::rethrow_exception(b->first);
  }
};

}  // namespace

settings resolve_settings(const tunnel::backend_options& options, const aws::getenv_fn& getenv) {
  tunnel::check_app(options.app);
  const std::string_view url = options.url;
  if (url.size() != 6 || (url[0] | 0x20) != 's' || (url[1] | 0x20) != 'q' ||
      (url[2] | 0x20) != 's' || url.substr(3) != "://") {
    throw tunnel::backend_config_error(
        "the SQS backend URL is just sqs:// (the queues come from FUNCIE_REQUEST_QUEUE_URL and "
        "FUNCIE_RESPONSE_QUEUE_URL, or --request-queue and --response-queue)");
  }
  if (options.timing.heartbeat < 600ms) {
    throw tunnel::backend_config_error(
        fmt::format("heartbeat {} ms is too short for SQS: use at least 600 ms",
                    options.timing.heartbeat.count()));
  }
  settings out;
  out.app = options.app;
  out.request_queue = options.sqs.request_queue_url;
  if (out.request_queue.empty()) out.request_queue = variable(getenv, "FUNCIE_REQUEST_QUEUE_URL");
  if (out.request_queue.empty()) out.request_queue = variable(getenv, "LAMBDA_PROXY_REQ_QUEUE_URL");
  out.response_queue = options.sqs.response_queue_url;
  if (out.response_queue.empty()) {
    out.response_queue = variable(getenv, "FUNCIE_RESPONSE_QUEUE_URL");
  }
  if (out.response_queue.empty()) {
    out.response_queue = variable(getenv, "LAMBDA_PROXY_RESP_QUEUE_URL");
  }
  if (out.request_queue.empty()) {
    throw tunnel::backend_config_error(
        "no request queue: set FUNCIE_REQUEST_QUEUE_URL (or --request-queue) to the queue's URL");
  }
  check_queue_url(out.request_queue, "request queue (FUNCIE_REQUEST_QUEUE_URL)");
  if (!out.response_queue.empty()) {
    check_queue_url(out.response_queue, "response queue (FUNCIE_RESPONSE_QUEUE_URL)");
    if (out.response_queue == out.request_queue) {
      throw tunnel::backend_config_error(
          "the request and response queues are the same queue: use two queues");
    }
  }
  try {
    out.service = aws::resolve_service(getenv, "sqs", out.request_queue);
  } catch (const std::exception& e) {
    throw tunnel::backend_config_error(e.what());
  }
  out.ca_file = options.ca_file;
  if (out.ca_file.empty()) out.ca_file = variable(getenv, "AWS_CA_BUNDLE");
  out.tls_verify = options.tls_verify;
  out.keys = options.keys;
  out.heartbeat = options.timing.heartbeat;
  out.command_timeout = options.timing.command_timeout;
  out.claim_window =
      milliseconds(integer_variable(getenv, "FUNCIE_SQS_CLAIM_MS", 2000, 100, 60000));
  out.absent_for =
      milliseconds(integer_variable(getenv, "FUNCIE_SQS_ABSENT_MS", 30000, 0, 3600 * 1000));
  out.receive_batch =
      static_cast<int>(integer_variable(getenv, "FUNCIE_SQS_RECEIVE_BATCH", 10, 1, 10));
  out.max_message_bytes = static_cast<std::size_t>(integer_variable(
      getenv, "FUNCIE_SQS_MAX_MESSAGE_BYTES", 0, 0, static_cast<std::int64_t>(max_message_bytes)));
  if (out.max_message_bytes != 0 && out.max_message_bytes < min_message_bytes) {
    throw tunnel::backend_config_error(
        fmt::format("FUNCIE_SQS_MAX_MESSAGE_BYTES must be at least {}", min_message_bytes));
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Forwarder

namespace {

/// One forward() (or probe) waiting for messages about its id.
struct waiter {
  explicit waiter(asio::any_io_executor ex) : wake(std::move(ex)) {}
  std::deque<message> inbox;
  wakeup wake;
};

}  // namespace

struct sqs_forwarder_backend::state {
  state(asio::any_io_executor ex, const tunnel::backend_options& opts)
      : executor(ex),
        net(ex, resolve_settings(opts, [](const char* name) { return std::getenv(name); }),
            opts.timing.command_timeout, 2) {}

  asio::any_io_executor executor;
  link net;
  std::unordered_map<std::string, std::shared_ptr<waiter>> waiters;
  /// Ids this process waited for and no longer does, until their messages expire (Unix
  /// ms): a late `alive` or piece for one is deleted, not passed round to other instances.
  std::unordered_map<std::string, std::int64_t> finished;
  std::size_t finished_pruned_at = 0;
  bool polling = false;
  bool stopped = false;
  steady::time_point absent_until{};
  steady::time_point last_probe{};
  bool probing = false;
  steady::time_point backoff_until{};
  milliseconds backoff{1000};

  const settings& config() const { return net.config; }

  void enter_backoff(std::string_view what) {
    if (steady::now() < backoff_until) return;
    backoff_until = steady::now() + backoff;
    spdlog::warn("{} unusable ({}); invocations run in the cloud for the next {} ms", net.where,
                 what, backoff.count());
    backoff = std::min(backoff * 2, milliseconds(5000));
  }
  void reset_backoff() { backoff = 1000ms; }

  void mark_present() { absent_until = {}; }
  void mark_absent() { absent_until = steady::now() + config().absent_for; }
};

namespace {

using forwarder_state = sqs_forwarder_backend::state;

void on_response_message(const std::shared_ptr<forwarder_state>& s,
                         aws::sqs_json::received_message received) {
  const std::string& queue = s->config().response_queue;
  auto taken = s->net.take(queue, received, "response");
  if (!taken) return;
  message m = std::move(*taken);
  if (m.app != s->config().app) {
    s->net.release(queue, received.receipt_handle);  // another app shares the queue
    return;
  }
  if (m.expires_ms != 0 && m.expires_ms < util::unix_ms_now()) {
    s->net.drop(queue, received.receipt_handle);
    return;
  }
  const auto it = s->waiters.find(m.id);
  if (it == s->waiters.end()) {
    if (s->finished.contains(m.id)) {
      s->net.drop(queue, received.receipt_handle);  // late: its forward() has returned
    } else {
      s->net.release(queue, received.receipt_handle);  // another function instance's
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
  while (!s->waiters.empty() && !s->stopped) {
    std::vector<aws::sqs_json::received_message> got;
    std::string error;
    try {
      got = co_await s->net.client->receive_message(s->config().response_queue,
                                                    s->config().receive_batch,
                                                    forwarder_wait_seconds, visibility_seconds);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      spdlog::debug("receiving from the response queue failed: {}", error);
      pause.expires_after(100ms);
      boost::system::error_code ignored;
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      continue;
    }
    for (auto& received : got) on_response_message(s, std::move(received));
  }
  s->polling = false;
}

/// Registers a waiter for `id` (and starts the poller); unregisters when destroyed.
class registration {
 public:
  /// `expires_ms`: when messages about `id` stop meaning anything.
  registration(std::shared_ptr<forwarder_state> s, std::string id, std::int64_t expires_ms)
      : s_(std::move(s)),
        id_(std::move(id)),
        expires_ms_(expires_ms),
        waiter_(std::make_shared<waiter>(s_->executor)) {
    s_->waiters[id_] = waiter_;
    if (!s_->polling) {
      s_->polling = true;
      asio::co_spawn(s_->executor, poll_responses(s_), asio::detached);
    }
  }
  ~registration() {
    s_->waiters.erase(id_);
    auto& finished = s_->finished;
    finished[id_] = expires_ms_;
    if (finished.size() >= 2 * s_->finished_pruned_at + 64) {
      const std::int64_t now = util::unix_ms_now();
      std::erase_if(finished, [now](const auto& entry) { return entry.second < now; });
      s_->finished_pruned_at = finished.size();
    }
  }
  registration(const registration&) = delete;
  registration& operator=(const registration&) = delete;
  waiter& get() { return *waiter_; }

 private:
  std::shared_ptr<forwarder_state> s_;
  std::string id_;
  std::int64_t expires_ms_;
  std::shared_ptr<waiter> waiter_;
};

std::string consumer_info_json(const std::string& host, std::int64_t pid, std::int64_t since_ms,
                               std::int64_t in_flight) {
  boost::json::object info;
  info["host"] = host;
  info["pid"] = pid;
  info["since_ms"] = since_ms;
  info["in_flight"] = in_flight;
  info["version"] = 1;
  return boost::json::serialize(info);
}

/// Sends a ping and collects the pongs until the claim window (plus grace) ends. With
/// `first_only`, returns at the first pong.
asio::awaitable<std::vector<message>> ping(std::shared_ptr<forwarder_state> s, bool first_only) {
  const std::string probe_id = util::random_hex(32);
  const std::int64_t expires_ms = util::unix_ms_now() + s->config().claim_window.count();
  registration reg(s, probe_id, expires_ms);
  const auto until = steady::now() + s->config().claim_window + s->config().claim_grace;
  message m;
  m.kind = message_kind::ping;
  m.app = s->config().app;
  m.id = probe_id;
  m.expires_ms = expires_ms;
  co_await s->net.client->send_message(s->config().request_queue, s->net.body_of(m));
  std::vector<message> pongs;
  while (steady::now() < until) {
    auto& w = reg.get();
    if (w.inbox.empty()) co_await w.wake.wait_until(until);
    while (!w.inbox.empty()) {
      if (w.inbox.front().kind == message_kind::pong) pongs.push_back(std::move(w.inbox.front()));
      w.inbox.pop_front();
    }
    if (first_only && !pongs.empty()) break;
  }
  co_return pongs;
}

/// While nobody is known to be connected: one ping in the background per claim window.
void maybe_probe(const std::shared_ptr<forwarder_state>& s) {
  if (s->probing || steady::now() - s->last_probe < s->config().claim_window) return;
  s->probing = true;
  s->last_probe = steady::now();
  asio::co_spawn(
      s->executor,
      [s]() -> asio::awaitable<void> {
        try {
          const auto pongs = co_await ping(s, true);
          if (!pongs.empty()) {
            spdlog::info("a consumer answered on {}: forwarding invocations again", s->net.where);
            s->mark_present();
          }
        } catch (const std::exception& e) {
          spdlog::debug("presence probe on {} failed: {}", s->net.where, e.what());
        }
        s->probing = false;
      },
      asio::detached);
}

asio::awaitable<tunnel::forward_outcome> fire_and_forget(std::shared_ptr<forwarder_state> s,
                                                         const tunnel::request& req) {
  std::string error;
  try {
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
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) {
    s->enter_backoff(error);
    co_return tunnel::not_taken(fmt::format("could not queue the request: {}", error));
  }
  s->reset_backoff();
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
  if (started < s->backoff_until) {
    co_return tunnel::not_taken(
        fmt::format("backing off from {} for {} ms more", s->net.where,
                    std::chrono::duration_cast<milliseconds>(s->backoff_until - started).count()));
  }
  if (!tunnel::is_valid_id(req.id)) co_return tunnel::not_taken("invalid request id");
  std::optional<tunnel::request> relabelled;
  if (req.app != config.app) {
    relabelled = req;
    relabelled->app = config.app;
  }
  const tunnel::request& request = relabelled ? *relabelled : req;
  if (config.response_queue.empty()) co_return co_await fire_and_forget(s, request);
  if (started < s->absent_until) {
    maybe_probe(s);
    co_return tunnel::not_taken("no consumer answered the last offer or ping");
  }
  if (give_up_at - started < 1ms) co_return tunnel::not_taken("no time left before the deadline");

  // 1. Offer: the first piece, with the claim window.
  const std::int64_t expires_ms =
      request.answer_by_ms != 0
          ? request.answer_by_ms
          : util::unix_ms_now() +
                std::chrono::duration_cast<milliseconds>(give_up_at - started).count();
  registration reg(s, request.id, expires_ms);
  std::vector<message> pieces;
  std::int64_t claim_by_ms = 0;
  std::string error;
  bool maybe_stored = false;
  try {
    const std::size_t limit = co_await s->net.limit_of(config.request_queue);
    message proto;
    proto.kind = message_kind::offer;
    proto.app = config.app;
    proto.id = request.id;
    proto.expires_ms = expires_ms;
    claim_by_ms = util::unix_ms_now() + config.claim_window.count();
    proto.claim_by_ms = claim_by_ms;
    pieces = split(proto, tunnel::encode(request), limit);
    maybe_stored = true;
    co_await s->net.client->send_message(config.request_queue, s->net.body_of(pieces.front()));
  } catch (const aws::sqs_error& e) {
    error = e.what();
    // Refused for sure (missing queue, no permission, bad request): nobody can claim it.
    if (e.cause() != aws::sqs_error::kind::transport && e.cause() != aws::sqs_error::kind::server) {
      maybe_stored = false;
    }
  } catch (const std::exception& e) {
    error = e.what();
    maybe_stored = false;
  }
  if (!error.empty()) {
    s->enter_backoff(error);
    if (!maybe_stored)
      co_return tunnel::not_taken(fmt::format("could not offer the request: {}", error));
    // The offer may be stored although its answer was lost: a consumer may claim it, so
    // wait out the claim window as for any offer.
  } else {
    s->reset_backoff();
  }

  // 2. Wait for the claim (and then everything else) on the response queue.
  const auto claim_until = started + config.claim_window + config.claim_grace;
  std::optional<std::string> owner;
  steady::time_point last_heard{};
  reassembly parts;
  bool rest_sent = pieces.size() <= 1;
  auto& w = reg.get();
  while (true) {
    const auto now = steady::now();
    if (!owner && now >= claim_until) {
      s->mark_absent();
      co_return tunnel::not_taken(
          fmt::format("no consumer claimed it within {} ms", config.claim_window.count()));
    }
    if (owner && now - last_heard > config.heartbeat) {
      co_return tunnel::failed(
          "Funcie.ConsumerLost",
          fmt::format("the consumer (session {}) stopped answering on {} for more "
                      "than {} ms while running the request",
                      owner->substr(0, 8), s->net.where, config.heartbeat.count()));
    }
    if (now >= give_up_at) {
      co_return tunnel::failed("Funcie.Timeout",
                               owner ? "the local handler did not answer before the deadline"
                                     : "no consumer claimed the request before the deadline");
    }
    if (w.inbox.empty()) {
      auto until = give_up_at;
      if (!owner) until = std::min(until, claim_until);
      if (owner) until = std::min(until, last_heard + config.heartbeat + 1ms);
      co_await w.wake.wait_until(until);
      continue;
    }
    message m = std::move(w.inbox.front());
    w.inbox.pop_front();
    if (m.kind != message_kind::claim && m.kind != message_kind::alive &&
        m.kind != message_kind::response) {
      spdlog::warn("dropped a {} message on the response queue for request {}", to_string(m.kind),
                   request.id);
      continue;
    }
    if (!owner) {
      owner = m.session;
      s->mark_present();
    } else if (*owner != m.session) {
      spdlog::warn("dropped a {} for request {} from session {}, which did not claim it",
                   to_string(m.kind), request.id, m.session.substr(0, 8));
      continue;
    }
    last_heard = steady::now();
    if (!rest_sent) {
      // 3. The rest of a big request goes only to a claimed one.
      rest_sent = true;
      std::vector<std::string> bodies;
      for (std::size_t i = 1; i < pieces.size(); ++i) bodies.push_back(s->net.body_of(pieces[i]));
      pieces.clear();
      std::string send_error;
      try {
        co_await s->net.send_all(config.request_queue, std::move(bodies));
      } catch (const std::exception& e) {
        send_error = e.what();
      }
      if (!send_error.empty()) {
        co_return tunnel::failed("Funcie.BrokerLost",
                                 fmt::format("could not send the rest of the request to {} after a "
                                             "consumer claimed it: {}",
                                             s->net.where, send_error));
      }
    }
    if (m.kind != message_kind::response) continue;
    std::optional<std::string> whole;
    std::string bad;
    try {
      whole = parts.add(m, tunnel::max_header_bytes + tunnel::max_body_bytes + 1024);
    } catch (const std::exception& e) {
      bad = e.what();
    }
    if (!bad.empty()) {
      co_return tunnel::failed("Funcie.BadResponse",
                               fmt::format("the consumer's response could not be read: {}", bad));
    }
    if (!whole) continue;
    tunnel::response answer;
    try {
      answer = tunnel::decode_response(*whole);
    } catch (const std::exception& e) {
      bad = e.what();
    }
    if (bad.empty() &&
        (answer.id != request.id || answer.app != config.app || answer.consumer != *owner)) {
      bad = "it carries another request id, app or session";
    }
    if (!bad.empty()) {
      co_return tunnel::failed("Funcie.BadResponse",
                               fmt::format("the consumer's response could not be read: {}", bad));
    }
    co_return tunnel::answered(std::move(answer));
  }
}

// ------------------------------------------------------------------------------------------
// Consumer session

namespace {

/// A request this session claimed (or a fire-and-forget one it took).
struct held_request {
  std::string key;  ///< The key its offer was sealed with: what answers it are sealed with.
  bool ff = false;
  bool delivered = false;
  std::int64_t expires_ms = 0;
  reassembly parts;
};

}  // namespace

struct sqs_consumer_session::state {
  state(asio::any_io_executor ex, const tunnel::backend_options& opts)
      : executor(ex),
        net(ex, resolve_settings(opts, [](const char* name) { return std::getenv(name); }),
            std::max(opts.timing.command_timeout * 3, milliseconds(3000)), 3),
        session_id(util::random_hex(32)),
        ready_signal(ex),
        alive_timer(ex) {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) == 0) host = name;
    pid = static_cast<std::int64_t>(::getpid());
  }

  asio::any_io_executor executor;
  link net;
  std::string session_id;
  std::string host;
  std::int64_t pid = 0;
  std::int64_t since_ms = 0;
  std::int64_t in_flight = 0;
  bool opened = false;
  bool stopped = false;
  std::string lost;
  std::map<std::string, held_request> held;
  /// Offers claimed (id -> expiry), so a second delivery of one is ignored.
  std::map<std::string, std::int64_t> claimed;
  std::deque<tunnel::request> ready;
  wakeup ready_signal;
  asio::steady_timer alive_timer;
  asio::cancellation_signal stop_receiving;  ///< Ends the long poll in flight at close()
  steady::time_point last_receive{};

  const settings& config() const { return net.config; }

  void lose(std::string reason) {
    if (stopped || !lost.empty()) return;
    lost = std::move(reason);
    spdlog::warn("consumer session {} is over: {}", session_id, lost);
    alive_timer.cancel();
    ready_signal.notify();
  }

  void shutdown() {
    stopped = true;
    alive_timer.cancel();
    ready_signal.notify();
    stop_receiving.emit(asio::cancellation_type::terminal);
  }

  /// Drops what can no longer matter: claims past their expiry, and requests whose pieces
  /// never all came (their forwarder gave up or died).
  void forget_old_claims() {
    const std::int64_t now = util::unix_ms_now();
    std::erase_if(claimed, [now](const auto& entry) { return entry.second < now; });
    std::erase_if(held, [now](const auto& entry) {
      return !entry.second.delivered && entry.second.expires_ms != 0 &&
             entry.second.expires_ms < now;
    });
  }
};

namespace {

using session_state = sqs_consumer_session::state;

asio::awaitable<void> send_response(std::shared_ptr<session_state> s,
                                    const tunnel::response& answer, std::int64_t expires_ms,
                                    std::string key) {
  std::optional<tunnel::response> relabelled;
  if (answer.consumer != s->session_id || answer.app != s->config().app) {
    relabelled = answer;
    relabelled->consumer = s->session_id;
    relabelled->app = s->config().app;
  }
  std::string error;
  try {
    const std::size_t limit = co_await s->net.limit_of(s->config().response_queue);
    message proto;
    proto.kind = message_kind::response;
    proto.app = s->config().app;
    proto.id = answer.id;
    proto.session = s->session_id;
    proto.expires_ms = expires_ms;
    std::vector<std::string> bodies;
    for (const auto& piece :
         split(proto, tunnel::encode(relabelled ? *relabelled : answer), limit)) {
      bodies.push_back(s->net.body_of(piece, key));
    }
    co_await s->net.send_all(s->config().response_queue, std::move(bodies));
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) {
    throw tunnel::backend_error(
        fmt::format("cannot send the response for request {}: {}", answer.id, error));
  }
}

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

/// Adds a piece to a held request; delivers it once whole.
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
  if (whole) deliver(s, m.id, *whole);
}

asio::awaitable<void> take_offer(std::shared_ptr<session_state> s,
                                 aws::sqs_json::received_message received, message m,
                                 std::string key) {
  const std::string& queue = s->config().request_queue;
  if (s->claimed.contains(m.id) || s->held.contains(m.id)) {
    s->net.drop(queue, received.receipt_handle);  // delivered twice
    co_return;
  }
  if (m.claim_by_ms <= util::unix_ms_now() || s->config().response_queue.empty()) {
    spdlog::debug("dropped offer {}: its claim window is over", m.id);
    s->net.drop(queue, received.receipt_handle);
    co_return;
  }
  // Held before the claim is sent: the forwarder sends the other pieces once it sees the
  // claim, and they must find us ready.
  held_request entry;
  entry.key = key;
  entry.expires_ms = m.expires_ms;
  s->held.emplace(m.id, std::move(entry));
  s->claimed[m.id] = std::max(m.expires_ms, m.claim_by_ms);
  message claim;
  claim.kind = message_kind::claim;
  claim.app = s->config().app;
  claim.id = m.id;
  claim.session = s->session_id;
  claim.expires_ms = m.expires_ms;
  std::string error;
  try {
    co_await s->net.client->send_message(s->config().response_queue, s->net.body_of(claim, key));
  } catch (const std::exception& e) {
    error = e.what();
  }
  const bool in_time = error.empty() && util::unix_ms_now() < m.claim_by_ms;
  s->net.drop(queue, received.receipt_handle);
  if (!in_time) {
    s->held.erase(m.id);
    if (!error.empty()) {
      spdlog::warn("could not claim request {}: {}; it runs in the cloud", m.id, error);
    } else {
      spdlog::warn(
          "claimed request {} too late (its claim window ended); it runs in the cloud. If this "
          "repeats, check this machine's clock and its latency to SQS",
          m.id);
    }
    co_return;
  }
  add_piece(s, m);
}

void take_piece(const std::shared_ptr<session_state>& s,
                const aws::sqs_json::received_message& received, const message& m) {
  const std::string& queue = s->config().request_queue;
  if (!s->held.contains(m.id)) {
    s->net.release(queue, received.receipt_handle);  // for the session that holds it
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
  entry.expires_ms = m.expires_ms;
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
  pong.data = consumer_info_json(s->host, s->pid, s->since_ms, s->in_flight);
  try {
    co_await s->net.client->send_message(s->config().response_queue, s->net.body_of(pong, key));
  } catch (const std::exception& e) {
    spdlog::debug("could not answer a ping: {}", e.what());
  }
}

void on_request_message(const std::shared_ptr<session_state>& s,
                        aws::sqs_json::received_message received) {
  const std::string& queue = s->config().request_queue;
  if (s->stopped || !s->lost.empty()) {
    s->net.release(queue, received.receipt_handle);  // for the next session
    return;
  }
  std::string key;
  auto taken = s->net.take(queue, received, "request", &key);
  if (!taken) return;
  message m = std::move(*taken);
  if (m.app != s->config().app) {
    s->net.release(queue, received.receipt_handle);
    return;
  }
  if (m.expires_ms != 0 && m.expires_ms < util::unix_ms_now()) {
    s->net.drop(queue, received.receipt_handle);
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

asio::awaitable<void> receive_loop(std::shared_ptr<session_state> s) {
  asio::steady_timer pause(s->executor);
  milliseconds retry_pause = 100ms;
  s->last_receive = steady::now();
  while (!s->stopped && s->lost.empty()) {
    std::vector<aws::sqs_json::received_message> got;
    std::string error;
    try {
      got = co_await s->net.client->receive_message(s->config().request_queue,
                                                    s->config().receive_batch,
                                                    consumer_wait_seconds, visibility_seconds);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
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
    for (auto& received : got) on_request_message(s, std::move(received));
  }
}

/// Tells the forwarders of every request this session holds that it still runs them.
asio::awaitable<void> alive_loop(std::shared_ptr<session_state> s) {
  const milliseconds interval = std::max(s->config().heartbeat / 3, milliseconds(100));
  while (!s->stopped && s->lost.empty()) {
    s->alive_timer.expires_after(interval);
    boost::system::error_code ignored;
    co_await s->alive_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (s->stopped || !s->lost.empty()) break;
    std::vector<std::string> bodies;
    for (const auto& [id, entry] : s->held) {
      if (entry.ff) continue;
      message alive;
      alive.kind = message_kind::alive;
      alive.app = s->config().app;
      alive.id = id;
      alive.session = s->session_id;
      alive.expires_ms = entry.expires_ms;
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
  if (s->opened || s->stopped) {
    throw tunnel::backend_error("a consumer session can be opened once; make a new one");
  }
  s->since_ms = util::unix_ms_now();
  std::string error;
  try {
    // Both queues must exist and be ours to use: a clear error now rather than silence.
    co_await s->net.queue_limit(s->config().request_queue, true);
    if (!s->config().response_queue.empty()) {
      co_await s->net.queue_limit(s->config().response_queue, true);
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) {
    throw tunnel::backend_error(fmt::format("cannot join the tunnel: {}", error));
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
  asio::co_spawn(s->executor, receive_loop(s),
                 asio::bind_cancellation_slot(s->stop_receiving.slot(), asio::detached));
  asio::co_spawn(s->executor, alive_loop(s), asio::detached);
}

asio::awaitable<tunnel::request> sqs_consumer_session::next() {
  const std::shared_ptr<state> s = state_;
  if (!s->opened) throw tunnel::backend_error("the consumer session is not open");
  while (true) {
    if (s->stopped) throw tunnel::backend_error("the consumer session is closed");
    if (!s->lost.empty()) throw tunnel::backend_error(s->lost);
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
  if (it != s->held.end()) {
    expires = it->second.expires_ms;
    ff = it->second.ff;
    key = std::move(it->second.key);
    s->held.erase(it);
  }
  if (ff || s->config().response_queue.empty()) {
    spdlog::debug("request {} was fire-and-forget: its answer is dropped", answer.id);
    co_return;
  }
  co_await send_response(s, answer, expires, std::move(key));
}

asio::awaitable<void> sqs_consumer_session::close() {
  state_->shutdown();
  co_return;
}

// ------------------------------------------------------------------------------------------
// Status

asio::awaitable<std::vector<tunnel::consumer_info>> list_consumers(
    asio::any_io_executor executor, const tunnel::backend_options& options) {
  auto s = std::make_shared<forwarder_state>(executor, options);
  if (s->config().response_queue.empty()) {
    throw tunnel::backend_error(
        "cannot list consumers without a response queue (FUNCIE_RESPONSE_QUEUE_URL)");
  }
  std::vector<message> pongs;
  std::string error;
  try {
    pongs = co_await ping(s, false);
  } catch (const std::exception& e) {
    error = e.what();
  }
  s->stopped = true;
  if (!error.empty()) {
    throw tunnel::backend_error(fmt::format("cannot list the consumers: {}", error));
  }
  const std::int64_t now = util::unix_ms_now();
  std::vector<tunnel::consumer_info> out;
  std::set<std::string> seen;
  for (const auto& pong : pongs) {
    if (!seen.insert(pong.session).second) continue;
    tunnel::consumer_info entry;
    entry.session = pong.session;
    boost::system::error_code ec;
    const boost::json::value value = boost::json::parse(pong.data, ec);
    if (const auto* object = ec ? nullptr : value.if_object(); object != nullptr) {
      auto integer = [&](std::string_view field) -> std::int64_t {
        const auto* v = object->if_contains(field);
        if (v != nullptr && v->is_int64()) return v->as_int64();
        return 0;
      };
      if (const auto* h = object->if_contains("host"); h != nullptr && h->is_string()) {
        entry.host = std::string(h->as_string());
      }
      entry.pid = integer("pid");
      entry.since_ms = integer("since_ms");
      entry.in_flight = integer("in_flight");
    }
    entry.heartbeat_age_ms =
        std::max<std::int64_t>(0, now - pong.expires_ms + s->config().claim_window.count());
    out.push_back(std::move(entry));
  }
  co_return out;
}

}  // namespace funcie::sqs_backend
