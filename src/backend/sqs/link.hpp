// What every end of the SQS backend shares: its bounds, the client and the queues' size
// limits, and how a message is put on, taken off, dropped from or released to a queue.
#pragma once

#include "aws/sqs_client.hpp"
#include "backend/sqs/held_receive.hpp"
#include "backend/sqs/message.hpp"
#include "backend/sqs/sqs_backend.hpp"
#include "util/clock.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unistd.h>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace funcie::sqs_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Internal to the SQS backend's files.
namespace detail {

/// SQS's own bounds of a message's size; the smallest is what a queue may be set to.
inline constexpr std::size_t min_message_bytes = 1024;
inline constexpr std::size_t max_message_bytes = 1024 * 1024;
/// Used when the queue's limit cannot be asked (no sqs:GetQueueAttributes): fits every queue
/// made with the old default.
inline constexpr std::size_t fallback_message_bytes = 256 * 1024;
/// How long a received message stays hidden from other receivers. Every message is deleted
/// or released as soon as it is read, so this only matters for a receive nobody reads any
/// more: a killed consumer's or a frozen function's long poll still pending on the server.
/// What it takes comes back within a second, inside the claim window.
inline constexpr int visibility_seconds = 1;
/// A message released for another receiver is visible again at once while fresh; one that
/// keeps coming back (nobody this side can use it) is hidden longer as it ages, up to this,
/// until it expires: never a tight loop (see link::release).
inline constexpr int max_release_seconds = 8;
inline constexpr std::int64_t release_fresh_ms = 3000;
/// Messages further in the future than this are not funcie's (Lambda's longest timeout plus
/// clock skew): dropped, so that a forged expiry cannot keep one circulating.
inline constexpr std::int64_t max_lifetime_ms = 16 * 60 * 1000;
/// SQS's limit of entries per batch call.
inline constexpr std::size_t max_batch_entries = 10;
/// A forwarder's receive waits at most this long, so it stops soon after its last waiter.
inline constexpr int forwarder_wait_seconds = 1;
/// A consumer's long poll.
inline constexpr int consumer_wait_seconds = 20;
/// A fire-and-forget request means nothing after Lambda's longest timeout.
inline constexpr milliseconds ff_lifetime = 15min;
/// A session's presence tag says "here until now + this many FUNCIE_SQS_PRESENCE_MS" and is
/// set again every FUNCIE_SQS_PRESENCE_MS: a killed session stops being offered invocations
/// within that (and costs each forwarder at most one claim window: see
/// forwarder_state::mark_absent).
inline constexpr int presence_ttl_periods = 3;
/// How often a connected session cleans the response queue (sweep_loop).
inline constexpr milliseconds sweep_every = 5s;
/// How long a commit waits for its consumer: after that, the consumer has forgotten its
/// claim (see commit_wait_ms) and the forwarder reports it lost.
inline constexpr milliseconds commit_lifetime = 10s;
/// A claim not committed by the offer's claim_by_ms plus this is forgotten.
inline constexpr std::int64_t commit_wait_ms = 10000;
/// A claim means nothing after the offer's claim_by_ms plus this (the forwarder waits
/// claim_by_ms + its grace, 500 ms, by its own clock).
inline constexpr std::int64_t claim_lifetime_ms = 2000;
/// An offer's claim window is taken as at most this long (FUNCIE_SQS_CLAIM_MS' largest):
/// a forged claim_by_ms far off keeps nothing held.
inline constexpr std::int64_t max_claim_window_ms = 60000;
/// Receives a forwarder runs at once on the response queue (one per 2 waiters): a message
/// for another instance or nobody is read by each in turn, so that with many in flight or
/// a flood of others' messages one receive at a time (one message each, on a server that
/// holds batched receives) would fall behind.
inline constexpr std::size_t max_pollers = 4;
/// While every receive of the response queue comes back full (a backlog: others' messages
/// ahead of a session's), a forwarder gives a committed request's session this many
/// heartbeats of silence before it reports it lost, rather than one: its `alive` may wait
/// behind the backlog (docs/sqs.md, "Nothing starves").
inline constexpr int backlog_heartbeats = 3;
/// Receives a consumer runs at once on the request queue while it finds a backlog (a storm
/// of foreign messages ahead of the offers and commits): its long poll and short polls.
inline constexpr int consumer_receivers = 4;
/// Calls sent at once.
inline constexpr std::size_t max_parallel_sends = 8;
/// Rule 4 for fire-and-forget requests: sent before the session opened, minus clock skew.
inline constexpr std::int64_t ff_skew_ms = 1000;

/// A random number in [0, n), n >= 1: jitter, nothing secret.
inline std::int64_t random_below(std::int64_t n) {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return std::uniform_int_distribution<std::int64_t>(0,
                                                     std::max<std::int64_t>(n, 1) - 1)(generator);
}

/// The process environment as it was when the backend was made, read from then on without
/// std::getenv: the function's handler thread sets variables (the trace id) per invocation
/// while the tunnel's thread would read them (settings, and credentials when they are
/// fetched again), and getenv beside setenv is a data race. What funcie reads here (the
/// queues, the region and endpoint, Lambda's credentials) does not change in a process's
/// life; a profile's files and credential_process are still read when needed.
inline aws::getenv_fn environment_snapshot() {
  auto copy = std::make_shared<std::map<std::string, std::string, std::less<>>>();
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view pair(*entry);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    copy->emplace(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
  }
  return [copy](const char* name) -> const char* {
    const auto it = copy->find(std::string_view(name));
    return it == copy->end() ? nullptr : it->second.c_str();
  };
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

inline bool on_response_queue(message_kind kind) {
  return kind == message_kind::claim || kind == message_kind::alive ||
         kind == message_kind::response || kind == message_kind::piece ||
         kind == message_kind::pong;
}

/// What every end of the SQS tunnel shares: the client and the queues' size limits.
struct link {
  link(asio::any_io_executor ex, settings conf, milliseconds attempt_timeout, int attempts,
       aws::getenv_fn getenv)
      : executor(std::move(ex)), config(std::move(conf)) {
    credentials = std::make_shared<aws::credential_provider>(executor, std::move(getenv));
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
    // Releases asked for in one turn of the event loop (one receive's messages) go out
    // together, up to 10 per ChangeMessageVisibilityBatch.
    auto& pending = releases[queue];
    pending.emplace_back(received.receipt_handle, seconds);
    if (pending.size() > 1) return;  // a flush is already on its way
    asio::post(executor, [this, alive = std::weak_ptr<bool>(token), queue] {
      if (alive.expired()) return;
      auto all = std::move(releases[queue]);
      releases.erase(queue);
      for (std::size_t at = 0; at < all.size(); at += max_batch_entries) {
        std::vector<std::string> handles;
        std::vector<int> hidden;
        for (std::size_t i = at; i < std::min(all.size(), at + max_batch_entries); ++i) {
          handles.push_back(std::move(all[i].first));
          hidden.push_back(all[i].second);
        }
        asio::co_spawn(
            executor,
            [c = client, queue, handles = std::move(handles), hidden = std::move(hidden),
             took = release_took]() -> asio::awaitable<void> {
              try {
                const auto started = steady::now();
                if (handles.size() == 1) {
                  co_await c->change_message_visibility(queue, handles.front(), hidden.front());
                } else {
                  const auto failed =
                      co_await c->change_message_visibility_batch(queue, handles, hidden);
                  for (const auto& why : failed) {
                    if (!why.empty())
                      spdlog::debug("could not release a message on {}: {}", queue, why);
                  }
                }
                *took = std::chrono::duration_cast<milliseconds>(steady::now() - started);
              } catch (const std::exception& e) {
                spdlog::debug("could not release messages on {}: {}", queue, e.what());
              }
            },
            asio::detached);
      }
    });
  }

  /// Sends one body. Sends asked for in one turn of the event loop (the claims for one
  /// receive's offers, the commits for one receive's claims, the offers of invocations that
  /// start together) go out together, up to 10 per SendMessageBatch; one alone goes out as
  /// a SendMessage in the same turn, with no wait added. Throws as SendMessage does: the
  /// batch call's own failure (whose fate the caller judges as for one message), or, for an
  /// entry the batch refused, the failure of sending it again alone.
  asio::awaitable<void> send(const std::string& queue, std::string body) {
    auto entry = std::make_shared<pending_send>(executor);
    entry->body = std::move(body);
    auto& pending = sends[queue];
    pending.push_back(entry);
    if (pending.size() == 1) {
      asio::post(executor, [this, alive = std::weak_ptr<bool>(token), queue] {
        if (!alive.expired()) flush_sends(queue);
      });
    }
    while (!entry->done) co_await entry->wake.wait_until(steady::time_point::max());
    if (entry->error) std::rethrow_exception(entry->error);
    if (entry->refused.empty()) co_return;
    spdlog::debug("SendMessageBatch refused an entry ({}); sending it alone", entry->refused);
    co_await client->send_message(queue, entry->body);
  }

  /// Sends every body: up to 10 per SendMessageBatch (together at most the queue's size
  /// limit, which is also SQS's limit of a batch), at most max_parallel_sends calls at once;
  /// an entry the batch refused is sent again on its own. Throws the first failure.
  asio::awaitable<void> send_all(std::string queue, std::vector<std::string> bodies) {
    if (bodies.empty()) co_return;
    if (bodies.size() == 1) {
      co_await send(queue, std::move(bodies.front()));
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
  /// MaxNumberOfMessages and WaitTimeSeconds of the next receive on a queue whose last
  /// receive brought `last_got` messages. On a server that holds batched long polls, a
  /// receive that found something is followed by a short poll of up to 10 (such a server
  /// answers those at once): a backlog, or a flood of others' messages ahead of the one a
  /// receiver waits for, is then read 10 at a time rather than one.
  std::pair<int, int> next_receive(std::size_t last_got, int long_poll_seconds) const {
    if (receive_batch() == 1 && last_got > 0) return {static_cast<int>(max_batch_entries), 0};
    return {receive_batch(), long_poll_seconds};
  }
  /// Looks at one receive that asked for more than one message: `started_ms` and
  /// `returned_ms` by our clock, `wait_seconds` its long poll.
  void check_receive(const std::vector<aws::sqs_json::received_message>& got,
                     std::int64_t started_ms, std::int64_t returned_ms, int wait_seconds,
                     int asked) {
    if (batch_held) return;
    const auto held = held_batch_ms(got, started_ms, returned_ms, wait_seconds, asked,
                                    client->clock_offset().count());
    if (!held) return;
    batch_held = true;
    spdlog::warn(
        "the SQS server at {} held a receive of up to {} messages ({} s long poll) for {} ms "
        "after a message came: receiving one message at a time "
        "from now on (set FUNCIE_SQS_RECEIVE_BATCH=1 for this server to skip the first "
        "slow receive)",
        config.service.endpoint, asked, wait_seconds, *held);
  }
  bool batch_held = false;

  /// A body waiting for its turn in a SendMessageBatch (see send).
  struct pending_send {
    explicit pending_send(asio::any_io_executor ex) : wake(std::move(ex)) {}
    std::string body;
    bool done = false;
    std::exception_ptr error;  ///< The call failed as a whole
    std::string refused;       ///< The batch refused this entry: why
    wakeup wake;
  };
  /// Sends every body asked for on `queue` since the last flush: up to 10 per call, and
  /// together at most the queue's size limit (SQS's limit of a batch too).
  void flush_sends(const std::string& queue) {
    auto all = std::move(sends[queue]);
    sends.erase(queue);
    const auto known = limits.find(queue);
    const std::size_t batch_bytes = known != limits.end() ? known->second : fallback_message_bytes;
    std::vector<std::vector<std::shared_ptr<pending_send>>> batches;
    std::size_t bytes = 0;
    for (auto& entry : all) {
      if (batches.empty() || batches.back().size() == max_batch_entries ||
          bytes + entry->body.size() > batch_bytes) {
        batches.emplace_back();
        bytes = 0;
      }
      bytes += entry->body.size();
      batches.back().push_back(std::move(entry));
    }
    for (auto& entries : batches) {
      auto batch = std::make_shared<std::vector<std::shared_ptr<pending_send>>>(std::move(entries));
      asio::co_spawn(
          executor,
          [c = client, queue, batch]() -> asio::awaitable<void> {
            if (batch->size() == 1) {
              co_await c->send_message(queue, batch->front()->body);
              co_return;
            }
            // The bodies lent to the call, and given back for an entry sent again alone.
            std::vector<std::string> bodies;
            for (auto& entry : *batch) bodies.push_back(std::move(entry->body));
            auto failed = co_await c->send_message_batch(queue, bodies);
            for (std::size_t i = 0; i < batch->size(); ++i) {
              if (i < failed.size() && !failed[i].empty()) {
                (*batch)[i]->refused = std::move(failed[i]);
                (*batch)[i]->body = std::move(bodies[i]);
              }
            }
          },
          [batch](std::exception_ptr error) {
            for (auto& entry : *batch) {
              entry->done = true;
              entry->error = error;
              entry->wake.notify();
            }
          });
    }
  }
  std::map<std::string, std::vector<std::shared_ptr<pending_send>>> sends;  ///< queue -> waiting
  /// queue -> receipts to release and for how many seconds
  std::map<std::string, std::vector<std::pair<std::string, int>>> releases;
  /// How long the last release took (one round trip to SQS).
  std::shared_ptr<milliseconds> release_took = std::make_shared<milliseconds>(20);
  std::map<std::string, std::vector<std::string>> deletes;     ///< queue -> receipts to delete
  std::shared_ptr<bool> token = std::make_shared<bool>(true);  ///< Expires with the link
};

}  // namespace detail

}  // namespace funcie::sqs_backend
