#include "runtime_api/server.hpp"
#include "runtime_api/handoff.hpp"
#include "runtime_api/pipelining.hpp"

#include "http/relay.hpp"
#include "http/server.hpp"
#include "util/base64.hpp"

#include <fmt/format.h>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/json.hpp>

namespace funcie::runtime_api {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using error_code = boost::system::error_code;

namespace {

template <class... T>
using channel = asio::experimental::channel<void(error_code, T...)>;

constexpr std::string_view accepted_body = R"({"status":"OK"})";

http::response api_error(unsigned status, std::string_view type, std::string_view message) {
  return http::make_response(status, format_api_error(type, message), "application/json");
}

bool is_json_object(std::string_view body) {
  error_code ec;
  auto value = boost::json::parse(body, ec);
  return !ec && value.is_object();
}

std::optional<route> route_of(const http::request_header& req) {
  try {
    return parse_route(std::string_view(req.method_string()), std::string_view(req.target()));
  } catch (const protocol_error&) {
    return std::nullopt;
  }
}

// A result's POST whose client sent its next GET /next behind it and reads the two answers
// together (runtime/client.cpp): its 202 may wait for the next event.
bool holds_answer(const http::request_header& req) {
  if (http::header_value(req, header::pipelining).empty()) return false;
  const auto r = route_of(req);
  return r && (r->kind == route_kind::response || r->kind == route_kind::error);
}

bool is_streaming(const http::request_header& req) {
  return boost::beast::iequals(http::header_value(req, header::response_mode), "streaming");
}

}  // namespace

struct response_stream::state {
  struct piece {
    std::string bytes;
    bool end = false;
  };
  explicit state(const asio::any_io_executor& ex) : pieces(ex, 4) {}
  // A few pieces in flight: a slow reader holds the runtime back, as a slow caller does.
  channel<piece> pieces;
  std::optional<function_error> error;
  std::string error_body;
  bool ended = false;
};

asio::awaitable<std::optional<std::string>> response_stream::read() {
  auto self = state_;
  if (self->ended) co_return std::nullopt;
  auto next = co_await self->pieces.async_receive(asio::use_awaitable);
  if (next.end) {
    self->ended = true;
    co_return std::nullopt;
  }
  co_return std::move(next.bytes);
}

const std::optional<function_error>& response_stream::error() const {
  return state_->error;
}

const std::string& response_stream::error_body() const {
  return state_->error_body;
}

struct server::state : std::enable_shared_from_this<server::state> {
  struct in_flight {
    std::string request_id;
    std::shared_ptr<handoff<result>> done;
  };

  state(asio::any_io_executor ex, std::string relay)
      : executor(ex), relay_to(std::move(relay)), ready(ex, 1) {}

  asio::any_io_executor executor;
  std::string relay_to;                             // the real Runtime API, when relaying
  std::weak_ptr<response_stream::state> streaming;  // the latest streamed response
  std::unique_ptr<http::server> http;
  // The /next the runtime is blocked in. Handoffs, not channels: the event reaches the
  // runtime's connection, and the result the invocation, inside the call that hands it over
  // (runtime_api/handoff.hpp).
  std::shared_ptr<handoff<invocation>> waiting;
  std::optional<in_flight> current;
  std::string last_request_id;
  std::optional<result> init_error;
  bool initialized = false;  // the runtime has called /next at least once
  bool closed = false;
  channel<> ready;  // a token per /next, so that wait_ready() wakes up

  void finish(result r) {
    auto done = std::move(current->done);
    last_request_id = std::move(current->request_id);
    current.reset();
    done->give(std::move(r));
  }

  // Status for a POST naming `id` when no invocation with that id is in flight.
  http::response stale(const std::string& id) const {
    if (!id.empty() && id == last_request_id) {
      return api_error(403, "InvalidStateTransition", "the runtime already answered request " + id);
    }
    return api_error(400, "InvalidRequestID", "no invocation in flight has request id " + id);
  }

  static asio::awaitable<http::response> handle(std::shared_ptr<state> self, http::request& req) {
    if (!self || self->closed) {
      co_return api_error(500, "ServiceUnavailable", "the environment is closing");
    }
    std::optional<route> r;
    try {
      r = parse_route(std::string_view(req.method_string()), std::string_view(req.target()));
    } catch (const protocol_error& e) {
      co_return api_error(400, "InvalidRequestID", e.what());
    }
    if (!r) {
      co_return api_error(
          404, "InvalidRoute",
          fmt::format("{} {} is not a Runtime API route", std::string_view(req.method_string()),
                      std::string_view(req.target())));
    }
    switch (r->kind) {
      case route_kind::next:
        co_return co_await self->next();
      case route_kind::response:
      case route_kind::error: {
        http::response accepted = r->kind == route_kind::response
                                      ? self->respond(r->request_id, req)
                                      : self->fail(r->request_id, req);
        // The invocation's waiter, woken by finish(), runs first: the caller's answer goes
        // out before this one, whose write may hand the CPU to the runtime (docs/emulate.md).
        // Not needed when this answer waits for the next event (holds_answer).
        if (!holds_answer(req)) co_await asio::post(self->executor, asio::use_awaitable);
        co_return accepted;
      }
      case route_kind::init_error:
        co_return self->fail_init(req);
    }
    co_return api_error(404, "InvalidRoute", "unknown route");
  }

  asio::awaitable<http::response> next() {
    if (current) {
      co_return api_error(403, "InvalidStateTransition",
                          "the runtime asked for the next invocation before answering request " +
                              current->request_id);
    }
    if (init_error) {
      co_return api_error(403, "InvalidStateTransition",
                          "the runtime reported an init error and must exit");
    }
    // A runtime that re-polls (its earlier /next connection gave up) replaces the old one.
    if (waiting) waiting->close();
    auto mine = std::make_shared<handoff<invocation>>(executor);
    waiting = mine;
    initialized = true;
    ready.try_send(error_code{});

    std::optional<invocation> given;
    try {
      given = co_await mine->wait();
    } catch (const boost::system::system_error&) {
      // closed: by close(), or by a later /next that replaced this one
    }
    if (!given) co_return api_error(500, "ServiceUnavailable", "the environment is closing");
    invocation inv = std::move(*given);

    std::string deadline;
    auto res = http::make_response(200, std::move(inv.payload), "application/json");
    for (auto [name, value] : invocation_headers(inv.context, deadline)) res.set(name, value);
    // This server reads pipelined requests: the runtime may send its next /next with its
    // result (runtime/client.cpp). Not when relaying: funcie wrap's /next must look like
    // Lambda's.
    if (relay_to.empty()) res.set(header::pipelining, "1");
    // Fields the real Runtime API sent that funcie does not know, as it sent them (wrap).
    for (const auto& [name, value] : inv.other_headers) {
      if (boost::beast::iequals(name, "Content-Type")) {
        res.set(bhttp::field::content_type, value);
      } else {
        res.insert(name, value);
      }
    }
    co_return res;
  }

  http::response respond(const std::string& id, http::request& req) {
    if (!current || current->request_id != id) return stale(id);
    result r;
    r.outcome = result::kind::success;
    r.content_type = std::string(http::header_value(req, "Content-Type"));
    r.body = std::move(req.body());
    finish(std::move(r));
    return http::make_response(202, std::string(accepted_body), "application/json");
  }

  static result error_result(result::kind kind, http::request& req) {
    auto type_header = http::header_value(req, header::function_error_type);
    auto error = parse_error(req.body(), type_header);
    result r;
    r.outcome = kind;
    r.error_type = error.error_type;
    r.body = is_json_object(req.body()) ? std::move(req.body()) : format_error(error);
    return r;
  }

  http::response fail(const std::string& id, http::request& req) {
    if (!current || current->request_id != id) return stale(id);
    finish(error_result(result::kind::function_error, req));
    return http::make_response(202, std::string(accepted_body), "application/json");
  }

  http::response fail_init(http::request& req) {
    if (initialized || init_error) {
      return api_error(403, "InvalidStateTransition",
                       "init/error is only accepted before the first /next");
    }
    init_error = error_result(result::kind::init_error, req);
    ready.try_send(error_code{});
    return http::make_response(202, std::string(accepted_body), "application/json");
  }

  http::response too_large(const http::request_header& req) {
    std::optional<route> r;
    try {
      r = parse_route(std::string_view(req.method_string()), std::string_view(req.target()));
    } catch (const protocol_error&) {
    }
    if (r && current && current->request_id == r->request_id &&
        (r->kind == route_kind::response || r->kind == route_kind::error)) {
      function_error error{"Function.ResponseSizeTooLarge",
                           fmt::format("Response payload size exceeded maximum allowed payload "
                                       "size ({} bytes).",
                                       max_runtime_post_bytes),
                           {}};
      result res;
      res.outcome = result::kind::function_error;
      res.body = format_error(error);
      res.error_type = error.error_type;
      finish(std::move(res));
    }
    return api_error(
        413, "RequestEntityTooLarge",
        fmt::format("Exceeded maximum allowed payload size ({} bytes).", max_runtime_post_bytes));
  }

  bool wants_stream(const http::request_header& req) const {
    const auto r = route_of(req);
    if (!relay_to.empty()) return !(r && r->kind == route_kind::next);
    return r && r->kind == route_kind::response && is_streaming(req);
  }

  static asio::awaitable<bool> on_stream(std::shared_ptr<state> self, http::streamed_request& in) {
    if (!self || self->closed) co_return false;
    if (!self->relay_to.empty()) co_return co_await self->relay(in);
    co_return co_await self->stream_response(in);
  }

  // Passes the request on to the real Runtime API; a response, error or init error it
  // accepted for the invocation in flight finishes that invocation as `relayed`.
  asio::awaitable<bool> relay(http::streamed_request& in) {
    const auto r = route_of(in.header());
    // Settled before CMD sees Lambda's answer: its next /next may come at once, on another
    // connection, and must find the invocation finished.
    auto settle = [this, &in, &r](unsigned status) {
      // A response Lambda refuses as too large ends the invocation there as
      // Function.ResponseSizeTooLarge: the runtime goes on to its next /next.
      const bool refused_size = status == 413 && r && r->kind == route_kind::response;
      if (closed || !r || (status / 100 != 2 && !refused_size)) return;
      const http::request_header& req = in.header();  // trailers included by now
      result res;
      res.relayed = true;
      res.error_type = refused_size
                           ? std::string("Function.ResponseSizeTooLarge")
                           : std::string(http::header_value(req, header::function_error_type));
      res.content_type = std::string(http::header_value(req, "Content-Type"));
      if ((r->kind == route_kind::response || r->kind == route_kind::error) && current &&
          current->request_id == r->request_id) {
        const bool failed = r->kind == route_kind::error || !res.error_type.empty();
        res.outcome = failed ? result::kind::function_error : result::kind::success;
        finish(std::move(res));
      } else if (r->kind == route_kind::init_error && !initialized && !init_error) {
        res.outcome = result::kind::init_error;
        init_error = std::move(res);
        ready.try_send(error_code{});
      }
    };
    const http::relay_result passed = co_await http::relay(in, relay_to, settle);
    co_return passed.keep_alive;
  }

  // A POST .../response in streaming mode: the invocation's result is handed over at once
  // with its stream, which then gets each piece of the body as it arrives; the runtime's
  // answer (202) comes when its stream has ended, as Lambda's does.
  asio::awaitable<bool> stream_response(http::streamed_request& in) {
    const auto r = route_of(in.header());
    if (!current || current->request_id != r->request_id) {
      auto refused = stale(r->request_id);
      refused.keep_alive(false);
      co_await in.write(refused);
      co_return false;
    }
    co_await in.send_continue();
    auto stream = std::make_shared<response_stream::state>(executor);
    result res;
    res.content_type = std::string(http::header_value(in.header(), "Content-Type"));
    res.stream = std::make_shared<response_stream>(stream);
    finish(std::move(res));

    streaming = stream;
    std::size_t total = 0;
    bool too_large = false;
    bool broke = false;
    std::optional<function_error> failure;
    std::string failure_body;
    try {
      while (!in.done()) {
        const auto piece = co_await in.read();
        if (piece.body.empty()) continue;
        total += piece.body.size();
        if (total > max_streamed_response_bytes) {
          too_large = true;
          break;
        }
        response_stream::state::piece bytes{std::string(piece.body)};
        co_await stream->pieces.async_send(error_code{}, std::move(bytes), asio::use_awaitable);
      }
    } catch (const std::exception& e) {
      if (stream->pieces.is_open() && !closed) {
        // Broken off: the runtime died or closed its connection mid-stream.
        broke = true;
        failure = function_error{"Runtime.TruncatedResponse",
                                 fmt::format("the runtime's response stream broke off after "
                                             "{} bytes: {}",
                                             total, e.what()),
                                 {}};
      } else {
        co_return false;  // nobody reads any more: the environment is closing
      }
    }
    if (too_large) {
      failure = function_error{"Function.ResponseSizeTooLarge",
                               fmt::format("Response payload size exceeded maximum allowed "
                                           "payload size ({} bytes).",
                                           max_streamed_response_bytes),
                               {}};
    } else if (!broke) {
      const std::string_view type = http::header_value(in.header(), header::function_error_type);
      if (!type.empty()) {
        // The body trailer is base64 of the error JSON; a missing or bad one still fails.
        std::string body;
        const auto encoded = http::header_value(in.header(), header::function_error_body);
        if (!util::append_from_base64(body, encoded)) body.clear();
        failure = parse_error(body, type);
        if (is_json_object(body)) failure_body = std::move(body);
      }
    }
    if (failure && failure_body.empty()) failure_body = format_error(*failure);
    stream->error = std::move(failure);
    stream->error_body = std::move(failure_body);
    error_code ec;
    // Named, not a temporary: GCC 12 destroys some temporaries of a co_await twice.
    response_stream::state::piece end{{}, true};
    co_await stream->pieces.async_send(error_code{}, std::move(end),
                                       asio::redirect_error(asio::use_awaitable, ec));
    if (ec || broke) co_return false;
    if (too_large) {
      auto refused = api_error(413, "RequestEntityTooLarge",
                               fmt::format("Exceeded maximum allowed payload size ({} bytes).",
                                           max_streamed_response_bytes));
      refused.keep_alive(false);
      co_await in.write(refused);
      co_return false;
    }
    auto accepted = http::make_response(202, std::string(accepted_body), "application/json");
    accepted.keep_alive(http::wants_keep_alive(in.header()));
    co_await in.write(accepted);
    co_return accepted.keep_alive();
  }

  void close() {
    if (closed) return;
    closed = true;
    if (http) http->stop();
    if (waiting) waiting->close();
    if (current) current->done->close();
    if (auto stream = streaming.lock()) stream->pieces.close();
    ready.close();
  }
};

server::server(asio::any_io_executor executor, std::uint16_t port, std::string relay_to)
    : state_(std::make_shared<state>(executor, std::move(relay_to))) {
  std::weak_ptr<state> weak = state_;
  http::handlers handlers{[weak](http::request& req) -> asio::awaitable<http::response> {
                            return state::handle(weak.lock(), req);
                          },
                          [weak](const http::request_header& req) {
                            auto self = weak.lock();
                            return self ? self->too_large(req)
                                        : api_error(413, "RequestEntityTooLarge",
                                                    "payload too large");
                          },
                          [weak](const http::request_header& req) {
                            auto self = weak.lock();
                            return self && !self->closed && self->wants_stream(req);
                          },
                          [weak](http::streamed_request& in) -> asio::awaitable<bool> {
                            return state::on_stream(weak.lock(), in);
                          },
                          [weak](const http::request_header& req) {
                            auto self = weak.lock();
                            return self && self->relay_to.empty() && holds_answer(req);
                          }};
  state_->http = std::make_unique<http::server>(
      executor, asio::ip::tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), port),
      http::server_options{max_runtime_post_bytes, 16 * 1024}, std::move(handlers));
  state_->http->start();
}

server::~server() {
  close();
}

std::string server::address() const {
  return fmt::format("127.0.0.1:{}", state_->http->port());
}

asio::awaitable<std::optional<result>> server::wait_ready() {
  auto self = state_;
  for (;;) {
    if (self->init_error) co_return self->init_error;
    if (self->waiting) co_return std::nullopt;
    co_await self->ready.async_receive(asio::use_awaitable);
  }
}

bool server::ready() const {
  return state_->init_error.has_value() || state_->waiting != nullptr;
}

asio::awaitable<result> server::invoke(invocation inv) {
  auto self = state_;
  if (!self->waiting || self->current) {
    throw std::logic_error("runtime_api::server::invoke called while the runtime is not ready");
  }
  auto done = std::make_shared<handoff<result>>(self->executor);
  self->current = state::in_flight{inv.context.request_id, done};
  auto waiting = std::move(self->waiting);
  waiting->give(std::move(inv));  // the runtime's connection writes the event meanwhile
  co_return co_await done->wait();
}

void server::close() {
  state_->close();
}

}  // namespace funcie::runtime_api
