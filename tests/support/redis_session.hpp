// What the C++ tests against a real redis-server share when they go behind the Redis backend's
// back: a plain connection, and a consumer session made by hand with the backend's own key
// layout (redis_backend::app_keys) and card codec, so that a change of layout shows here and
// in the backend, nowhere else. Header-only.
#pragma once

#include "backend/redis/keys.hpp"
#include "redis/connection.hpp"
#include "tunnel/consumer_info.hpp"
#include "util/ids.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace funcie::test {

/// A plain connection to the Redis at `url`.
inline boost::asio::awaitable<std::shared_ptr<redis::connection>> raw_redis_connection(
    boost::asio::any_io_executor ex, std::string url) {
  redis::connect_options c;
  c.server = redis::parse_url(url);
  co_return std::shared_ptr<redis::connection>(co_await redis::connection::connect(ex, c));
}

/// A session made by hand (see never_popping_session).
struct hand_made_session {
  std::string id;
  std::shared_ptr<redis::connection> subscription;  ///< Closing it ends the subscription.
};

/// A consumer session of `app` made by hand: present with `routes` (in the app's consumers
/// set for a minute, its card under its key living `key_ms` milliseconds), subscribed to its
/// own channel (so an assignment reaches it), but never popping its inbox: one that was picked
/// and then froze, died or stopped before it took the request.
inline boost::asio::awaitable<hand_made_session> never_popping_session(
    boost::asio::any_io_executor ex, std::string url, std::string app,
    std::vector<std::string> routes, std::string key_ms) {
  const redis_backend::app_keys keys(app);
  hand_made_session made;
  made.id = util::random_hex(32);
  made.subscription = co_await raw_redis_connection(ex, url);
  co_await made.subscription->subscribe(keys.channel(made.id));
  auto cmd = co_await raw_redis_connection(ex, url);
  const std::string expiry = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch() + std::chrono::seconds(60))
          .count());
  const std::string consumers = keys.consumers();
  std::vector<std::string_view> zadd{"ZADD", consumers, expiry, made.id};
  co_await cmd->execute_checked(zadd);
  tunnel::consumer_card card;
  card.session = made.id;
  card.routes = std::move(routes);
  const std::string info = tunnel::encode_consumer_card(card);
  const std::string key = keys.consumer(made.id);
  std::vector<std::string_view> set{"SET", key, info, "PX", key_ms};
  co_await cmd->execute_checked(set);
  cmd->close();
  co_return made;
}

}  // namespace funcie::test
