// The one interface between the tunnel's two ends and a broker. The forwarder (cloud side)
// and the consumer (local side) depend only on this; each backend (Redis, SQS) lives in its
// own folder under src/backend/ and implements it, on the shared core of tunnel/core.hpp.
// docs/tunnel.md says what every implementation must guarantee (its numbered rules, cited
// below as "rule N") and how the Redis one does it; docs/sqs.md how the SQS one does it.
#pragma once

#include "tunnel/envelope.hpp"
#include "util/user_error.hpp"

#include "tunnel/consumer_info.hpp"
#include "tunnel/seal.hpp"
#include "tunnel/sqs_options.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace funcie::tunnel {

/// The broker could not be used: unreachable, refused our credentials, went away, answered
/// out of protocol. The message says which broker (never with its password) and what to do.
class backend_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The broker refused what the URL asks (a wrong user or password, a database number it does
/// not have): trying again will not help until the URL is changed. `funcie connect` stops at
/// start with it (exit 2); once serving, it retries it like any broker trouble (docs/local.md).
class backend_refused_error : public backend_error {
 public:
  using backend_error::backend_error;
};

/// A backend URL or option is malformed; thrown at construction, before any I/O.
class backend_config_error : public util::user_error {
 public:
  using util::user_error::user_error;
};

/// Timings every backend keeps. The defaults are the brief's bounds.
struct tunnel_timing {
  /// A consumer that stops answering (killed, stopped, cut off) has what it holds failed,
  /// and stops counting as present, within this bound.
  std::chrono::milliseconds heartbeat{3000};
  /// Bound of one connect attempt to the broker (the cost rule 6 allows).
  std::chrono::milliseconds connect_timeout{200};
  /// Bound of one command that is not a blocking wait.
  std::chrono::milliseconds command_timeout{1000};
};

/// The SQS backend's queues (docs/sqs.md). Empty: read from FUNCIE_REQUEST_QUEUE_URL and
/// FUNCIE_RESPONSE_QUEUE_URL (or the second seed's LAMBDA_PROXY_REQ_QUEUE_URL and
/// LAMBDA_PROXY_RESP_QUEUE_URL). No response queue in a forwarder: fire-and-forget.
struct sqs_queues {
  std::string request_queue_url;
  std::string response_queue_url;
};

/// Options of a backend, whatever its kind.
struct backend_options {
  std::string url;  ///< redis://..., rediss://..., sqs://
  std::string app;  ///< Checked with is_valid_app.
  tunnel_timing timing;
  std::string ca_file;     ///< TLS: a CA bundle to trust instead of the system's (PEM).
  bool tls_verify = true;  ///< TLS: verify the broker's certificate and host name.
  sqs_queues sqs;          ///< SQS only.
  /// Consumer side: the session's routes (docs/routing.md), each already checked with
  /// parse_route; empty: the session takes what no routed session wants.
  std::vector<std::string> routes;
  /// SQS only: the FUNCIE_SQS_* tunables, filled by the caller (tunnel/sqs_options.hpp).
  sqs_options sqs_tuning;
  /// The shared secret's keys: every message put on the broker is sealed with them, every
  /// one taken off is opened (docs/security.md). Empty: messages travel as they are.
  keyring keys;
};

struct forward_outcome;

/// The rest of a streamed answer (docs/tunnel.md, "Streamed responses").
class response_pieces {
 public:
  virtual ~response_pieces() = default;
  /// Waits for the next piece, in order, until `give_up_at`: answered with the piece
  /// (more == false on the last), or failed (consumer lost, broker lost, deadline). Never
  /// throws for broker trouble.
  virtual boost::asio::awaitable<forward_outcome> next(
      std::chrono::steady_clock::time_point give_up_at) = 0;
};

/// What came of offering a request to the consumers.
struct forward_outcome {
  enum class kind {
    not_taken,  ///< Nobody took it, and nobody ever will: run it in the cloud.
    answered,   ///< A consumer answered: `answer` holds its response.
    failed,     ///< Taken by a consumer but no answer: `error_type`/`message` say why
                ///< (consumer lost, broker lost, deadline). It must not run in the cloud.
  };
  kind outcome = kind::not_taken;
  response answer;
  std::string error_type;  ///< For failed: "Funcie.ConsumerLost", "Funcie.BrokerLost",
                           ///< "Funcie.Timeout".
  std::string message;     ///< For failed: one sentence for the caller and the log.
  std::string reason;      ///< For not_taken: why, for a debug log line ("no consumer",
                           ///< "broker unreachable: ...", "backing off until ...").
  /// For answered with a piece that has more after it: where the next ones come from.
  std::shared_ptr<response_pieces> pieces;
};

/// Cloud side. One object per process, used by one event loop; several forward() calls
/// may run at once.
class forwarder_backend {
 public:
  virtual ~forwarder_backend() = default;

  /// Offers `req` to the app's consumers and, if one takes it, waits for its response
  /// until `give_up_at`. Never throws for broker trouble: an unreachable broker gives
  /// not_taken (rule 6) and is not tried again on every call while it stays down.
  /// At most once: not_taken means no consumer can ever run `req`.
  virtual boost::asio::awaitable<forward_outcome> forward(
      const request& req, std::chrono::steady_clock::time_point give_up_at) = 0;

  /// This backend carries streamed responses as pieces (the forwarder then sets
  /// request::stream). False: a consumer sends one whole response.
  virtual bool streams() const { return false; }
};

/// Local side: one session of a consumer. open() joins the tunnel; requests published
/// before that are never seen (rule 4). One object per session: after it fails, make a
/// new one (a new session id).
class consumer_session {
 public:
  virtual ~consumer_session() = default;

  /// This session's id (32 hex digits), valid from construction.
  virtual const std::string& id() const = 0;

  /// Connects, announces presence and starts the heartbeat. Throws backend_error.
  virtual boost::asio::awaitable<void> open() = 0;

  /// Waits for the next request this session has claimed (it is now this session's alone;
  /// nobody else runs it). Throws backend_error when the session is lost (connection
  /// gone, heartbeat lapsed): the caller drops what it holds and opens a new session.
  virtual boost::asio::awaitable<request> next() = 0;

  /// Sends the response to a claimed request, or one piece of it (response::piece; in
  /// order, the last with more == false). A response the forwarder no longer waits
  /// for expires by itself. Throws backend_error.
  virtual boost::asio::awaitable<void> respond(const response& answer) = 0;

  /// Tells the broker how many requests this session holds (shown by `funcie status`).
  virtual void set_in_flight(std::int64_t count) = 0;

  /// Leaves the tunnel: presence removed at once, so forwarders stop offering. The caller
  /// responds to what it holds before. Never throws.
  virtual boost::asio::awaitable<void> close() = 0;
};

/// Backends are made from a URL; its scheme picks the implementation.
std::unique_ptr<forwarder_backend> make_forwarder_backend(boost::asio::any_io_executor executor,
                                                          const backend_options& options);
std::unique_ptr<consumer_session> make_consumer_session(boost::asio::any_io_executor executor,
                                                        const backend_options& options);
/// The consumers connected to options.app now. Throws backend_error.
boost::asio::awaitable<std::vector<consumer_info>> list_consumers(
    boost::asio::any_io_executor executor, const backend_options& options);

// What every backend builds its answers with.
forward_outcome not_taken(std::string reason);
forward_outcome failed(std::string error_type, std::string message);
forward_outcome answered(response answer);
/// The error a consumer sends at once for a claimed request it cannot read
/// ("Funcie.BadRequest"), so that its forwarder does not wait for the deadline.
response bad_request_response(std::string_view id, std::string_view app, std::string_view session,
                              std::string_view why);
/// Throws backend_config_error unless `app` is a valid app name (is_valid_app).
void check_app(std::string_view app);

/// Checks a backend URL's scheme and form (redis://, rediss://, sqs://) before any I/O.
/// Throws backend_config_error; its message never holds a password.
void check_backend_url(std::string_view url);

/// The URL with any password replaced by "****", for logs and errors.
std::string redact_url(std::string_view url);

}  // namespace funcie::tunnel
