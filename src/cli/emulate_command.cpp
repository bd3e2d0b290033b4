// funcie emulate: a local stand-in for the Lambda service.
#include "aws/credentials.hpp"
#include "cli/command.hpp"
#include "emulate/config.hpp"
#include "emulate/emulator.hpp"
#include "emulate/invoke_api.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <system_error>

namespace funcie::cli {

namespace {

namespace asio = boost::asio;

// The credentials of an AWS profile (static keys, credential_process, SSO through it), for
// the function as its execution role's would be. Only ever when asked for.
std::map<std::string, std::string> profile_credentials(const std::string& profile) {
  asio::io_context io;
  auto getenv = [&profile](const char* name) -> const char* {
    const std::string_view key(name);
    if (key == "AWS_PROFILE") return profile.c_str();
    // The profile named, not keys that happen to be in funcie's environment.
    if (key == "AWS_ACCESS_KEY_ID" || key == "AWS_SECRET_ACCESS_KEY" ||
        key == "AWS_SESSION_TOKEN" || key.starts_with("AWS_CONTAINER_") ||
        key == "AWS_EC2_METADATA_SERVICE_ENDPOINT") {
      return nullptr;
    }
    if (key == "AWS_EC2_METADATA_DISABLED") return "true";
    return std::getenv(name);
  };
  funcie::aws::credential_provider provider(io.get_executor(), getenv);
  std::optional<funcie::aws::credentials> got;
  std::exception_ptr failure;
  asio::co_spawn(io, provider.get(), [&](std::exception_ptr e, funcie::aws::credentials c) {
    failure = e;
    if (!e) got = std::move(c);
  });
  io.run();
  if (failure) std::rethrow_exception(failure);
  std::map<std::string, std::string> env{{"AWS_ACCESS_KEY_ID", got->access_key_id},
                                         {"AWS_SECRET_ACCESS_KEY", got->secret_access_key}};
  if (!got->session_token.empty()) env["AWS_SESSION_TOKEN"] = got->session_token;
  spdlog::info("the function gets the credentials of {} (--credentials-from-profile)", got->source);
  return env;
}

int run_emulate(funcie::emulate::function_config config, const std::string& host,
                std::uint16_t port) {
  using namespace funcie::emulate;
  asio::io_context io;
  emulator emu(io.get_executor(), std::move(config));
  std::unique_ptr<invoke_api> api;
  try {
    api = std::make_unique<invoke_api>(io.get_executor(), emu,
                                       asio::ip::tcp::endpoint(asio::ip::make_address(host), port));
  } catch (const std::system_error& e) {
    // The server's message names the address and port ("cannot listen on H:P: why").
    if (e.code() == std::errc::address_not_available) {
      fmt::print(stderr,
                 "funcie emulate: {}: no interface of this machine has the address {}; give "
                 "--host 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)\n",
                 e.what(), host);
      return exit_usage;
    }
    fmt::print(stderr,
               "funcie emulate: {}; is another process using the port? Pick another with "
               "--port (0 picks a free one).\n",
               e.what());
    return exit_failure;
  } catch (const std::exception& e) {
    fmt::print(stderr, "funcie emulate: cannot serve the Invoke API: {}\n", e.what());
    return exit_failure;
  }
  // Ctrl-C is handled before anyone is told where we listen, so that a stop sent right
  // after the line is never lost.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("{}: stopping the function's runtimes",
                 sig == SIGINT ? "interrupted" : "terminated");
    api->stop();
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await emu.shut_down(std::chrono::milliseconds(2000));
          io.stop();
        },
        asio::detached);
  });
  // One line on stdout that scripts can read: where to send invocations.
  fmt::print("funcie emulate: function {} listening on http://{}:{} (Lambda Invoke API)\n",
             emu.config().name, host, api->port());
  std::fflush(stdout);

  io.run();
  return 0;
}

}  // namespace

command add_emulate(CLI::App& app) {
  struct options {
    funcie::emulate::function_config config;
    std::string host = "127.0.0.1";
    std::uint16_t port = 9001;
    double timeout_seconds = 3;
    std::vector<std::string> env_assignments;
    std::string credentials_profile;
  };
  auto o = std::make_shared<options>();
  auto& config = o->config;
  auto& host = o->host;
  auto& port = o->port;
  auto& timeout_seconds = o->timeout_seconds;
  auto& env_assignments = o->env_assignments;
  auto* emulate = app.add_subcommand(
      "emulate",
      "A local stand-in for the Lambda service: runs CMD as the function's runtime and serves "
      "the Lambda Invoke API");
  emulate->add_option("--function", config.name, "The function's name")->required();
  emulate->add_option("--port", port, "Port of the Invoke API on 127.0.0.1 (0: a free one)")
      ->capture_default_str();
  emulate->add_option("--host", host, "Address of the Invoke API")->capture_default_str();
  emulate->add_option("--timeout", timeout_seconds, "Function timeout in seconds (1-900)")
      ->capture_default_str();
  emulate->add_option("--memory", config.memory_mb, "Memory size in MB (128-10240)")
      ->capture_default_str();
  emulate
      ->add_option("--concurrency", config.concurrency,
                   "Execution environments at most, each its own CMD process (1-1000)")
      ->capture_default_str();
  emulate->add_option("--region", config.region, "The function's region")->capture_default_str();
  emulate->add_option("--handler", config.handler, "The _HANDLER value the runtime sees")
      ->capture_default_str();
  emulate
      ->add_option("--runtime", config.runtime,
                   "The Runtime that GetFunctionConfiguration reports (CMD runs whatever it is)")
      ->capture_default_str();
  emulate
      ->add_option("--credentials-from-profile", o->credentials_profile,
                   "Give the function the credentials of this AWS profile, as Lambda gives it "
                   "its role's (off by default: the function gets no AWS credentials)")
      ->allow_extra_args(false);
  emulate->add_option("--env", env_assignments, "KEY=VALUE for the function's environment")
      ->allow_extra_args(false);
  emulate->add_option("command", config.command, "The runtime command, after --")->required();

  return {emulate, [o]() -> int {
            auto& fn = o->config;
            try {
              if (!(o->timeout_seconds >= 1 && o->timeout_seconds <= 900)) {
                throw funcie::emulate::config_error(
                    "--timeout must be between 1 and 900 seconds, as on Lambda");
              }
              fn.timeout = std::chrono::milliseconds(static_cast<long>(o->timeout_seconds * 1000));
              boost::system::error_code bad_host;
              asio::ip::make_address(o->host, bad_host);
              if (bad_host) {
                throw funcie::emulate::config_error(fmt::format(
                    "--host must be an IP address, such as 127.0.0.1 (this machine only) or "
                    "0.0.0.0 (every interface), not a name (got '{}')",
                    o->host));
              }
              for (const auto& assignment : o->env_assignments) {
                funcie::emulate::add_environment(fn, assignment);
              }
              funcie::emulate::validate(fn);
              if (!o->credentials_profile.empty()) {
                try {
                  fn.role_credentials = profile_credentials(o->credentials_profile);
                } catch (const std::exception& e) {
                  fmt::print(stderr, "funcie emulate: --credentials-from-profile {}: {}\n",
                             o->credentials_profile, e.what());
                  return exit_usage;
                }
              }
              fn.last_modified =
                  fmt::format("{:%Y-%m-%dT%H:%M:%S}.000+0000", fmt::gmtime(std::time(nullptr)));
            } catch (const funcie::emulate::config_error& e) {
              fmt::print(stderr, "funcie emulate: {}\n", e.what());
              return exit_usage;
            }
            return run_emulate(std::move(fn), o->host, o->port);
          }};
}

}  // namespace funcie::cli
