// What every backend's two ends share, whatever carries the messages (docs/tunnel.md,
// "The backend core"): the forwarder's broker backoff and the opening of forward(), the
// outcomes with one text each, and a consumer session's identity and lifecycle. A backend
// adds only what its broker needs.
#pragma once

#include "tunnel/backend.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace funcie::tunnel {

// ---- forwarder ---------------------------------------------------------------------------

/// Rule 6: after broker trouble, invocations run in the cloud for a while (1 s, doubling up
/// to 5 s while the trouble lasts) instead of paying a connect attempt each.
class broker_backoff {
 public:
  /// `broker`: how logs name the broker ("Redis at host:6379", "SQS queue https://..."),
  /// never with a password.
  explicit broker_backoff(std::string broker) : broker_(std::move(broker)) {}

  /// Called by every forward() that met the trouble; only the first of a burst counts.
  void enter(std::string_view why);
  /// The broker answered: the next trouble backs off 1 s again.
  void reset() { step_ = first_step; }
  bool active(std::chrono::steady_clock::time_point now) const { return now < until_; }
  std::chrono::milliseconds remaining(std::chrono::steady_clock::time_point now) const;
  const std::string& broker() const { return broker_; }

 private:
  static constexpr std::chrono::milliseconds first_step{1000};
  static constexpr std::chrono::milliseconds last_step{5000};
  std::string broker_;
  std::chrono::steady_clock::time_point until_{};
  std::chrono::milliseconds step_ = first_step;
};

/// The opening of every forward(): not_taken while backing off or for a request whose id is
/// not 32 lower-case hex digits (said once in the log); nullopt when it may be offered.
std::optional<forward_outcome> refuse_early(const broker_backoff& backoff, const request& req,
                                            std::chrono::steady_clock::time_point now);

/// The request as it goes on the broker: labelled with the backend's app (a forwarder may be
/// handed one made for another name). Copies only when the label differs; `original` must
/// outlive it.
class labelled_request {
 public:
  labelled_request(const request& original, const std::string& app);
  const request& get() const { return copy_ ? *copy_ : *original_; }

 private:
  const request* original_;
  std::optional<request> copy_;
};

/// The response as it goes on the broker: from `session`, for `app`, whatever the handler's
/// side filled in. Copies only when a label differs.
class labelled_response {
 public:
  labelled_response(const response& original, const std::string& session, const std::string& app);
  const response& get() const { return copy_ ? *copy_ : *original_; }

 private:
  const response* original_;
  std::optional<response> copy_;
};

// Outcomes with the same meaning on every backend, said the same way.

/// "Funcie.Timeout": the deadline came first. `owner`: the session that took the request,
/// if one did; `waited`: since the offer.
forward_outcome timed_out(const std::optional<std::string>& owner,
                          std::chrono::milliseconds waited);
/// "Funcie.BrokerLost": the broker went away after the offer; a consumer may be running the
/// request, so it must not run in the cloud. `broker` as in broker_backoff.
forward_outcome broker_lost(std::string_view broker, std::string_view what);
/// "Funcie.BadResponse": the consumer's answer could not be read.
forward_outcome bad_response(std::string_view why);

// ---- consumer session --------------------------------------------------------------------

/// Who a consumer session is, as `funcie status` shows it.
struct session_identity {
  session_identity();      ///< A new random id, this host's name and this process's id.
  std::string session_id;  ///< 32 hex digits
  std::string host;
  std::int64_t pid = 0;
  std::int64_t since_ms = 0;  ///< Unix ms of open()
};

/// The states every consumer session goes through: made, opened once, then over: closed by
/// its owner (stopped) or lost (why in `lost`). A backend's session state derives from it and
/// adds its timers to lose() and shutdown().
struct session_lifecycle : session_identity {
  bool opened = false;
  bool stopped = false;
  std::string lost;            ///< Why the session is over, once it is.
  std::int64_t in_flight = 0;  ///< set_in_flight(): what the session says it holds

  bool over() const { return stopped || !lost.empty(); }
  /// Start of open(): throws backend_error unless this is the first open; sets since_ms.
  void begin_open();
  /// Start of next(): throws backend_error when not opened, closed, or lost.
  void check_open() const;
  void check_running() const;
  /// The session is over: next() throws `reason` from now on. False when it already was
  /// (then nothing changes); true once, with one log line.
  bool mark_lost(std::string reason);
};

}  // namespace funcie::tunnel
