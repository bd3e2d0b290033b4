#include "backend/redis/settings.hpp"

#include "backend/redis/keys.hpp"
#include "redis/url.hpp"

#include <fmt/format.h>

namespace funcie::redis_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

redis::connect_options connect_options_for(const tunnel::backend_options& options,
                                           std::string client_name) {
  tunnel::check_app(options.app);
  const auto& timing = options.timing;
  if (timing.heartbeat < 60ms) {
    throw tunnel::backend_config_error(
        fmt::format("heartbeat {} ms is too short: use at least 60 ms", timing.heartbeat.count()));
  }
  if (timing.connect_timeout <= 0ms || timing.command_timeout <= 0ms) {
    throw tunnel::backend_config_error("connect and command timeouts must be positive");
  }
  redis::connect_options connect;
  try {
    connect.server = redis::parse_url(options.url);
  } catch (const redis::url_error& e) {
    throw tunnel::backend_config_error(fmt::format("bad Redis URL: {}", e.what()));
  }
  connect.ca_file = options.ca_file;
  connect.verify = options.tls_verify;
  connect.connect_timeout = timing.connect_timeout;
  connect.client_name = std::move(client_name);
  // On a Redis Cluster: the node of the app's slot (all its keys share the {app} hash tag).
  connect.route_key = app_keys(options.app).channel();
  return connect;
}

std::string broker_name(const tunnel::backend_options& options) {
  return "Redis at " + redis::redact(options.url);
}

asio::awaitable<std::shared_ptr<redis::connection>> open_connection(
    asio::any_io_executor executor, const redis::connect_options& options) {
  std::unique_ptr<redis::connection> conn = co_await redis::connection::connect(executor, options);
  co_return std::shared_ptr<redis::connection>(std::move(conn));
}

asio::awaitable<redis::reply> run_script(redis::connection& conn, const script& code,
                                         std::vector<std::string_view> keys,
                                         std::vector<std::string_view> args, milliseconds timeout) {
  const std::string key_count = std::to_string(keys.size());
  std::vector<std::string_view> command;
  command.reserve(3 + keys.size() + args.size());
  command.emplace_back("EVALSHA");
  command.emplace_back(code.sha);
  command.emplace_back(key_count);
  command.insert(command.end(), keys.begin(), keys.end());
  command.insert(command.end(), args.begin(), args.end());
  redis::reply reply = co_await conn.execute(command, timeout);
  if (reply.is_error() && reply.str.starts_with("NOSCRIPT")) {
    command[0] = "EVAL";
    command[1] = code.text;
    reply = co_await conn.execute(std::move(command), timeout);
  }
  if (reply.is_error()) {
    throw redis::error(redis::errc::server, fmt::format("the {} script failed on {}: {}", code.name,
                                                        conn.server_name(), reply.str));
  }
  co_return reply;
}

milliseconds timeout_for(milliseconds base, std::size_t bytes, std::size_t bytes_per_ms) {
  return base + milliseconds(static_cast<std::int64_t>(bytes / bytes_per_ms));
}

}  // namespace funcie::redis_backend
