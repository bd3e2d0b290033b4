#include "consumer/consumer.hpp"

#include "util/clock.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <vector>

namespace funcie::consumer {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using std::chrono::milliseconds;
using signal_channel = asio::experimental::channel<void(boost::system::error_code)>;

namespace {

std::string host_name() {
  std::array<char, 256> buffer{};
  if (::gethostname(buffer.data(), buffer.size() - 1) != 0 || buffer[0] == '\0') {
    return "this machine";
  }
  return buffer.data();
}

std::string short_id(const std::string& id) {
  return id.substr(0, 8);
}

/// What to call the broker in a log line.
std::string broker_name(const std::string& url) {
  if (url.rfind("redis://", 0) == 0 || url.rfind("rediss://", 0) == 0) return "Redis";
  return "the broker";
}

tunnel::response error_response(const std::string& id, const std::string& app,
                                const std::string& session, std::string type, std::string message) {
  tunnel::response answer;
  answer.id = id;
  answer.app = app;
  answer.consumer = session;
  answer.result = tunnel::response::outcome::error;
  answer.body =
      runtime_api::format_error(runtime_api::function_error{type, std::move(message), {}});
  answer.error_type = std::move(type);
  return answer;
}

tunnel::response to_response(const tunnel::request& req, const std::string& session,
                             runtime_api::result result) {
  tunnel::response answer;
  answer.id = req.id;
  answer.app = req.app;
  answer.consumer = session;
  if (result.outcome == runtime_api::result::kind::success) {
    answer.result = tunnel::response::outcome::success;
    answer.content_type = std::move(result.content_type);
    answer.body = std::move(result.body);
    return answer;
  }
  // A function error, or the runtime's init error: both are function errors to the caller.
  answer.result = tunnel::response::outcome::error;
  answer.error_type = result.error_type.empty() ? std::string("Unhandled") : result.error_type;
  answer.body =
      result.body.empty()
          ? runtime_api::format_error(runtime_api::function_error{answer.error_type, {}, {}})
          : std::move(result.body);
  return answer;
}

}  // namespace

/// One session and what became of it.
struct session_ctx {
  std::shared_ptr<tunnel::consumer_session> session;
  std::shared_ptr<signal_channel> lost;  ///< A respond failed: the session is over.
  std::string lost_reason;
  bool over = false;  ///< Lost or closed: nothing more is sent on it.
};

/// A request this consumer holds: claimed, not answered yet.
struct held_request {
  std::string id;
  std::string app;
  std::shared_ptr<session_ctx> ctx;
};

/// Everything a consumer shares with the coroutines it spawns.
struct core {
  asio::any_io_executor executor;
  consumer_options options;
  runner run;
  std::string host = host_name();
  bool running = false;
  bool stopping = false;
  std::shared_ptr<signal_channel> stop_signal;
  std::shared_ptr<session_ctx> current;
  std::map<std::string, held_request> held;  // by envelope id
  /// With a shared secret: refuses requests the broker replays (docs/security.md).
  std::optional<tunnel::replay_guard> guard;
  std::mt19937 rng{std::random_device{}()};

  void update_in_flight() {
    if (current && !current->over) {
      current->session->set_in_flight(static_cast<std::int64_t>(held.size()));
    }
  }

  std::unique_ptr<tunnel::consumer_session> make_session() {
    if (options.make_session) return options.make_session();
    return tunnel::make_consumer_session(executor, options.backend);
  }

  /// The pause before the attempt after `failures` failed ones, with +-10% jitter.
  milliseconds backoff(unsigned failures) {
    auto pause = options.reconnect_min;
    for (unsigned i = 0; i < failures && pause < options.reconnect_max; ++i) pause *= 2;
    pause = std::min(pause, options.reconnect_max);
    std::uniform_real_distribution<double> jitter(0.9, 1.1);
    return milliseconds(
        static_cast<std::int64_t>(static_cast<double>(pause.count()) * jitter(rng)));
  }

  std::string left_message() const {
    return fmt::format(
        "the local consumer (funcie connect on {}) stopped while running this invocation", host);
  }
};

struct consumer::state : core {};

namespace {

using state_ptr = std::shared_ptr<core>;

// `a || b` waits for the first to *succeed*: an exception from one is only seen when all
// fail. The session's own calls are therefore raced through these, which turn an exception
// into a value.
asio::awaitable<std::exception_ptr> open_caught(std::shared_ptr<tunnel::consumer_session> session) {
  try {
    co_await session->open();
  } catch (...) {
    co_return std::current_exception();
  }
  co_return nullptr;
}

struct next_outcome {
  std::optional<tunnel::request> request;
  std::exception_ptr error;
};

asio::awaitable<next_outcome> next_caught(std::shared_ptr<tunnel::consumer_session> session) {
  next_outcome out;
  try {
    out.request = co_await session->next();
  } catch (...) {
    out.error = std::current_exception();
  }
  co_return out;
}

/// Sends `answer` on the session; a failure ends the session (run() starts a new one).
asio::awaitable<void> send(std::shared_ptr<session_ctx> ctx, tunnel::response answer) {
  std::string error;
  try {
    co_await ctx->session->respond(answer);
    co_return;
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!ctx->over && ctx->lost_reason.empty()) {
    ctx->lost_reason = "sending a response failed: " + error;
    ctx->lost->try_send(boost::system::error_code{});
  }
}

/// A streamed result: each piece goes on the session as the runtime writes it, numbered,
/// then the last one with how it ended. Stops sending when the request is no longer this
/// session's (stop() answered it, or the session was lost).
asio::awaitable<void> send_pieces(state_ptr s, std::shared_ptr<session_ctx> ctx,
                                  const tunnel::request& req, runtime_api::result result) {
  auto ours = [&] {
    const auto it = s->held.find(req.id);
    return it != s->held.end() && it->second.ctx == ctx && !ctx->over && ctx->lost_reason.empty();
  };
  const std::shared_ptr<runtime_api::piece_source> source = result.pieces;
  tunnel::response piece;
  piece.id = req.id;
  piece.app = req.app;
  piece.consumer = ctx->session->id();
  piece.content_type = result.content_type;
  piece.piece = 0;
  while (std::optional<std::string> bytes = co_await source->read()) {
    if (!ours()) co_return;
    piece.more = true;
    piece.body = std::move(*bytes);
    co_await send(ctx, piece);
    ++piece.piece;
    piece.content_type.clear();
  }
  if (!ours()) co_return;
  s->held.erase(req.id);
  s->update_in_flight();
  piece.more = false;
  if (const auto& error = source->error()) {
    piece.result = tunnel::response::outcome::error;
    piece.error_type = error->error_type;
    piece.body = source->error_body();
  } else {
    piece.body.clear();
  }
  co_await send(ctx, std::move(piece));
}

/// Runs one held request and answers it, unless stop() or a lost session took it away.
asio::awaitable<void> serve_one(state_ptr s, std::shared_ptr<session_ctx> ctx,
                                tunnel::request req) {
  runtime_api::result result;
  std::string failure;
  bool failed = false;
  try {
    result = co_await s->run(req);
  } catch (const std::exception& e) {
    failed = true;
    failure = e.what();
  } catch (...) {
    failed = true;
    failure = "unknown exception";
  }
  if (!failed && result.pieces) {
    co_await send_pieces(s, ctx, req, std::move(result));
    co_return;
  }
  auto it = s->held.find(req.id);
  if (it == s->held.end() || it->second.ctx != ctx) co_return;  // answered or dropped already
  s->held.erase(it);
  s->update_in_flight();
  if (ctx->over) co_return;
  auto answer = failed
                    ? error_response(req.id, req.app, ctx->session->id(), "Funcie.ConsumerError",
                                     "the local consumer failed to run this invocation: " + failure)
                    : to_response(req, ctx->session->id(), std::move(result));
  if (failed) spdlog::error("request {}: the runner failed: {}", req.id, failure);
  co_await send(ctx, std::move(answer));
}

void accept(const state_ptr& s, const std::shared_ptr<session_ctx>& ctx, tunnel::request req) {
  if (req.app != s->options.backend.app) {
    spdlog::warn("dropped request {} for another app", req.id);
    return;
  }
  if (s->stopping) {
    // Claimed while stop() was leaving (the claim was on its way): the same answer.
    {
      asio::co_spawn(s->executor,
                     send(ctx, error_response(req.id, req.app, ctx->session->id(),
                                              "Funcie.ConsumerLeft", s->left_message())),
                     asio::detached);
    }
    return;
  }
  if (s->held.count(req.id) != 0) {
    spdlog::warn("dropped request {}: already held", req.id);
    return;
  }
  if (s->guard) {
    if (auto why = s->guard->check(req.id, req.sent_ms, util::unix_ms_now())) {
      // Never run; its forwarder, if one still waits, hears why at once.
      spdlog::warn("refused request {}: {}", req.id, *why);
      asio::co_spawn(
          s->executor,
          send(ctx, tunnel::bad_request_response(req.id, req.app, ctx->session->id(), *why)),
          asio::detached);
      return;
    }
  }
  s->held.emplace(req.id, held_request{req.id, req.app, ctx});
  s->update_in_flight();
  asio::co_spawn(s->executor, serve_one(s, ctx, std::move(req)), asio::detached);
}

/// Takes the session's requests one after the other and accepts each, until the session is
/// over: next() is never raced nor cancelled (a request being taken is never lost to a
/// cancellation, and a request costs no coroutine of a race). next() ends by itself when the
/// session is lost, and when run() or stop() closes the session. Its failure ends the session:
/// the reason goes to run() through ctx->lost.
asio::awaitable<void> take_loop(state_ptr s, std::shared_ptr<session_ctx> ctx) {
  while (!s->stopping && !ctx->over && ctx->lost_reason.empty()) {
    next_outcome got = co_await next_caught(ctx->session);
    if (ctx->over) {
      // A lost session ended the wait; a request taken meanwhile is dropped unrun (its
      // forwarder fails it within the heartbeat bound, as one the session held).
      if (got.request) spdlog::warn("dropped request {}: its session is over", got.request->id);
      co_return;
    }
    if (s->stopping) {
      // Taken while stop() was leaving (the take was on its way): accept() answers it
      // Funcie.ConsumerLeft, like what the session held.
      if (got.request) accept(s, ctx, std::move(*got.request));
      co_return;
    }
    if (got.error) {
      std::string why;
      try {
        std::rethrow_exception(got.error);
      } catch (const std::exception& e) {
        why = e.what();
      } catch (...) {
        why = "unknown error";
      }
      if (ctx->lost_reason.empty()) ctx->lost_reason = std::move(why);
      ctx->lost->try_send(boost::system::error_code{});
      co_return;
    }
    if (got.request) accept(s, ctx, std::move(*got.request));
  }
}

/// The session is over: what it held is dropped (the forwarders fail it), and it is closed
/// in the background in case the broker still listens.
void drop_session(const state_ptr& s, const std::shared_ptr<session_ctx>& ctx,
                  const std::string& reason) {
  ctx->over = true;
  std::size_t dropped = 0;
  for (auto it = s->held.begin(); it != s->held.end();) {
    if (it->second.ctx == ctx) {
      it = s->held.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  spdlog::warn("session {} lost: {}; dropped {} request(s) it held; starting a new session",
               short_id(ctx->session->id()), reason, dropped);
  asio::co_spawn(
      s->executor,
      [session = ctx->session]() -> asio::awaitable<void> { co_await session->close(); },
      asio::detached);
}

}  // namespace

consumer::consumer(asio::any_io_executor executor, consumer_options options, runner run)
    : state_(std::make_shared<state>()) {
  state_->executor = executor;
  state_->options = std::move(options);
  state_->run = std::move(run);
  state_->stop_signal = std::make_shared<signal_channel>(executor, 1);
  if (state_->options.backend.keys.enabled()) state_->guard.emplace(util::unix_ms_now());
}

consumer::~consumer() = default;

std::size_t consumer::in_flight() const {
  return state_->held.size();
}

asio::awaitable<void> consumer::run() {
  auto s = state_;
  if (s->running) throw std::logic_error("consumer::run() is already running");
  s->running = true;
  struct running_guard {
    core& st;
    ~running_guard() { st.running = false; }
  } guard{*s};

  const auto url = tunnel::redact_url(s->options.backend.url);
  const auto broker = broker_name(s->options.backend.url);
  bool first = true;
  unsigned failures = 0;
  milliseconds pause{0};
  while (!s->stopping) {
    if (pause.count() > 0) {
      asio::steady_timer timer(s->executor, pause);
      co_await (timer.async_wait(asio::use_awaitable) ||
                s->stop_signal->async_receive(asio::use_awaitable));
      if (s->stopping) break;
    }
    // A bad configuration (backend_config_error) is thrown to the caller.
    std::shared_ptr<tunnel::consumer_session> session = s->make_session();
    auto ctx = std::make_shared<session_ctx>();
    ctx->session = session;
    ctx->lost = std::make_shared<signal_channel>(s->executor, 1);

    bool opened = false;
    std::string error;
    try {
      auto r =
          co_await (open_caught(session) || s->stop_signal->async_receive(asio::use_awaitable));
      if (r.index() == 0) {
        if (auto e = std::get<0>(r)) std::rethrow_exception(e);
        opened = true;
      }
    } catch (const tunnel::backend_config_error&) {
      throw;
    } catch (const tunnel::backend_refused_error& e) {
      // At start the URL is wrong (exit 2); once served, the broker may come back to it.
      if (first) throw tunnel::backend_config_error(e.what());
      error = e.what();
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (s->stopping) {
      if (opened) co_await session->close();
      break;
    }
    if (!opened) {
      pause = s->backoff(failures++);
      auto next_try = pause < std::chrono::seconds(1)
                          ? fmt::format("{} ms", pause.count())
                          : fmt::format("{:.1f} s", static_cast<double>(pause.count()) / 1000.0);
      // The backend's message names the broker (without its password) most of the time.
      if (error.find(url) != std::string::npos) {
        spdlog::warn("waiting for {}: {}; next try in {}", broker, error, next_try);
      } else {
        spdlog::warn("waiting for {} at {}: {}; next try in {}", broker, url, error, next_try);
      }
      continue;
    }
    failures = 0;
    s->current = ctx;
    spdlog::debug("session {} open", session->id());
    if (s->options.on_session) s->options.on_session(session->id(), first);
    first = false;

    // One coroutine takes the session's requests and accepts each (take_loop); this one only
    // waits until the session is over. The flags are checked before each wait: a channel's
    // try_send is lost when nobody waits right after a cancelled receive (Boost 1.81), so the
    // channel only wakes a waiter.
    asio::co_spawn(s->executor, take_loop(s, ctx), asio::detached);
    while (!s->stopping && ctx->lost_reason.empty()) {
      boost::system::error_code ignored;
      co_await ctx->lost->async_receive(asio::redirect_error(asio::use_awaitable, ignored));
    }
    const std::string lost = ctx->lost_reason;
    if (s->stopping) break;  // stop() answers what is held and closes the session
    drop_session(s, ctx, lost);
    s->current.reset();
    failures = 1;
    pause = s->backoff(0);
  }
}

asio::awaitable<void> consumer::stop() {
  auto s = state_;
  if (s->stopping) co_return;
  s->stopping = true;
  s->stop_signal->try_send(boost::system::error_code{});

  auto ctx = s->current;
  std::vector<held_request> held;
  for (auto& [id, h] : s->held) held.push_back(std::move(h));
  s->held.clear();
  if (!ctx || ctx->over) co_return;

  // Every held request is answered at once, all in parallel.
  if (!held.empty()) {
    spdlog::info("leaving: {} request(s) in flight answered Funcie.ConsumerLeft", held.size());
    auto pending = std::make_shared<std::size_t>(held.size());
    auto done = std::make_shared<signal_channel>(s->executor, 1);
    for (auto& h : held) {
      if (h.ctx != ctx) {
        if (--*pending == 0) done->try_send(boost::system::error_code{});
        continue;
      }
      auto answer =
          error_response(h.id, h.app, ctx->session->id(), "Funcie.ConsumerLeft", s->left_message());
      asio::co_spawn(
          s->executor,
          [ctx, answer = std::move(answer), pending, done]() -> asio::awaitable<void> {
            try {
              co_await ctx->session->respond(answer);
            } catch (const std::exception& e) {
              spdlog::warn("could not answer request {} on leaving: {}", answer.id, e.what());
            }
            if (--*pending == 0) done->try_send(boost::system::error_code{});
          },
          asio::detached);
    }
    co_await done->async_receive(asio::use_awaitable);
  }
  ctx->session->set_in_flight(0);
  co_await ctx->session->close();
  ctx->over = true;
  // In case the backend's next() does not end when its session closes.
  ctx->lost->try_send(boost::system::error_code{});
}

}  // namespace funcie::consumer
