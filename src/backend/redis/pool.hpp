// A forwarder's Redis connections: one command connection shared by every forward(), and
// blocking connections (one per BLPOP in progress) lent out and taken back. A lent
// connection is a lease: it goes back to the pool when the lease ends, whatever the exit
// path; a broken one is closed instead of kept.
#pragma once

#include "redis/connection.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace funcie::redis_backend {

class connection_pool;

/// A connection got from the pool, or why there is none.
struct got_connection {
  std::shared_ptr<redis::connection> conn;
  bool fresh = false;  ///< Opened for this call (so an I/O error is not a stale socket).
  std::string error;
};

/// A blocking connection lent by the pool; returned to it (or closed, if broken or the pool
/// is full) when the lease ends.
class connection_lease {
 public:
  connection_lease() = default;
  connection_lease(std::shared_ptr<connection_pool> pool, got_connection got)
      : pool_(std::move(pool)), got_(std::move(got)) {}
  connection_lease(connection_lease&& other) noexcept = default;
  connection_lease& operator=(connection_lease&& other) noexcept;
  connection_lease(const connection_lease&) = delete;
  connection_lease& operator=(const connection_lease&) = delete;
  ~connection_lease() { give_back(); }

  explicit operator bool() const { return got_.conn != nullptr; }
  redis::connection* operator->() const { return got_.conn.get(); }
  redis::connection& operator*() const { return *got_.conn; }
  bool fresh() const { return got_.fresh; }
  const std::string& error() const { return got_.error; }

 private:
  void give_back() noexcept;
  std::shared_ptr<connection_pool> pool_;
  got_connection got_;
};

class connection_pool : public std::enable_shared_from_this<connection_pool> {
 public:
  /// `busy_connect_timeout`: the bound of opening a blocking connection (see get_blocking).
  connection_pool(boost::asio::any_io_executor executor, redis::connect_options connect,
                  std::chrono::milliseconds busy_connect_timeout);

  /// The command connection, opened once for all callers that need it at the same moment.
  boost::asio::awaitable<got_connection> get_command();
  /// A connection for one blocking wait: an idle one, or a new one.
  boost::asio::awaitable<connection_lease> get_blocking();

  /// Closes a connection found broken (the command connection too, if it is that one).
  void forget(const std::shared_ptr<redis::connection>& conn);
  /// Takes a lent connection back: kept for reuse when open and there is room.
  void release(const std::shared_ptr<redis::connection>& conn);
  void drop_idle();
  void drop_connections();

 private:
  boost::asio::any_io_executor executor_;
  redis::connect_options connect_;
  std::chrono::milliseconds busy_connect_timeout_;
  std::shared_ptr<redis::connection> command_;
  bool connecting_ = false;
  boost::asio::steady_timer connected_;  ///< Cancelled when a connect attempt ends.
  std::string connect_error_;
  std::vector<std::shared_ptr<redis::connection>> idle_;
};

}  // namespace funcie::redis_backend
