// The SQS backend of the tunnel: a request queue and a response queue; offer, claim and
// commit by message; presence from a tag on the request queue; envelopes cut to the queues' size
// limit (docs/sqs.md).
#pragma once

#include "aws/credentials.hpp"
#include "aws/settings.hpp"
#include "tunnel/backend.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace funcie::tunnel {
struct backend_kind;
}

namespace funcie::sqs_backend {

/// Everything the backend needs, resolved from the options and the environment before any
/// I/O (docs/sqs.md, "Configuration").
struct settings {
  std::string app;
  std::string request_queue;
  std::string response_queue;  ///< Empty: fire-and-forget (forwarder only)
  aws::service_settings service;
  std::string ca_file;
  bool tls_verify = true;
  std::chrono::milliseconds heartbeat{3000};
  std::chrono::milliseconds command_timeout{1000};
  std::chrono::milliseconds claim_window{2000};  ///< FUNCIE_SQS_CLAIM_MS
  std::chrono::milliseconds claim_grace{500};
  std::chrono::milliseconds absent_for{30000};      ///< FUNCIE_SQS_ABSENT_MS (without the tag)
  std::chrono::milliseconds presence_every{10000};  ///< FUNCIE_SQS_PRESENCE_MS
  /// FUNCIE_SQS_PRESENCE_IDLE_MS: while nobody is connected, a forwarder's reads of the
  /// tags space out from presence_every, doubling, up to this.
  std::chrono::milliseconds presence_idle_max{300000};
  int receive_batch = 10;             ///< FUNCIE_SQS_RECEIVE_BATCH
  std::size_t max_message_bytes = 0;  ///< FUNCIE_SQS_MAX_MESSAGE_BYTES; 0: ask
  tunnel::keyring keys;               ///< Every body is sealed with these
};

/// Throws tunnel::backend_config_error naming the variable or flag to fix.
settings resolve_settings(const tunnel::backend_options& options, const aws::getenv_fn& getenv);

class sqs_forwarder_backend final : public tunnel::forwarder_backend {
 public:
  sqs_forwarder_backend(boost::asio::any_io_executor executor,
                        const tunnel::backend_options& options);
  ~sqs_forwarder_backend() override;

  boost::asio::awaitable<tunnel::forward_outcome> forward(
      const tunnel::request& req, std::chrono::steady_clock::time_point give_up_at) override;
  /// A streamed answer comes as `piece` messages (docs/sqs.md, "Streamed responses").
  bool streams() const override;

  struct state;

 private:
  std::shared_ptr<state> state_;
};

class sqs_consumer_session final : public tunnel::consumer_session {
 public:
  sqs_consumer_session(boost::asio::any_io_executor executor,
                       const tunnel::backend_options& options);
  ~sqs_consumer_session() override;

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

/// Pings the request queue and collects the answers for one claim window.
boost::asio::awaitable<std::vector<tunnel::consumer_info>> list_consumers(
    boost::asio::any_io_executor executor, const tunnel::backend_options& options);

/// This backend's kind, for the registry (src/tunnel/registry.hpp).
const tunnel::backend_kind& kind();

}  // namespace funcie::sqs_backend
