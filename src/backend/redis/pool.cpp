#include "backend/redis/pool.hpp"

#include "backend/redis/settings.hpp"
#include "tunnel/try_await.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace funcie::redis_backend {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

connection_lease& connection_lease::operator=(connection_lease&& other) noexcept {
  if (this != &other) {
    give_back();
    pool_ = std::move(other.pool_);
    got_ = std::move(other.got_);
  }
  return *this;
}

void connection_lease::give_back() noexcept {
  if (pool_ && got_.conn) pool_->release(got_.conn);
  got_.conn.reset();
}

connection_pool::connection_pool(asio::any_io_executor executor, redis::connect_options connect,
                                 std::chrono::milliseconds busy_connect_timeout)
    : executor_(std::move(executor)),
      connect_(std::move(connect)),
      busy_connect_timeout_(busy_connect_timeout),
      connected_(executor_, steady::time_point::max()) {}

asio::awaitable<got_connection> connection_pool::get_command() {
  const auto self = shared_from_this();
  if (command_ && command_->is_open()) co_return got_connection{command_, false, {}};
  if (connecting_) {
    boost::system::error_code ignored;
    co_await connected_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (command_ && command_->is_open()) co_return got_connection{command_, true, {}};
    co_return got_connection{nullptr, false, connect_error_};
  }
  connecting_ = true;
  auto opened = co_await tunnel::try_await(open_connection(executor_, connect_));
  connecting_ = false;
  command_ = opened ? *opened.value : nullptr;
  connect_error_ = opened.error;
  connected_.cancel();
  co_return got_connection{command_, true, opened.error};
}

asio::awaitable<connection_lease> connection_pool::get_blocking() {
  const auto self = shared_from_this();
  while (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    if (conn->is_open()) co_return connection_lease(self, got_connection{conn, false, {}});
  }
  // The offer just went through, so the broker is reachable: a busy one (20 x 6 MB in
  // flight) may take longer than the first-contact bound to greet a new connection, and
  // failing here would fail an invocation a consumer may already run.
  auto options = connect_;
  options.connect_timeout = std::max(options.connect_timeout, busy_connect_timeout_);
  auto opened = co_await tunnel::try_await(open_connection(executor_, options));
  co_return connection_lease(self,
                             got_connection{opened ? *opened.value : nullptr, true, opened.error});
}

void connection_pool::forget(const std::shared_ptr<redis::connection>& conn) {
  conn->close();
  if (command_ == conn) command_.reset();
}

void connection_pool::release(const std::shared_ptr<redis::connection>& conn) {
  if (conn->is_open() && idle_.size() < max_idle_blocking) {
    idle_.push_back(conn);
  } else {
    conn->close();
  }
}

void connection_pool::drop_idle() {
  for (auto& conn : idle_) conn->close();
  idle_.clear();
}

void connection_pool::drop_connections() {
  if (command_) command_->close();
  command_.reset();
  drop_idle();
}

}  // namespace funcie::redis_backend
