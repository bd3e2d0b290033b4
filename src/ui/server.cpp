#include "ui/server.hpp"

#include "http/server.hpp"
#include "ui/assets.hpp"
#include "ui/request.hpp"
#include "util/ids.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>

namespace funcie::ui {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

/// The largest request the page sends: an edited event (Lambda's 6 MB) in JSON.
constexpr std::size_t body_limit = 8 * 1024 * 1024;
constexpr auto keep_alive_every = std::chrono::seconds(15);

json::object summary_json(const history::entry& e) {
  json::object o;
  o["id"] = e.id;
  o["app"] = valid_utf8(e.app);
  o["request_id"] = valid_utf8(e.request_id);
  o["trigger"] = valid_utf8(e.trigger);
  o["received_ms"] = e.received_ms;
  o["duration_us"] = e.duration_us;
  o["cold"] = e.cold;
  o["outcome"] = e.outcome;
  o["status"] = e.status;
  o["error_type"] = valid_utf8(e.error_type);
  o["error_message"] = valid_utf8(e.error_message);
  o["session"] = e.session;
  o["environment"] = valid_utf8(e.environment);
  o["source"] = e.source;
  o["replay_of"] = e.replay_of;
  o["bytes"] = e.bytes;
  return o;
}

json::object detail_json(const history::entry& e) {
  auto o = summary_json(e);
  o["event"] = valid_utf8(e.event);
  o["response"] = valid_utf8(e.response);
  o["logs"] = valid_utf8(e.logs);
  return o;
}

std::int64_t number_of(const std::map<std::string, std::string>& q, const std::string& key,
                       std::int64_t fallback) {
  const auto found = q.find(key);
  if (found == q.end()) return fallback;
  std::int64_t v = 0;
  const auto& s = found->second;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() ? v : fallback;
}

std::string value_of(const std::map<std::string, std::string>& q, const std::string& key) {
  const auto found = q.find(key);
  return found == q.end() ? std::string() : found->second;
}

}  // namespace

struct server::state : std::enable_shared_from_this<server::state> {
  server_options options;
  std::unique_ptr<http::server> http;
  bool stopped = false;

  http::response answer(unsigned status, std::string body, std::string_view type,
                        unsigned version) const {
    auto res = http::make_response(status, std::move(body), type, version);
    res.set("Cache-Control", "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    res.set("X-Frame-Options", "DENY");
    res.set("Referrer-Policy", "no-referrer");
    res.set("Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
    return res;
  }
  http::response error(unsigned status, const std::string& message, unsigned version) const {
    json::object o;
    o["error"] = message;
    return answer(status, json::serialize(o), "application/json", version);
  }
  http::response json_answer(const json::value& v, unsigned version) const {
    return answer(200, json::serialize(v), "application/json", version);
  }

  /// Empty when the request may go on; else why not, with its status.
  std::pair<unsigned, std::string> guard(const http::request_header& req, const target& t,
                                         bool needs_token) const {
    const auto port = http ? http->port() : options.port;
    auto why = refuse_cross_site(http::header_value(req, "Host"), http::header_value(req, "Origin"),
                                 http::header_value(req, "Sec-Fetch-Site"), port);
    if (!why.empty()) return {403, why};
    if (!needs_token) return {0, {}};
    std::string_view given = http::header_value(req, "X-Funcie-Token");
    const auto query = t.query.find("token");
    if (given.empty() && query != t.query.end()) given = query->second;
    if (!same_secret(given, options.token)) {
      return {401,
              "no or wrong token: open the URL funcie ui (or funcie connect --ui) printed, "
              "with its ?token="};
    }
    return {0, {}};
  }

  asio::awaitable<http::response> on_request(http::request& req) {
    const auto self = shared_from_this();
    const auto t = split_target(req.target());
    const unsigned v = req.version();
    const bool is_asset = t.path.starts_with("/assets/");
    if (auto [status, why] = guard(req.base(), t, !is_asset); status != 0) {
      co_return error(status, why, v);
    }
    const bool get = req.method() == boost::beast::http::verb::get;
    const bool post = req.method() == boost::beast::http::verb::post;
    if (get && (t.path == "/" || is_asset)) {
      const std::string name = t.path == "/" ? "index.html" : t.path.substr(8);
      for (const auto& a : assets()) {
        if (a.name == name) co_return answer(200, a.bytes, a.content_type, v);
      }
      co_return error(404, "no such file", v);
    }
    if (get && t.path == "/api/invocations") {
      history::filter f;
      f.after = number_of(t.query, "after", 0);
      f.before = number_of(t.query, "before", 0);
      f.app = value_of(t.query, "app");
      f.outcome = value_of(t.query, "outcome");
      f.trigger = value_of(t.query, "trigger");
      f.text = value_of(t.query, "q");
      f.limit = static_cast<std::size_t>(
          std::clamp<std::int64_t>(number_of(t.query, "limit", 200), 1, 1000));
      json::array list;
      for (const auto& e : options.store->list(f)) list.push_back(summary_json(e));
      json::object o;
      o["invocations"] = std::move(list);
      o["last_id"] = options.store->last_id();
      co_return json_answer(o, v);
    }
    if (get && t.path.starts_with("/api/invocations/")) {
      std::int64_t id = 0;
      const auto digits = std::string_view(t.path).substr(17);
      const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
      if (ec != std::errc() || p != digits.data() + digits.size()) {
        co_return error(400, "an invocation is named by its number", v);
      }
      auto e = options.store->get(id);
      if (!e)
        co_return error(404, "no such invocation (it may have been dropped by the size bound)", v);
      co_return json_answer(detail_json(*e), v);
    }
    if (get && t.path == "/api/latency") {
      json::array points;
      const auto n =
          static_cast<std::size_t>(std::clamp<std::int64_t>(number_of(t.query, "n", 100), 1, 1000));
      for (const auto& p : options.store->latency(value_of(t.query, "app"), n)) {
        points.push_back(json::object{{"id", p.id},
                                      {"received_ms", p.received_ms},
                                      {"duration_us", p.duration_us},
                                      {"outcome", p.outcome}});
      }
      co_return json_answer(json::object{{"points", std::move(points)}}, v);
    }
    if (post && (t.path == "/api/replay" || t.path == "/api/fixtures")) {
      if (http::header_value(req, "Content-Type").find("application/json") ==
          std::string_view::npos) {
        co_return error(415, "send JSON (Content-Type: application/json)", v);
      }
      json::object body;
      try {
        auto parsed = json::parse(req.body());
        if (!parsed.is_object()) throw std::invalid_argument("not an object");
        body = std::move(parsed.as_object());
      } catch (const std::exception&) {
        co_return error(400, "the body is not a JSON object", v);
      }
      std::optional<history::entry> source;
      if (const auto* id = body.if_contains("id"); id != nullptr && id->is_int64()) {
        source = options.store->get(id->as_int64());
        if (!source) co_return error(404, "no such invocation", v);
      }
      std::string event;
      if (const auto* edited = body.if_contains("event");
          edited != nullptr && edited->is_string()) {
        event = std::string(edited->as_string());
      } else if (source) {
        event = source->event;
      } else {
        co_return error(400, "give the invocation's \"id\" or an \"event\"", v);
      }
      if (event.size() > 6 * 1024 * 1024)
        co_return error(413, "the event is over Lambda's 6 MB", v);
      // As Lambda: no payload is "{}", and one that is not JSON never reaches the function
      // (nor a fixture, which funcie invoke would refuse).
      if (event.empty()) event = "{}";
      boost::system::error_code not_json;
      json::parse(event, not_json);
      if (not_json) {
        co_return error(400,
                        "the event is not valid JSON: fix it (Lambda refuses such a payload "
                        "before the function runs)",
                        v);
      }
      if (t.path == "/api/fixtures") co_return save_fixture(body, event, v);
      std::string app = source ? source->app : std::string();
      if (const auto* a = body.if_contains("app"); a != nullptr && a->is_string()) {
        app = std::string(a->as_string());
      }
      auto* runner = options.runner_for ? options.runner_for(app) : nullptr;
      if (runner == nullptr) {
        co_return error(409,
                        fmt::format("no local handler for app '{}': start funcie ui in its project "
                                    "(funcie.toml) or give its command: funcie ui -- CMD",
                                    app.substr(0, 64)),
                        v);
      }
      auto e = co_await runner->run(std::move(event));
      e.app = app;
      e.source = "replay";
      e.replay_of = source ? source->id : 0;
      e.id = options.store->record(e);
      spdlog::info("replayed {} as {}: {}", e.replay_of, e.id, e.outcome);
      co_return json_answer(detail_json(*options.store->get(e.id)), v);
    }
    co_return error(404, "no such page", v);
  }

  http::response save_fixture(const json::object& body, const std::string& event, unsigned v) {
    std::string name;
    if (const auto* n = body.if_contains("name"); n != nullptr && n->is_string()) {
      name = std::string(n->as_string());
    }
    if (name.size() > 5 && name.ends_with(".json")) name.resize(name.size() - 5);
    if (!is_valid_fixture_name(name)) {
      return error(400, "a fixture's name is 1 to 64 letters, digits, '-', '_' or '.'", v);
    }
    const auto dir = fs::path(options.fixtures_dir) / "events";
    const auto file = dir / (name + ".json");
    std::error_code ec;
    const auto* replace = body.if_contains("replace");
    if (fs::exists(file, ec) && !(replace != nullptr && replace->is_bool() && replace->as_bool())) {
      return error(
          409, fmt::format("events/{}.json exists: choose another name or replace it", name), v);
    }
    fs::create_directories(dir, ec);
    // Byte for byte: the fixture is the event as the handler got it.
    const std::string& text = event;
    const auto tmp = dir / (name + ".json.tmp");
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << text;
      if (!out.flush()) return error(500, fmt::format("cannot write {}", file.string()), v);
    }
    fs::rename(tmp, file, ec);
    if (ec) return error(500, fmt::format("cannot write {}: {}", file.string(), ec.message()), v);
    return json_answer(json::object{{"path", file.string()}, {"name", name}}, v);
  }

  /// The live list: each new row as an SSE event, from the client's cursor (Last-Event-ID or
  /// ?after=) on.
  asio::awaitable<bool> on_events(http::streamed_request& req) {
    const auto self = shared_from_this();
    const auto t = split_target(req.header().target());
    if (auto [status, why] = guard(req.header(), t, true); status != 0) {
      auto res = error(status, why, req.header().version());
      co_await req.write(res);
      co_return true;
    }
    std::int64_t after = number_of(t.query, "after", -1);
    if (const auto last = http::header_value(req.header(), "Last-Event-ID"); !last.empty()) {
      std::int64_t id = 0;
      if (std::from_chars(last.data(), last.data() + last.size(), id).ec == std::errc()) after = id;
    }
    if (after < 0) after = options.store->last_id();
    co_await req.write_raw(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n: funcie\n\n");
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto quiet_since = std::chrono::steady_clock::now();
    while (!stopped) {
      history::filter f;
      f.after = after;
      f.limit = 500;
      auto rows = options.store->list(f);
      std::string text;
      for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
        text += fmt::format("id: {}\nevent: invocation\ndata: {}\n\n", it->id,
                            json::serialize(summary_json(*it)));
        after = it->id;
      }
      if (text.empty() && std::chrono::steady_clock::now() - quiet_since > keep_alive_every) {
        text = ": still here\n\n";
      }
      if (!text.empty()) {
        co_await req.write_raw(text);  // throws once the page is gone
        quiet_since = std::chrono::steady_clock::now();
      }
      timer.expires_after(options.poll);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return false;
  }
};

server::server(asio::any_io_executor executor, server_options options)
    : state_(std::make_shared<state>()) {
  if (options.token.empty()) options.token = util::random_hex(32);
  state_->options = std::move(options);
  std::weak_ptr<state> weak = state_;
  http::handlers h;
  h.on_request = [weak](http::request& req) -> asio::awaitable<http::response> {
    auto s = weak.lock();
    if (!s) co_return http::make_response(503, "stopping", "text/plain");
    co_return co_await s->on_request(req);
  };
  h.too_large = [weak](const http::request_header& req) {
    auto res = http::make_response(413, "{\"error\":\"the request is over 8 MB\"}",
                                   "application/json", req.version());
    return res;
  };
  h.wants_stream = [](const http::request_header& req) {
    return req.method() == boost::beast::http::verb::get &&
           std::string_view(req.target()).starts_with("/api/events");
  };
  h.on_stream = [weak](http::streamed_request& req) -> asio::awaitable<bool> {
    auto s = weak.lock();
    if (!s) co_return false;
    co_return co_await s->on_events(req);
  };
  http::server_options o;
  o.body_limit = body_limit;
  state_->http = std::make_unique<http::server>(
      executor, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), state_->options.port),
      o, std::move(h));
}

server::~server() {
  stop();
}

std::uint16_t server::port() const {
  return state_->http->port();
}

std::string server::url() const {
  return fmt::format("http://127.0.0.1:{}/?token={}", port(), state_->options.token);
}

void server::start() {
  state_->http->start();
}

void server::stop() {
  state_->stopped = true;
  state_->http->stop();
}

}  // namespace funcie::ui
