// `funcie status` on Redis: the sessions in the app's presence set, each with its info.
#include "backend/redis/keys.hpp"
#include "backend/redis/redis_backend.hpp"
#include "backend/redis/refused.hpp"
#include "backend/redis/settings.hpp"
#include "tunnel/consumer_info.hpp"
#include "tunnel/try_await.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <optional>

namespace funcie::redis_backend {

namespace asio = boost::asio;

namespace {

asio::awaitable<std::vector<tunnel::consumer_info>> read_consumers(
    redis::connection& conn, const tunnel::backend_options& options) {
  const app_keys keys(options.app);
  const std::string consumers_key = keys.consumers();
  const auto timeout = options.timing.command_timeout;
  std::vector<tunnel::consumer_info> out;
  std::vector<std::string_view> time{"TIME"};
  const redis::reply now_reply = co_await conn.execute_checked(time, timeout);
  if (now_reply.elements.size() != 2) {
    throw redis::error(redis::errc::protocol, "TIME answered out of protocol");
  }
  const std::int64_t now = std::strtoll(now_reply.elements[0].str.c_str(), nullptr, 10) * 1000 +
                           std::strtoll(now_reply.elements[1].str.c_str(), nullptr, 10) / 1000;
  const std::string min = "(" + std::to_string(now);
  std::vector<std::string_view> range{"ZRANGEBYSCORE", consumers_key, min, "+inf", "WITHSCORES"};
  const redis::reply members = co_await conn.execute_checked(range, timeout);
  for (std::size_t i = 0; i + 1 < members.elements.size(); i += 2) {
    const std::string& session = members.elements[i].str;
    const double expiry = std::strtod(members.elements[i + 1].str.c_str(), nullptr);
    const std::string key = keys.consumer(session);
    std::vector<std::string_view> get{"GET", key};
    const redis::reply info = co_await conn.execute_checked(get, timeout);
    if (info.type != redis::reply::kind::string) continue;  // expired or left
    std::optional<tunnel::consumer_card> card;
    try {
      card = tunnel::decode_consumer_card(options.keys.open(info.str));
    } catch (const std::exception& e) {
      spdlog::warn("skipped consumer session {}: its info does not open with our shared secret: {}",
                   session, e.what());
      continue;
    }
    if (!card) {
      spdlog::warn("skipped consumer session {}: its info is not JSON", session);
      continue;
    }
    tunnel::consumer_info entry;
    entry.session = session;
    entry.host = card->host;
    entry.pid = card->pid;
    entry.since_ms = card->since_ms;
    entry.in_flight = card->in_flight;
    entry.routes = card->routes;
    const std::int64_t ttl = card->ttl_ms.value_or((options.timing.heartbeat * 5 / 6).count());
    const auto remaining = static_cast<std::int64_t>(expiry) - now;
    entry.heartbeat_age_ms = std::max<std::int64_t>(0, ttl - remaining);
    out.push_back(std::move(entry));
  }
  co_return out;
}

}  // namespace

asio::awaitable<std::vector<tunnel::consumer_info>> list_consumers(
    asio::any_io_executor executor, const tunnel::backend_options& options) {
  const redis::connect_options connect = connect_options_for(options, "funcie-status");
  std::shared_ptr<redis::connection> conn;
  auto listed =
      co_await tunnel::try_await([&]() -> asio::awaitable<std::vector<tunnel::consumer_info>> {
        conn = co_await open_connection(executor, connect);
        co_return co_await read_consumers(*conn, options);
      }());
  if (conn) conn->close();
  if (!listed) {
    auto message =
        fmt::format("cannot list the consumers on {}: {}", broker_name(options), listed.error);
    if (refused_by_server(listed.exception)) {
      throw tunnel::backend_refused_error(message + refused_hint);
    }
    throw tunnel::backend_error(message);
  }
  co_return std::move(*listed.value);
}

}  // namespace funcie::redis_backend
