// The local side of the tunnel: one consumer keeps a session with the backend, claims
// requests, runs each through a runner (local execution environments, or an in-process
// handler) and sends the response back. It survives the broker going away (new session
// with backoff) and leaves cleanly on stop(). docs/tunnel.md describes the semantics.
#pragma once

#include "runtime_api/server.hpp"
#include "tunnel/backend.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace funcie::consumer {

/// Runs one claimed request to its end and reports what came of it, as a Runtime API
/// result (success payload, function error, or the runtime's init error). Must not throw
/// for anything the handler does; an exception is turned into a "Funcie.ConsumerError".
using runner = std::function<boost::asio::awaitable<runtime_api::result>(const tunnel::request&)>;

struct consumer_options {
  tunnel::backend_options backend;
  std::chrono::milliseconds reconnect_min{100};   ///< First pause before a new session.
  std::chrono::milliseconds reconnect_max{5000};  ///< Pauses double up to this.
  /// Called (on the event loop) each time a session is open: for the "serving" line.
  std::function<void(const std::string& session_id, bool first)> on_session;
  /// Makes each new session; empty: tunnel::make_consumer_session(executor, backend).
  /// (Tests give a fake.)
  std::function<std::unique_ptr<tunnel::consumer_session>()> make_session;
};

class consumer {
 public:
  consumer(boost::asio::any_io_executor executor, consumer_options options, runner run);
  ~consumer();
  consumer(const consumer&) = delete;
  consumer& operator=(const consumer&) = delete;

  /// Serves until stop() completes: opens a session, claims and runs requests (many at
  /// once), and opens a new session with backoff when one is lost. Throws
  /// tunnel::backend_config_error for a bad configuration; broker trouble is retried.
  boost::asio::awaitable<void> run();

  /// Leaves cleanly: every request held is answered at once with "Funcie.ConsumerLeft",
  /// presence is removed, and run() returns. Safe to call from a signal handler's
  /// completion on the event loop, more than once.
  boost::asio::awaitable<void> stop();

  /// Requests held right now.
  std::size_t in_flight() const;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace funcie::consumer
