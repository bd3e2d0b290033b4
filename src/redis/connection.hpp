// One connection to a Redis server over plain TCP or TLS, with Asio coroutines. Commands
// are pipelined: many coroutines may call execute() at once; replies come back in order.
// Replies are parsed by hiredis's RESP reader (RESP2). A connection in subscriber mode
// delivers published messages through receive().
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

  /// SUBSCRIBE channel; returns when the server confirmed. From then on the connection is
  /// in subscriber mode: only (UN)SUBSCRIBE and PING may be executed; published messages
  /// arrive through receive().
  boost::asio::awaitable<void> subscribe(std::string_view channel);

  /// Waits for the next published message. Throws errc::io when the connection breaks.
  boost::asio::awaitable<message> receive();

  /// Closes the socket; outstanding and later calls throw errc::io. Idempotent.
  void close() noexcept;
  bool is_open() const noexcept;

  /// The server, as "host:port", for messages.
  const std::string& server_name() const noexcept;

 private:
  struct impl;
  explicit connection(std::shared_ptr<impl> state);
  std::shared_ptr<impl> impl_;
};

}  // namespace funcie::redis
