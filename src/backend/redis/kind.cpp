// The Redis backend's kind (src/tunnel/registry.hpp): redis:// and rediss://.
#include "backend/redis/redis_backend.hpp"
#include "redis/url.hpp"
#include "tunnel/registry.hpp"

#include <fmt/format.h>

namespace funcie::redis_backend {

namespace {

void check_url(std::string_view url) {
  try {
    redis::parse_url(url);
  } catch (const redis::url_error& e) {
    // url_error's message never holds the password.
    throw tunnel::backend_config_error(fmt::format("bad Redis URL: {}", e.what()));
  }
}

std::string redact_url(std::string_view url) {
  return redis::redact(url);
}

}  // namespace

const tunnel::backend_kind& kind() {
  static const tunnel::backend_kind redis{
      .name = "Redis",
      .schemes = {"redis", "rediss"},
      .check_url = check_url,
      .redact_url = redact_url,
      .make_forwarder =
          [](boost::asio::any_io_executor executor,
             const tunnel::backend_options& options) -> std::unique_ptr<tunnel::forwarder_backend> {
        return std::make_unique<redis_forwarder_backend>(std::move(executor), options);
      },
      .make_session =
          [](boost::asio::any_io_executor executor,
             const tunnel::backend_options& options) -> std::unique_ptr<tunnel::consumer_session> {
        return std::make_unique<redis_consumer_session>(std::move(executor), options);
      },
      .list_consumers = list_consumers,
  };
  return redis;
}

}  // namespace funcie::redis_backend
