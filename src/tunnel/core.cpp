#include "tunnel/core.hpp"

#include "util/clock.hpp"
#include "util/ids.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

namespace funcie::tunnel {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

void broker_backoff::enter(std::string_view why) {
  const auto now = steady::now();
  if (now < until_) return;
  until_ = now + step_;
  spdlog::warn("{} unusable ({}); invocations run in the cloud for the next {} ms", broker_, why,
               step_.count());
  step_ = std::min(step_ * 2, last_step);
}

milliseconds broker_backoff::remaining(steady::time_point now) const {
  return now < until_ ? std::chrono::duration_cast<milliseconds>(until_ - now) : milliseconds(0);
}

std::optional<forward_outcome> refuse_early(const broker_backoff& backoff, const request& req,
                                            steady::time_point now) {
  if (backoff.active(now)) {
    return not_taken(fmt::format("backing off from {} for {} ms more", backoff.broker(),
                                 backoff.remaining(now).count()));
  }
  if (!is_valid_id(req.id)) {
    spdlog::error("cannot forward a request whose id is not 32 lower-case hex digits");
    return not_taken("invalid request id");
  }
  return std::nullopt;
}

labelled_request::labelled_request(const request& original, const std::string& app)
    : original_(&original) {
  if (original.app != app) {
    copy_ = original;
    copy_->app = app;
  }
}

labelled_response::labelled_response(const response& original, const std::string& session,
                                     const std::string& app)
    : original_(&original) {
  if (original.consumer != session || original.app != app) {
    copy_ = original;
    copy_->consumer = session;
    copy_->app = app;
  }
}

forward_outcome timed_out(const std::optional<std::string>& owner, milliseconds waited) {
  if (owner) {
    return failed(
        "Funcie.Timeout",
        fmt::format("the local handler did not answer in time: session {} held the request for "
                    "{} ms, until the deadline",
                    *owner, waited.count()));
  }
  return failed("Funcie.Timeout",
                fmt::format("the local handler did not answer in time: no consumer took the "
                            "request in the {} ms before the deadline",
                            waited.count()));
}

forward_outcome broker_lost(std::string_view broker, std::string_view what) {
  return failed(
      "Funcie.BrokerLost",
      fmt::format("lost {} while a consumer may be running the request: {}", broker, what));
}

forward_outcome bad_response(std::string_view why) {
  return failed("Funcie.BadResponse",
                fmt::format("the consumer's response could not be read: {}", why));
}

session_identity::session_identity() : session_id(util::random_hex(32)) {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) == 0) host = name;
  pid = static_cast<std::int64_t>(::getpid());
}

void session_lifecycle::begin_open() {
  if (opened || stopped) {
    throw backend_error("a consumer session can be opened once; make a new one");
  }
  since_ms = util::unix_ms_now();
}

void session_lifecycle::check_open() const {
  if (!opened) throw backend_error("the consumer session is not open");
}

void session_lifecycle::check_running() const {
  if (stopped) throw backend_error("the consumer session is closed");
  if (!lost.empty()) throw backend_error(lost);
}

bool session_lifecycle::mark_lost(std::string reason) {
  if (over()) return false;
  lost = std::move(reason);
  spdlog::warn("consumer session {} is over: {}", session_id, lost);
  return true;
}

}  // namespace funcie::tunnel
