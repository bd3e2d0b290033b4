// Key names of the Redis backend (docs/tunnel.md, "Who claims a request"). Every key of app
// A starts with "funcie:{A}:" so that one Redis Cluster slot holds them all. Pure.
#pragma once

#include <string>
#include <string_view>

namespace funcie::redis_backend {

class app_keys {
 public:
  /// `app` must be valid (tunnel::is_valid_app): it has no braces, so the tag is exact.
  explicit app_keys(std::string_view app) : prefix_("funcie:{") {
    prefix_.append(app);
    prefix_.append("}:");
  }

  /// The app's channel name: it routes a connection to the app's cluster slot.
  std::string channel() const { return prefix_ + "requests"; }
  /// Session S's own channel: an assignment's count of receivers says whether S still listens.
  std::string channel(std::string_view session) const { return join("requests:", session); }
  /// The app's presence channel: a session publishes its id when it joins and when it leaves;
  /// forwarders subscribe to keep their presence view current (docs/routing.md).
  std::string presence() const { return prefix_ + "presence"; }
  /// Sorted set: session id -> expiry (server time, ms).
  std::string consumers() const { return prefix_ + "consumers"; }
  /// String with TTL: a session's info; the session is alive while it exists.
  std::string consumer(std::string_view session) const { return join("consumer:", session); }
  /// String with TTL: a big request's envelope, which the inbox item refers to.
  std::string req(std::string_view id) const { return join("req:", id); }
  /// List with TTL: the requests assigned to session S, popped by S alone (docs/routing.md).
  std::string inbox(std::string_view session) const { return join("inbox:", session); }
  /// String with TTL: who runs request `id` (a session id, written by it once it popped the
  /// request, or "cloud" when the forwarder withdrew it).
  std::string claim(std::string_view id) const { return join("claim:", id); }
  /// List with TTL: the response envelope.
  std::string resp(std::string_view id) const { return join("resp:", id); }

  const std::string& prefix() const { return prefix_; }

 private:
  std::string join(std::string_view kind, std::string_view id) const {
    std::string key;
    key.reserve(prefix_.size() + kind.size() + id.size());
    key.append(prefix_).append(kind).append(id);
    return key;
  }
  std::string prefix_;
};

}  // namespace funcie::redis_backend
