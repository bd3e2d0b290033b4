// What every part of the Redis backend shares: its bounds, how a backend's options become
// connect options (checked before any I/O), and how a script or a connection is run.
#pragma once

#include "backend/redis/scripts.hpp"
#include "redis/connection.hpp"
#include "tunnel/backend.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::redis_backend {

/// Payloads above this are preceded by a presence-only check (no 6 MB upload for nobody),
/// and envelopes above it bypass Lua, which would copy them twice.
inline constexpr std::size_t presence_first_bytes = 64 * 1024;
inline constexpr std::size_t big_envelope_bytes = presence_first_bytes;
/// A response nobody waits for vanishes after this.
inline constexpr std::string_view response_ttl_ms = "60000";
/// Idle blocking connections kept by a forwarder for reuse.
inline constexpr std::size_t max_idle_blocking = 64;
/// Sessions a forwarder picks after the one it assigned a request to was withdrawn from
/// (gone before it took it), before the function's own code runs it (docs/routing.md).
inline constexpr int max_repicks = 3;
/// Items a session takes from its inbox with one wait (BLMPOP) when several are waiting (each
/// at most 64 KiB: 1 MiB at most, well within the late-reply bound on a slow link).
inline constexpr int max_batch_pop = 16;
/// Responses read at once when the owner is found gone (one may have been sent just before).
inline constexpr int max_late_responses = 16;

/// Checks what every backend object needs before any I/O; throws backend_config_error.
redis::connect_options connect_options_for(const tunnel::backend_options& options,
                                           std::string client_name);

/// How logs and errors name the broker: "Redis at host:port" (never with a password).
std::string broker_name(const tunnel::backend_options& options);

/// A new connection (the one place this backend opens one).
boost::asio::awaitable<std::shared_ptr<redis::connection>> open_connection(
    boost::asio::any_io_executor executor, const redis::connect_options& options);

/// EVALSHA, or EVAL when the server lost its script cache. An error reply is thrown as
/// redis::errc::server.
boost::asio::awaitable<redis::reply> run_script(redis::connection& conn, const script& code,
                                                std::vector<std::string_view> keys,
                                                std::vector<std::string_view> args,
                                                std::chrono::milliseconds timeout);

/// The bound of a command that carries `bytes`: a 6 MB payload over a slow uplink is not a
/// dead broker.
std::chrono::milliseconds timeout_for(std::chrono::milliseconds base, std::size_t bytes,
                                      std::size_t bytes_per_ms);

}  // namespace funcie::redis_backend
