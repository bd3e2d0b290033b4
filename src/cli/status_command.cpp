// funcie status: which consumers are connected to an app's tunnel right now.
#include "cli/command.hpp"
#include "tunnel/backend.hpp"
#include "tunnel/secrets.hpp"
#include "util/clock.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace funcie::cli {

namespace {

namespace asio = boost::asio;

/// "13s", "2m13s", "1h02m", "3d04h".
std::string span_text(std::int64_t ms) {
  auto s = std::max<std::int64_t>(0, ms / 1000);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

std::string local_time_text(std::int64_t unix_ms) {
  auto t = static_cast<std::time_t>(unix_ms / 1000);
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", fmt::localtime(t));
}

void print_table(const std::string& app, const std::vector<tunnel::consumer_info>& consumers) {
  if (consumers.empty()) {
    fmt::print("no consumer is connected to app {}\n", app);
    return;
  }
  const auto now_ms = util::unix_ms_now();
  std::size_t host_width = 4;
  for (const auto& c : consumers) host_width = std::max(host_width, c.host.size());
  fmt::print("{:<8}  {:<{}}  {:>7}  {:<32}  {:>9}  {:<14}  {}\n", "SESSION", "HOST", host_width,
             "PID", "CONNECTED SINCE", "IN FLIGHT", "LAST HEARTBEAT", "ROUTE");
  for (const auto& c : consumers) {
    auto since =
        fmt::format("{} (for {})", local_time_text(c.since_ms), span_text(now_ms - c.since_ms));
    const auto heartbeat =
        fmt::format("{:.1f}s ago", static_cast<double>(c.heartbeat_age_ms) / 1000.0);
    // Several routes are alternatives (docs/routing.md); "-": takes what no route wants.
    const auto route = c.routes.empty() ? std::string("-") : fmt::format("{}", fmt::join(c.routes, " OR "));
    fmt::print("{:<8}  {:<{}}  {:>7}  {:<32}  {:>9}  {:<14}  {}\n", c.session.substr(0, 8), c.host,
               host_width, c.pid, since, c.in_flight, heartbeat, route);
  }
}

void print_json(const std::vector<tunnel::consumer_info>& consumers) {
  boost::json::array out;
  for (const auto& c : consumers) {
    boost::json::object o;
    o["session"] = c.session;
    o["host"] = c.host;
    o["pid"] = c.pid;
    o["since_ms"] = c.since_ms;
    o["in_flight"] = c.in_flight;
    o["heartbeat_age_ms"] = c.heartbeat_age_ms;
    boost::json::array routes;
    for (const auto& r : c.routes) routes.emplace_back(r);
    o["routes"] = std::move(routes);
    out.push_back(std::move(o));
  }
  fmt::print("{}\n", boost::json::serialize(out));
}

}  // namespace

command add_status(CLI::App& app) {
  struct options {
    std::string backend;
    std::string app;
    std::string ca_file;
    bool tls_insecure = false;
    bool json = false;
    std::string request_queue;
    std::string response_queue;
    std::string secret_file;
  };
  auto o = std::make_shared<options>();
  auto* sub = app.add_subcommand("status", "Shows the consumers connected to an app's tunnel");
  sub->add_option("--backend", o->backend,
                  "The broker URL: redis://[user:password@]host[:port][/db], rediss://... or "
                  "sqs://")
      ->envname("FUNCIE_BACKEND");
  sub->add_option("--request-queue", o->request_queue,
                  "sqs://: the request queue's URL (default: FUNCIE_REQUEST_QUEUE_URL)");
  sub->add_option("--response-queue", o->response_queue,
                  "sqs://: the response queue's URL (default: FUNCIE_RESPONSE_QUEUE_URL)");
  sub->add_option("--app", o->app, "The app (tunnel) name")->envname("FUNCIE_APP");
  sub->add_option("--ca-file", o->ca_file, "TLS: a CA bundle (PEM) to trust for rediss://");
  sub->add_flag("--tls-insecure", o->tls_insecure,
                "TLS: do not verify the broker's certificate (tests only)");
  sub->add_flag("--json", o->json, "Print a JSON array instead of a table");
  sub->add_option("--secret-file", o->secret_file,
                  "The shared secret (default: FUNCIE_SECRET); sqs:// asks through sealed "
                  "messages");

  return {sub, [o]() -> int {
            return run_guarded("status", [&]() -> int {
              if (o->backend.empty()) {
                fmt::print(stderr,
                           "funcie status: no broker: give --backend URL (or FUNCIE_BACKEND)\n");
                return exit_usage;
              }
              if (o->app.empty()) {
                fmt::print(stderr, "funcie status: no app: give --app NAME (or FUNCIE_APP)\n");
                return exit_usage;
              }
              tunnel::check_app(o->app);  // the one message for a bad app name
              tunnel::backend_options backend;
              backend.url = o->backend;
              backend.app = o->app;
              backend.ca_file = o->ca_file;
              backend.tls_verify = !o->tls_insecure;
              backend.sqs.request_queue_url = o->request_queue;
              backend.sqs.response_queue_url = o->response_queue;
              try {
                backend.keys = tunnel::load_keyring(
                    o->secret_file, true, [](const char* name) { return std::getenv(name); });
              } catch (const tunnel::secret_error& e) {
                fmt::print(stderr, "funcie status: {}\n", e.what());
                return exit_usage;
              }

              asio::io_context io;
              std::vector<tunnel::consumer_info> consumers;
              std::exception_ptr failure;
              asio::co_spawn(io, tunnel::list_consumers(io.get_executor(), backend),
                             [&](std::exception_ptr e, std::vector<tunnel::consumer_info> list) {
                               failure = e;
                               consumers = std::move(list);
                             });
              io.run();
              if (failure) {
                try {
                  std::rethrow_exception(failure);
                } catch (const util::user_error& e) {
                  fmt::print(stderr, "funcie status: {}\n", e.what());
                  return exit_usage;
                } catch (const std::invalid_argument& e) {
                  fmt::print(stderr, "funcie status: {}\n", e.what());
                  return exit_usage;
                } catch (const std::exception& e) {
                  // The backend's message names the broker (without its password).
                  fmt::print(stderr, "funcie status: {}\n", e.what());
                  return exit_failure;
                }
              }
              if (o->json) {
                print_json(consumers);
              } else {
                print_table(o->app, consumers);
              }
              return exit_ok;
            });
          }};
}

}  // namespace funcie::cli
