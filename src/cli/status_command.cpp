// funcie status: which consumers are connected to an app's tunnel right now.
#include "cli/command.hpp"
#include "cli/target_flags.hpp"
#include "tunnel/backend.hpp"
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
#include <ctime>
#include <exception>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace funcie::cli {

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

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
    const auto route =
        c.routes.empty() ? std::string("-") : fmt::format("{}", fmt::join(c.routes, " OR "));
    fmt::print("{:<8}  {:<{}}  {:>7}  {:<32}  {:>9}  {:<14}  {}\n", c.session.substr(0, 8), c.host,
               host_width, c.pid, since, c.in_flight, heartbeat, route);
  }
}

void add_json(boost::json::array& out, const std::string& app,
              const std::vector<tunnel::consumer_info>& consumers) {
  for (const auto& c : consumers) {
    boost::json::object o;
    o["app"] = app;
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
}

}  // namespace

command add_status(CLI::App& app) {
  struct options {
    target_flags target;
    bool json = false;
  };
  auto o = std::make_shared<options>();
  auto* sub = app.add_subcommand(
      "status",
      "Shows the consumers connected to an app's tunnel, or to those of each function of "
      "funcie.toml");
  target_help help;
  help.app = "The app (tunnel) name (default: FUNCIE_APP); without it, the project's functions";
  help.secret_file =
      "The shared secret (default: the project's secret_file, else FUNCIE_SECRET); sqs:// asks "
      "through sealed messages";
  add_target_flags(sub, o->target, help);
  sub->add_flag("--json", o->json,
                "Print a JSON array instead of a table (each consumer with its app)");

  return {sub, [o]() -> int {
            return run_guarded("status", [&]() -> int {
              std::error_code ec;
              const auto specs = resolve_targets(
                  o->target, project_for(o->target, fs::current_path(ec).string()), process_getenv);
              std::vector<tunnel::backend_options> backends;
              for (const auto& spec : specs) backends.push_back(check_target(spec, process_getenv));

              const bool several = specs.size() > 1;
              boost::json::array json;
              for (std::size_t i = 0; i < specs.size(); ++i) {
                asio::io_context io;
                std::vector<tunnel::consumer_info> consumers;
                std::exception_ptr failure;
                asio::co_spawn(io, tunnel::list_consumers(io.get_executor(), backends[i]),
                               [&](std::exception_ptr e, std::vector<tunnel::consumer_info> list) {
                                 failure = e;
                                 consumers = std::move(list);
                               });
                io.run();
                // A user_error or a malformed URL or endpoint (exit 2), or the backend's
                // message, which names the broker without its password (exit 1; exit 2 when it
                // refused the URL's credentials or database).
                if (failure) {
                  try {
                    std::rethrow_exception(failure);
                  } catch (const std::invalid_argument& e) {
                    throw usage_error(e.what());
                  } catch (const tunnel::backend_refused_error& e) {
                    throw usage_error(e.what());  // a wrong password or database in the URL
                  }
                }
                if (o->json) {
                  add_json(json, specs[i].app, consumers);
                  continue;
                }
                if (several) fmt::print("function {} (app {})\n", specs[i].name, specs[i].app);
                print_table(specs[i].app, consumers);
              }
              if (o->json) fmt::print("{}\n", boost::json::serialize(json));
              return exit_ok;
            });
          }};
}

}  // namespace funcie::cli
