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
#include <random>
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
/// How long a received message stays hidden from other receivers. Every message is deleted
/// or released as soon as it is read, so this only matters for a receive nobody reads any
/// more: a killed consumer's or a frozen function's long poll still pending on the server.
/// What it takes comes back within a second, inside the claim window.
constexpr int visibility_seconds = 1;
/// A message released for another receiver is visible again at once while fresh; one that
/// keeps coming back (nobody this side can use it) is hidden longer as it ages, up to this,
/// until it expires: never a tight loop (see link::release).
constexpr int max_release_seconds = 8;
constexpr std::int64_t release_fresh_ms = 3000;
/// Messages further in the future than this are not funcie's (Lambda's longest timeout plus
/// clock skew): dropped, so that a forged expiry cannot keep one circulating.
constexpr std::int64_t max_lifetime_ms = 16 * 60 * 1000;
/// SQS's limit of entries per batch call.
constexpr std::size_t max_batch_entries = 10;
/// A forwarder's receive waits at most this long, so it stops soon after its last waiter.
constexpr int forwarder_wait_seconds = 1;
/// A consumer's long poll.
constexpr int consumer_wait_seconds = 20;
/// A fire-and-forget request means nothing after Lambda's longest timeout.
constexpr milliseconds ff_lifetime = 15min;
/// A session's presence tag says "here until now + this many FUNCIE_SQS_PRESENCE_MS" and is
/// set again every FUNCIE_SQS_PRESENCE_MS: a killed session stops being offered invocations
/// within that (and costs each forwarder at most one claim window: see
/// forwarder_state::mark_absent).
constexpr int presence_ttl_periods = 3;
/// How often a connected session cleans the response queue (sweep_loop).
constexpr milliseconds sweep_every = 5s;
/// How long a commit waits for its consumer: after that, the consumer has forgotten its
/// claim (see commit_wait_ms) and the forwarder reports it lost.
constexpr milliseconds commit_lifetime = 10s;
/// A claim not committed by the offer's claim_by_ms plus this is forgotten.
constexpr std::int64_t commit_wait_ms = 10000;
/// A claim means nothing after the offer's claim_by_ms plus this (the forwarder waits
/// claim_by_ms + its grace, 500 ms, by its own clock).
constexpr std::int64_t claim_lifetime_ms = 2000;
/// An offer's claim window is taken as at most this long (FUNCIE_SQS_CLAIM_MS' largest):
/// a forged claim_by_ms far off keeps nothing held.
constexpr std::int64_t max_claim_window_ms = 60000;
/// Calls sent at once.
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

/// A random number in [0, n), n >= 1: jitter, nothing secret.
std::int64_t random_below(std::int64_t n) {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return std::uniform_int_distribution<std::int64_t>(0,
                                                     std::max<std::int64_t>(n, 1) - 1)(generator);
}

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

bool on_response_queue(message_kind kind) {
  return kind == message_kind::claim || kind == message_kind::alive ||
         kind == message_kind::response || kind == message_kind::pong;
}

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
      // Presence is read once, never retried in an invocation: a throttled or failed read
      // means the cloud runs it, at once.
      options.max_attempts = 1;
      single_attempt = std::make_shared<aws::sqs_client>(executor, options, credentials);
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
  std::shared_ptr<aws::sqs_client> single_attempt;  ///< The same, without retries
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
        release(queue, received);
        return std::nullopt;
      }
      spdlog::warn("dropped a message on the {} queue: {}", which, e.what());
    } catch (const std::exception& e) {
      spdlog::warn("dropped a message on the {} queue that is not funcie's: {}", which, e.what());
    }
    drop(queue, received.receipt_handle);
    return std::nullopt;
  }

  /// True when `m` means nothing any more, or claims to mean something for longer than any
  /// funcie message may (then also said once per queue, at debug level).
  bool expired(const message& m, std::string_view which) const {
    const std::int64_t now = util::unix_ms_now();
    if (m.expires_ms < now) return true;
    if (m.expires_ms > now + max_lifetime_ms) {
      spdlog::debug("dropped a {} on the {} queue that says it expires in more than {} min",
                    to_string(m.kind), which, max_lifetime_ms / 60000);
      return true;
    }
    return false;
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

  /// Fire and forget: a message nobody needs any more. Deletes asked for while handling
  /// one receive go out together, up to 10 per DeleteMessageBatch.
  void drop(const std::string& queue, const std::string& receipt) {
    auto& pending = deletes[queue];
    pending.push_back(receipt);
    if (pending.size() > 1) return;  // a flush is already on its way
    asio::post(executor, [this, alive = std::weak_ptr<bool>(token), queue] {
      if (alive.expired()) return;
      auto handles = std::move(deletes[queue]);
      deletes.erase(queue);
      for (std::size_t at = 0; at < handles.size(); at += max_batch_entries) {
        std::vector<std::string> chunk(
            handles.begin() + static_cast<std::ptrdiff_t>(at),
            handles.begin() +
                static_cast<std::ptrdiff_t>(std::min(handles.size(), at + max_batch_entries)));
        asio::co_spawn(
            executor,
            [c = client, queue, chunk = std::move(chunk)]() -> asio::awaitable<void> {
              try {
                if (chunk.size() == 1) {
                  co_await c->delete_message(queue, chunk.front());
                  co_return;
                }
                const auto failed = co_await c->delete_message_batch(queue, chunk);
                for (const auto& why : failed) {
                  if (!why.empty())
                    spdlog::debug("could not delete a message from {}: {}", queue, why);
                }
              } catch (const std::exception& e) {
                spdlog::debug("could not delete messages from {}: {}", queue, e.what());
              }
            },
            asio::detached);
      }
    });
  }
  /// Makes a message another receiver may need visible again: at once while it is fresh
  /// (a claim or response another instance waits for is read within its first seconds,
  /// however many instances share the queue), then hidden a second longer for each second of
  /// age past release_fresh_ms, up to max_release_seconds, until it expires: one nobody takes
  /// never loops.
  void release(const std::string& queue, const aws::sqs_json::received_message& received,
               bool at_once = false) {
    const std::int64_t age_ms =
        received.sent_timestamp_ms == 0
            ? 0
            : util::unix_ms_now() + client->clock_offset().count() - received.sent_timestamp_ms;
    const int seconds = at_once ? 0
                                : static_cast<int>(std::clamp<std::int64_t>(
                                      (age_ms - release_fresh_ms) / 1000, 0, max_release_seconds));
    asio::co_spawn(
        executor,
        [c = client, queue, receipt = received.receipt_handle, seconds]() -> asio::awaitable<void> {
          try {
            co_await c->change_message_visibility(queue, receipt, seconds);
          } catch (const std::exception& e) {
            spdlog::debug("could not release a message on {}: {}", queue, e.what());
          }
        },
        asio::detached);
  }

  /// Sends every body: up to 10 per SendMessageBatch (together at most the queue's size
  /// limit, which is also SQS's limit of a batch), at most max_parallel_sends calls at once;
  /// an entry the batch refused is sent again on its own. Throws the first failure.
  asio::awaitable<void> send_all(std::string queue, std::vector<std::string> bodies) {
    if (bodies.empty()) co_return;
    if (bodies.size() == 1) {
      co_await client->send_message(queue, bodies.front());
      co_return;
    }
    const auto known = limits.find(queue);
    const std::size_t batch_bytes = known != limits.end() ? known->second : fallback_message_bytes;
    auto batches = std::make_shared<std::vector<std::vector<std::string>>>();
    std::size_t bytes = 0;
    for (auto& body : bodies) {
      if (batches->empty() || batches->back().size() == max_batch_entries ||
          bytes + body.size() > batch_bytes) {
        batches->emplace_back();
        bytes = 0;
      }
      bytes += body.size();
      batches->back().push_back(std::move(body));
    }
    struct progress {
      explicit progress(asio::any_io_executor ex) : done(std::move(ex)) {}
      std::size_t next = 0;
      std::size_t running = 0;
      std::exception_ptr first;
      wakeup done;
    };
    auto p = std::make_shared<progress>(executor);
    auto c = client;
    // Each finished call starts the next one.
    std::function<void()> start_more = [&]() {
      while (p->running < max_parallel_sends && p->next < batches->size() && !p->first) {
        const std::size_t index = p->next++;
        ++p->running;
        asio::co_spawn(
            executor,
            [c, queue, batches, index]() -> asio::awaitable<void> {
              const auto& batch = (*batches)[index];
              if (batch.size() == 1) {
                co_await c->send_message(queue, batch.front());
                co_return;
              }
              const auto failed = co_await c->send_message_batch(queue, batch);
              for (std::size_t i = 0; i < failed.size(); ++i) {
                if (failed[i].empty()) continue;
                spdlog::debug("SendMessageBatch refused an entry ({}); sending it alone",
                              failed[i]);
                co_await c->send_message(queue, batch[i]);
              }
            },
            [p, &start_more](std::exception_ptr error) {
              --p->running;
              if (error && !p->first) p->first = error;
              start_more();
              if (p->running == 0) p->done.notify();
            });
      }
    };
    start_more();
    while (p->running > 0) co_await p->done.wait_until(steady::time_point::max());
    if (p->first) std::rethrow_exception(p->first);
  }

  /// MaxNumberOfMessages of the next receive: the setting, until a receive shows that the
  /// server holds a batched receive for its whole wait although a message came (as
  /// local-aws-sqs does); then 1, said once.
  int receive_batch() const { return batch_held ? 1 : config.receive_batch; }
  /// Looks at one receive that asked for more than one message: `started_ms` and
  /// `returned_ms` by our clock, `wait_seconds` its long poll.
  void check_receive(const std::vector<aws::sqs_json::received_message>& got,
                     std::int64_t started_ms, std::int64_t returned_ms, int wait_seconds,
                     int asked) {
    if (batch_held || asked <= 1 || got.empty()) return;
    // Most of the wait, and at most 1.5 s: far above what a busy server takes to answer.
    const std::int64_t held_ms = std::min<std::int64_t>(wait_seconds * 700, 1500);
    const std::int64_t offset = client->clock_offset().count();
    for (const auto& m : got) {
      // Only a first delivery: visible since it was sent (a released one became visible
      // again at some time nobody knows).
      if (m.sent_timestamp_ms == 0 || m.receive_count > 1) continue;
      // Available since then (by our clock): a server that honours the batch answers as soon
      // as one message is there, so it never holds one for most of a second.
      const std::int64_t sent = std::max(m.sent_timestamp_ms - offset, started_ms);
      if (returned_ms - sent > held_ms) {
        batch_held = true;
        spdlog::warn(
            "the SQS server at {} held a receive of up to {} messages ({} s long poll) for {} ms "
            "after a message came: receiving one message at a time "
            "from now on (set FUNCIE_SQS_RECEIVE_BATCH=1 for this server to skip the first "
            "slow receive)",
            config.service.endpoint, asked, wait_seconds, returned_ms - sent);
        return;
      }
    }
  }
  bool batch_held = false;
  std::map<std::string, std::vector<std::string>> deletes;     ///< queue -> receipts to delete
  std::shared_ptr<bool> token = std::make_shared<bool>(true);  ///< Expires with the link
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
  out.presence_every =
      milliseconds(integer_variable(getenv, "FUNCIE_SQS_PRESENCE_MS", 10000, 1000, 3600 * 1000));
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
  /// Presence from the request queue's tags (docs/sqs.md, "Presence").
  bool presence_known = false;    ///< A read succeeded once
  bool presence_reading = false;  ///< A read is under way
  bool tags_usable = true;        ///< False once ListQueueTags was refused: offer and learn
  steady::time_point next_presence_read{};
  presence seen;  ///< What the last successful read said
  steady::time_point presence_read_at{};
  bool said_presence_error = false;
  std::string unclaimed;  ///< The signature of the tags when an offer went unclaimed
  milliseconds presence_backoff{0};
  /// Without tags: after an unclaimed offer, nobody is assumed connected until then.
  steady::time_point absent_until{};
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

  /// Whether to offer an invocation: a session's tag is there, fresh, and changed since the
  /// last unclaimed offer (a killed session's tag costs one claim window, not one per call).
  bool present() const {
    if (!tags_usable) return steady::now() >= absent_until;
    return presence_known && seen.until_ms > util::unix_ms_now() && seen.signature != unclaimed;
  }
  void mark_present() {
    absent_until = {};
    unclaimed.clear();
  }
  /// An offer went unclaimed. Without tags: nobody for FUNCIE_SQS_ABSENT_MS. With them:
  /// nobody until the tags change: a live session refreshes its tag every
  /// FUNCIE_SQS_PRESENCE_MS, so it is offered invocations again after that and a read; a
  /// killed one never does, so it costs each instance one claim window in all.
  void mark_absent() {
    if (!tags_usable) {
      absent_until = steady::now() + config().absent_for;
      return;
    }
    unclaimed = seen.signature;
  }
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
    s->net.release(queue, received);  // another app shares the queue
    return;
  }
  if (!on_response_queue(m.kind) || s->net.expired(m, "response")) {
    s->net.drop(queue, received.receipt_handle);
    return;
  }
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
  while (!s->waiters.empty() && !s->stopped) {
    std::vector<aws::sqs_json::received_message> got;
    std::string error;
    const int asked = s->net.receive_batch();
    const std::int64_t started_ms = util::unix_ms_now();
    try {
      got = co_await s->net.client->receive_message(s->config().response_queue, asked,
                                                    forwarder_wait_seconds, visibility_seconds);
    } catch (const std::exception& e) {
      error = e.what();
    }
    s->net.check_receive(got, started_ms, util::unix_ms_now(), forwarder_wait_seconds, asked);
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
                               std::int64_t in_flight, std::int64_t now_ms) {
  boost::json::object info;
  info["at_ms"] = now_ms;  // when it answered: what `funcie status` shows as its heartbeat
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

/// Reads the request queue's tags once (one attempt): who is connected. A throttled or
/// failed read leaves the last known state (nobody, at a cold start) and is tried again
/// later, with a growing pause; a refused one (no sqs:ListQueueTags, a server without
/// tags) makes this forwarder offer every invocation and learn from unclaimed offers.
asio::awaitable<void> read_presence_tags(std::shared_ptr<forwarder_state> s) {
  s->presence_reading = true;
  std::string error;
  bool refused = false;
  bool user_fixable = false;  // said at warning level, once
  std::map<std::string, std::string> tags;
  try {
    tags = co_await s->net.single_attempt->list_queue_tags(s->config().request_queue);
  } catch (const aws::sqs_error& e) {
    error = e.what();
    refused = e.cause() == aws::sqs_error::kind::access_denied ||
              e.cause() == aws::sqs_error::kind::invalid;
    user_fixable = e.cause() == aws::sqs_error::kind::queue_missing ||
                   e.cause() == aws::sqs_error::kind::credentials;
  } catch (const std::exception& e) {
    error = e.what();
  }
  s->presence_reading = false;
  const auto now = steady::now();
  if (error.empty()) {
    const bool was = s->present();
    s->seen = read_presence(tags, s->config().app, util::unix_ms_now());
    s->presence_known = true;
    s->presence_read_at = now;
    s->presence_backoff = 0ms;
    // +-20 % so that many instances started together do not read together.
    const auto every = s->config().presence_every;
    s->next_presence_read =
        now + every * 4 / 5 + milliseconds(random_below(every.count() * 2 / 5 + 1));
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
  // What the tags said long ago (an instance idle for a while) is not trusted: read again.
  const bool stale = steady::now() - s->presence_read_at > s->config().presence_every * 3;
  if (s->tags_usable && (!s->presence_known || stale) && !s->presence_reading) {
    // A cold start: one ListQueueTags, the only SQS call an invocation nobody debugs makes
    // (and again after FUNCIE_SQS_PRESENCE_MS x 3 without invocations).
    co_await read_presence_tags(s);
  } else {
    refresh_presence(s);  // in the background, never in an invocation's latency
  }
  if (!s->present()) {
    co_return tunnel::not_taken(
        s->tags_usable ? "no consumer is connected (presence tags of the request queue)"
                       : "no consumer claimed the last offer");
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
      if (m.kind != message_kind::claim) {
        // Nothing runs before our commit, so nothing but a claim can come first.
        spdlog::warn("dropped a {} for request {} from session {}, which did not claim it",
                     to_string(m.kind), request.id, m.session.substr(0, 8));
        continue;
      }
      // 3. Commit: this session, and only it, runs the request (with the rest of a big
      // one). From here on the request never runs in the cloud.
      owner = m.session;
      s->mark_present();
      message commit;
      commit.kind = message_kind::commit;
      commit.app = config.app;
      commit.id = request.id;
      commit.session = *owner;
      commit.expires_ms = std::min(expires_ms, util::unix_ms_now() + commit_lifetime.count());
      std::vector<std::string> bodies{s->net.body_of(commit)};
      for (std::size_t i = 1; i < pieces.size(); ++i) bodies.push_back(s->net.body_of(pieces[i]));
      const bool alone = bodies.size() == 1;
      pieces.clear();
      std::string send_error;
      bool not_stored = false;
      try {
        co_await s->net.send_all(config.request_queue, std::move(bodies));
      } catch (const aws::sqs_error& e) {
        send_error = e.what();
        not_stored = alone && e.cause() != aws::sqs_error::kind::transport &&
                     e.cause() != aws::sqs_error::kind::server;
      } catch (const std::exception& e) {
        send_error = e.what();
      }
      if (!send_error.empty()) {
        s->enter_backoff(send_error);
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
    } else if (*owner != m.session) {
      if (m.kind != message_kind::claim) {
        spdlog::warn("dropped a {} for request {} from session {}, which did not claim it",
                     to_string(m.kind), request.id, m.session.substr(0, 8));
      }
      continue;  // another session's claim (a second delivery of the offer): never committed
    }
    last_heard = steady::now();
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
  bool committed = false;  ///< The forwarder committed it to this session (ff: always)
  bool delivered = false;
  std::int64_t expires_ms = 0;
  std::int64_t commit_by_ms = 0;  ///< Forgotten when not committed by then
  reassembly parts;
  std::optional<std::string> envelope;  ///< Whole, waiting for the commit
};

}  // namespace

struct sqs_consumer_session::state {
  state(asio::any_io_executor ex, const tunnel::backend_options& opts)
      : executor(ex),
        net(ex, resolve_settings(opts, [](const char* name) { return std::getenv(name); }),
            std::max(opts.timing.command_timeout * 3, milliseconds(3000)), 3),
        session_id(util::random_hex(32)),
        ready_signal(ex),
        alive_timer(ex),
        presence_timer(ex),
        sweep_timer(ex) {
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
  /// Offers claimed (id -> expiry), so a second delivery of one is ignored, and so are the
  /// late copies of its pieces and commit.
  std::map<std::string, std::int64_t> claimed;
  std::deque<tunnel::request> ready;
  wakeup ready_signal;
  asio::steady_timer alive_timer;
  asio::steady_timer presence_timer;
  asio::steady_timer sweep_timer;
  asio::cancellation_signal stop_receiving;  ///< Ends the long poll in flight at close()
  steady::time_point last_receive{};

  const settings& config() const { return net.config; }

  void lose(std::string reason) {
    if (stopped || !lost.empty()) return;
    lost = std::move(reason);
    spdlog::warn("consumer session {} is over: {}", session_id, lost);
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
  s->net.drop(queue, received.receipt_handle);  // claimed or not, nobody else needs it
  if (s->claimed.contains(m.id) || s->held.contains(m.id)) co_return;  // delivered twice
  const std::int64_t now = util::unix_ms_now();
  if (m.claim_by_ms <= now || s->config().response_queue.empty()) {
    spdlog::debug("dropped offer {}: its claim window is over", m.id);
    co_return;
  }
  if (const auto problem = offer_problem(m, s->config().app); !problem.empty()) {
    spdlog::warn("dropped an offer on the request queue that is not a valid request: {}", problem);
    co_return;
  }
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
    co_await s->net.client->send_message(s->config().response_queue, s->net.body_of(claim, key));
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
    s->net.release(queue, received);
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
      s->net.release(queue, received);  // for the session that holds it
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
  pong.data = consumer_info_json(s->host, s->pid, s->since_ms, s->in_flight, util::unix_ms_now());
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

asio::awaitable<void> receive_loop(std::shared_ptr<session_state> s) {
  asio::steady_timer pause(s->executor);
  milliseconds retry_pause = 100ms;
  s->last_receive = steady::now();
  while (!s->stopped && s->lost.empty()) {
    std::vector<aws::sqs_json::received_message> got;
    std::string error;
    const int asked = s->net.receive_batch();
    const std::int64_t started_ms = util::unix_ms_now();
    try {
      got = co_await s->net.client->receive_message(s->config().request_queue, asked,
                                                    consumer_wait_seconds, visibility_seconds);
    } catch (const std::exception& e) {
      error = e.what();
    }
    s->net.check_receive(got, started_ms, util::unix_ms_now(), consumer_wait_seconds, asked);
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
      if (entry.ff || !entry.committed) continue;
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

/// Sets this session's presence tag on the request queue: here until now + presence_ttl.
asio::awaitable<void> publish_presence(std::shared_ptr<session_state> s) {
  const std::map<std::string, std::string> tags{
      {presence_tag_key(s->config().app, s->session_id),
       std::to_string(util::unix_ms_now() +
                      presence_ttl_periods * s->config().presence_every.count())}};
  co_await s->net.client->tag_queue(s->config().request_queue, tags);
}

/// Removes the tags of this app's sessions whose time is over (killed ones): a queue holds
/// at most 50 tags. Best effort.
asio::awaitable<void> remove_stale_presence(std::shared_ptr<session_state> s) {
  try {
    const auto tags = co_await s->net.client->list_queue_tags(s->config().request_queue);
    const auto seen = read_presence(tags, s->config().app, util::unix_ms_now());
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
  while (!s->stopped && s->lost.empty()) {
    s->sweep_timer.expires_after(sweep_every);
    boost::system::error_code ignored;
    co_await s->sweep_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    for (int round = 0; round < 50 && !s->stopped && s->lost.empty(); ++round) {
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
  while (!s->stopped && s->lost.empty()) {
    s->presence_timer.expires_after(s->config().presence_every);
    boost::system::error_code ignored;
    co_await s->presence_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (s->stopped || !s->lost.empty()) break;
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
      // Forwarders learn that a session is connected from its tag (docs/sqs.md).
      co_await publish_presence(s);
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
  if (!s->config().response_queue.empty()) {
    asio::co_spawn(s->executor, presence_loop(s), asio::detached);
    asio::co_spawn(s->executor, sweep_loop(s), asio::detached);
    asio::co_spawn(s->executor, remove_stale_presence(s), asio::detached);
  }
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
  const std::shared_ptr<state> s = state_;
  const bool was_open = s->opened && !s->stopped;
  s->shutdown();
  if (!was_open || s->config().response_queue.empty()) co_return;
  // Gone: forwarders stop offering at their next presence read. One attempt; if it fails
  // the tag's own time ends it.
  const std::vector<std::string> keys{presence_tag_key(s->config().app, s->session_id)};
  try {
    co_await s->net.single_attempt->untag_queue(s->config().request_queue, keys);
  } catch (const std::exception& e) {
    spdlog::debug("could not remove this session's presence tag: {}", e.what());
  }
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
      // When it answered, by its clock: a pong is a heartbeat of a moment ago.
      if (const std::int64_t at = integer("at_ms"); at > 0) {
        entry.heartbeat_age_ms = std::max<std::int64_t>(0, now - at);
      }
    }
    entry.heartbeat_age_ms = 0;
    out.push_back(std::move(entry));
  }
  co_return out;
}

}  // namespace funcie::sqs_backend
