// One connection to a Redis server over plain TCP or TLS, with Asio coroutines. Commands
// are pipelined: many coroutines may call execute() at once; replies come back in order.
// Replies are parsed by hiredis's RESP reader (RESP2). A connection in subscriber mode
// delivers published messages through receive().
//
// With connect_options::route_key set, the server may be a Redis Cluster: connect() then
// opens the connection on the master that owns the key's slot, and execute() follows MOVED
// (moving the connection to the new owner) and ASK (ASKING then the command on the target),
// and retries TRYAGAIN. Standalone Redis is detected once per process (src/redis/cluster.hpp).
#pragma once

#include "redis/reply.hpp"
#include "redis/url.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::redis {

enum class errc {
  connect_failed,  ///< Resolve/connect/TLS handshake failed or timed out.
  auth_failed,     ///< AUTH or SELECT was refused (message says which, no password).
  io,              ///< The connection broke (or was closed) with commands outstanding.
  timeout,         ///< A command exceeded its timeout; the connection is closed.
  protocol,        ///< The server sent bytes that are not RESP.
  server,          ///< The server answered with an error reply (execute_checked only).
};

/// The one exception type of this module. The message names the server (host:port) and the
/// cause, and never contains a password.
class error : public std::runtime_error {
 public:
  error(errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
  errc code() const noexcept { return code_; }

 private:
  errc code_;
};

struct connect_options {
  endpoint server;
  std::string ca_file;  ///< TLS: trust this PEM bundle instead of the system store.
  bool verify = true;   ///< TLS: verify certificate chain and host name.
  std::chrono::milliseconds connect_timeout{200};  ///< Whole connect incl. TLS and AUTH.
  std::string client_name;  ///< CLIENT SETNAME when not empty (shown by CLIENT LIST).
  /// Not empty: on a Redis Cluster, connect to the master of this key's slot (seed nodes:
  /// server and server.more_seeds) and follow redirections; on standalone Redis, no effect.
  std::string route_key;
};

/// A published message received in subscriber mode.
struct message {
  std::string channel;
  std::string payload;
};

class connection {
 public:
  /// Connects, does the TLS handshake, AUTH [user] password, SELECT db (when not 0) and
  /// CLIENT SETNAME, all within options.connect_timeout. Throws error.
  static boost::asio::awaitable<std::unique_ptr<connection>> connect(
      boost::asio::any_io_executor executor, const connect_options& options);

  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Sends one command and returns its reply (an error reply is returned, not thrown).
  /// `args` are referenced, not copied, until the call completes: a 6 MB value costs no
  /// copy. With `timeout`, a reply that takes longer closes the connection (its pipeline
  /// cannot be resynchronised) and throws errc::timeout. Throws errc::io when the
  /// connection breaks. Safe to call from many coroutines at once.
  boost::asio::awaitable<reply> execute(std::vector<std::string_view> args,
                                        std::optional<std::chrono::milliseconds> timeout = {});

  /// execute(), and an error reply is thrown as errc::server with the server's message.
  boost::asio::awaitable<reply> execute_checked(
      std::vector<std::string_view> args, std::optional<std::chrono::milliseconds> timeout = {});

  /// execute_checked() with each argument given as pieces of the caller's memory, sent one
  /// after the other as one bulk string: a 6 MB envelope as its header and its body is never
  /// joined in memory. On a Redis Cluster the pieces are joined first (a redirection sends
  /// the command again).
  boost::asio::awaitable<reply> execute_pieces_checked(
      std::vector<std::vector<std::string_view>> args,
      std::optional<std::chrono::milliseconds> timeout = {});

  /// SUBSCRIBE channel (SSUBSCRIBE on a cluster with sharded pub/sub); returns when the
  /// server confirmed. A sharded subscription ends when the channel's slot moves to another
  /// node: receive() then throws errc::io. From then on the connection is
  /// in subscriber mode: only (UN)SUBSCRIBE and PING may be executed; published messages
  /// arrive through receive().
  boost::asio::awaitable<void> subscribe(std::string_view channel);

  /// Waits for the next published message. Throws errc::io when the connection breaks.
  boost::asio::awaitable<message> receive();
  /// Whether input is waiting that nobody has seen yet: published messages receive() has not
  /// handed out, or bytes unread in the socket (for a subscriber that must not act on what it
  /// knew before a message that has already arrived).
  bool has_unread_input() const noexcept;

  /// Closes the socket; outstanding and later calls throw errc::io. Idempotent.
  void close() noexcept;
  bool is_open() const noexcept;

  /// The server, as "host:port", for messages.
  const std::string& server_name() const noexcept;

  /// Routed on a Redis Cluster (route_key set and the server is one).
  bool clustered() const noexcept;
  /// Routed on a cluster whose nodes have SSUBSCRIBE/SPUBLISH (Redis 7.0+): publish to the
  /// route key's channel with SPUBLISH, as subscribe() uses SSUBSCRIBE.
  bool sharded_pubsub() const noexcept;
  /// On a cluster: how many masters serve slots, and the route key's slot; else zeros.
  std::size_t cluster_masters() const noexcept;
  std::uint16_t route_slot() const noexcept;

 private:
  struct impl;
  struct route;
  explicit connection(std::shared_ptr<impl> state);
  boost::asio::awaitable<void> follow_moved(std::shared_ptr<impl> from, const std::string& host,
                                            std::uint16_t port, std::uint16_t slot);
  boost::asio::awaitable<reply> follow_ask(const std::vector<std::string_view>& args,
                                           const std::string& host, std::uint16_t port,
                                           std::optional<std::chrono::milliseconds> timeout);
  std::shared_ptr<impl> impl_;
  std::shared_ptr<route> route_;  ///< Null on standalone Redis or without route_key.
};

}  // namespace funcie::redis
