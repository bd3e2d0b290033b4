// The Redis backend of the tunnel: presence, offers, claims and heartbeats with a few Lua
// scripts over pub/sub, strings and lists (docs/tunnel.md, "Who claims a request").
#pragma once

#include "tunnel/backend.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace funcie::tunnel {
struct backend_kind;
}

namespace funcie::redis_backend {

/// Cloud side. Opens its command connection on first use; blocking waits (BLPOP) each take
/// a connection from a pool that grows on demand and keeps idle ones for reuse.
/// Throws tunnel::backend_config_error from the constructor for a bad URL or app.
class redis_forwarder_backend final : public tunnel::forwarder_backend {
 public:
  redis_forwarder_backend(boost::asio::any_io_executor executor,
                          const tunnel::backend_options& options);
  ~redis_forwarder_backend() override;

  boost::asio::awaitable<tunnel::forward_outcome> forward(
      const tunnel::request& req, std::chrono::steady_clock::time_point give_up_at) override;
  bool streams() const override { return true; }

  struct state;

 private:
  std::shared_ptr<state> state_;
};

/// Local side: one session (a subscriber connection, a command connection, a heartbeat).
/// Destroyed without close(), it vanishes like a killed consumer: connections closed,
/// presence left to expire.
class redis_consumer_session final : public tunnel::consumer_session {
 public:
  redis_consumer_session(boost::asio::any_io_executor executor,
                         const tunnel::backend_options& options);
  ~redis_consumer_session() override;

  const std::string& id() const override;
  boost::asio::awaitable<void> open() override;
  boost::asio::awaitable<tunnel::request> next() override;
  boost::asio::awaitable<void> respond(const tunnel::response& answer) override;
  void set_in_flight(std::int64_t count) override;
  boost::asio::awaitable<void> close() override;

  struct state;

 private:
  std::shared_ptr<state> state_;
};

/// The sessions present for options.app now. Throws tunnel::backend_error.
boost::asio::awaitable<std::vector<tunnel::consumer_info>> list_consumers(
    boost::asio::any_io_executor executor, const tunnel::backend_options& options);

/// This backend's kind, for the registry (src/tunnel/registry.hpp).
const tunnel::backend_kind& kind();

}  // namespace funcie::redis_backend
