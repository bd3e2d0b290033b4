#include "forwarder/forwarder.hpp"

#include "tunnel/heartbeat_bounds.hpp"
#include "tunnel/secrets.hpp"

#include "util/clock.hpp"
#include "util/ids.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <utility>

namespace funcie::forwarder {

namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

using getenv_function = std::function<const char*(const char*)>;

std::string_view value_of(const getenv_function& getenv, const char* name) {
  const char* value = getenv(name);
  return value != nullptr ? std::string_view(value) : std::string_view();
}

// A value quoted in an error message: short, and only the bytes a terminal shows as is.
std::string quoted(std::string_view value) {
  constexpr std::size_t max_shown = 40;
  std::string out = "\"";
  for (char c : value.substr(0, max_shown)) {
    out += std::isprint(static_cast<unsigned char>(c)) != 0 ? c : '?';
  }
  if (value.size() > max_shown) out += "...";
  return out + "\"";
}

// A whole number in [min, max], or the default when unset or empty.
std::int64_t integer(const getenv_function& getenv, const char* name, std::int64_t fallback,
                     std::int64_t min, std::int64_t max, std::string_view unit) {
  const std::string_view text = value_of(getenv, name);
  if (text.empty()) return fallback;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    throw config_error(
        fmt::format("{} must be a whole number of {} from {} to {} (default {}), "
                    "not {}",
                    name, unit, min, max, fallback, quoted(text)));
  }
  return value;
}

bool boolean(const getenv_function& getenv, const char* name, bool fallback) {
  std::string text(value_of(getenv, name));
  if (text.empty()) return fallback;
  std::ranges::transform(text, text.begin(),
                         [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  throw config_error(fmt::format("{} must be true, false, 1 or 0 (default {}), not {}", name,
                                 fallback ? "true" : "false", quoted(text)));
}

// The URL's scheme and form are checked here (tunnel::check_backend_url), so a bad one is
// an init error; the password never shows.
std::string backend_url(const getenv_function& getenv) {
  const std::string_view url = value_of(getenv, "FUNCIE_BACKEND");
  if (url.empty()) return {};
  try {
    tunnel::check_backend_url(url);
  } catch (const tunnel::backend_config_error& e) {
    throw config_error(
        fmt::format("FUNCIE_BACKEND must be the broker's URL, like redis://host:6379, "
                    "rediss://user:password@host:6380 or sqs://, not {}: {}",
                    tunnel::redact_url(url), e.what()));
  }
  return std::string(url);
}

runtime_api::result error_result(std::string type, std::string message) {
  runtime_api::result r;
  r.outcome = runtime_api::result::kind::function_error;
  r.body = runtime_api::format_error(
      {.error_type = type, .error_message = std::move(message), .stack_trace = {}});
  r.error_type = std::move(type);
  return r;
}

runtime_api::result to_result(tunnel::forward_outcome& outcome) {
  auto& answer = outcome.answer;
  runtime_api::result r;
  if (answer.result == tunnel::response::outcome::success) {
    r.outcome = runtime_api::result::kind::success;
    r.content_type = std::move(answer.content_type);
  } else {
    r.outcome = runtime_api::result::kind::function_error;
    r.error_type = std::move(answer.error_type);
  }
  r.body = std::move(answer.body);
  return r;
}

// The pieces of a streamed answer, read as they come through the tunnel. A failure on the
// way (consumer lost, broker lost, deadline) ends the stream with that error.
class tunnel_pieces final : public runtime_api::piece_source {
 public:
  tunnel_pieces(std::string request_id, tunnel::forward_outcome first,
                std::chrono::steady_clock::time_point give_up_at)
      : request_id_(std::move(request_id)),
        pending_(std::move(first.answer)),
        rest_(std::move(first.pieces)),
        give_up_at_(give_up_at) {}

  asio::awaitable<std::optional<std::string>> read() override {
    for (;;) {
      if (pending_) {
        tunnel::response piece = std::move(*pending_);
        pending_.reset();
        const bool last = !piece.is_piece() || !piece.more;
        if (last) {
          done_ = true;
          if (piece.result == tunnel::response::outcome::error) {
            end_with(piece.error_type.empty() ? std::string("Function.Error") : piece.error_type,
                     std::move(piece.body));
            co_return std::nullopt;
          }
        }
        total_ += piece.body.size();
        if (total_ > runtime_api::max_streamed_response_bytes) {
          done_ = true;
          end_with("Function.ResponseSizeTooLarge",
                   runtime_api::format_error(
                       {.error_type = "Function.ResponseSizeTooLarge",
                        .error_message = fmt::format(
                            "Response payload size exceeded maximum allowed payload size ({} "
                            "bytes).",
                            runtime_api::max_streamed_response_bytes),
                        .stack_trace = {}}));
          co_return std::nullopt;
        }
        if (!piece.body.empty()) co_return std::move(piece.body);
        continue;
      }
      if (done_ || !rest_) co_return std::nullopt;
      tunnel::forward_outcome next = co_await rest_->next(give_up_at_);
      if (next.outcome == tunnel::forward_outcome::kind::answered) {
        pending_ = std::move(next.answer);
        continue;
      }
      done_ = true;
      spdlog::warn("{}: streamed response ended by {}: {}", request_id_, next.error_type,
                   next.message);
      std::string body = runtime_api::format_error(
          {.error_type = next.error_type, .error_message = next.message, .stack_trace = {}});
      end_with(std::move(next.error_type), std::move(body));
      co_return std::nullopt;
    }
  }

  const std::optional<runtime_api::function_error>& error() const override { return error_; }
  const std::string& error_body() const override { return error_body_; }

 private:
  void end_with(std::string type, std::string body) {
    error_ = runtime_api::function_error{
        .error_type = std::move(type), .error_message = {}, .stack_trace = {}};
    error_body_ = std::move(body);
  }

  std::string request_id_;
  std::optional<tunnel::response> pending_;
  std::shared_ptr<tunnel::response_pieces> rest_;
  std::chrono::steady_clock::time_point give_up_at_;
  std::size_t total_ = 0;
  bool done_ = false;
  std::optional<runtime_api::function_error> error_;
  std::string error_body_;
};

runtime_api::result streamed_result(const std::string& request_id, tunnel::forward_outcome first,
                                    std::chrono::steady_clock::time_point give_up_at) {
  runtime_api::result r;
  r.outcome = runtime_api::result::kind::success;
  r.content_type = first.answer.content_type;
  r.pieces = std::make_shared<tunnel_pieces>(request_id, std::move(first), give_up_at);
  return r;
}

}  // namespace

forwarder_config config_from_environment(const getenv_function& getenv, std::string_view app) {
  forwarder_config config;
  auto& backend = config.backend;
  backend.url = backend_url(getenv);

  auto& function = config.function;
  function.name = value_of(getenv, "AWS_LAMBDA_FUNCTION_NAME");
  function.version = value_of(getenv, "AWS_LAMBDA_FUNCTION_VERSION");
  function.memory_mb = static_cast<unsigned>(
      integer(getenv, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0, 0, 1'000'000, "megabytes"));
  function.region = value_of(getenv, "AWS_REGION");
  function.log_group = value_of(getenv, "AWS_LAMBDA_LOG_GROUP_NAME");
  function.log_stream = value_of(getenv, "AWS_LAMBDA_LOG_STREAM_NAME");
  function.handler = value_of(getenv, "_HANDLER");

  const std::string_view app_env = value_of(getenv, "FUNCIE_APP");
  const char* app_source = !app.empty()       ? "the app name"
                           : !app_env.empty() ? "FUNCIE_APP"
                                              : "AWS_LAMBDA_FUNCTION_NAME";
  backend.app = !app.empty() ? app : !app_env.empty() ? app_env : function.name;
  if (!backend.app.empty() && !tunnel::is_valid_app(backend.app)) {
    throw config_error(fmt::format(
        "{} {} is not a valid app name: use 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' "
        "and '.'",
        app_source, quoted(backend.app)));
  }
  if (config.enabled() && backend.app.empty()) {
    throw config_error(
        "FUNCIE_APP is not set and neither is AWS_LAMBDA_FUNCTION_NAME: name the app the "
        "consumers connect to (funcie connect --app NAME)");
  }

  backend.timing.heartbeat =
      milliseconds(integer(getenv, "FUNCIE_HEARTBEAT_MS", tunnel::heartbeat_default_ms,
                           tunnel::heartbeat_min_ms, tunnel::heartbeat_max_ms, "milliseconds"));
  backend.timing.connect_timeout =
      milliseconds(integer(getenv, "FUNCIE_CONNECT_TIMEOUT_MS", 200, 10, 10'000, "milliseconds"));
  config.deadline_margin =
      milliseconds(integer(getenv, "FUNCIE_DEADLINE_MARGIN_MS", 500, 0, 60'000, "milliseconds"));

  // The SQS tunables, read here once for the backend (which reads no FUNCIE_SQS_* itself). A
  // bad one refuses, as any bad setting of the function does. Ignored by other backends.
  if (backend.url.size() >= 6 && (backend.url[0] | 0x20) == 's' &&
      std::string_view(backend.url).substr(3, 3) == "://") {
    try {
      backend.sqs_tuning = tunnel::read_sqs_options(getenv);
    } catch (const tunnel::backend_config_error& e) {
      throw config_error(fmt::format("{} (unset it or set it in range)", e.what()));
    }
  }

  backend.ca_file = value_of(getenv, "FUNCIE_CA_FILE");
  if (!backend.ca_file.empty() && ::access(backend.ca_file.c_str(), R_OK) != 0) {
    throw config_error(
        fmt::format("FUNCIE_CA_FILE {} cannot be read: it must name a PEM file of CA "
                    "certificates to trust",
                    quoted(backend.ca_file)));
  }
  backend.tls_verify = boolean(getenv, "FUNCIE_TLS_VERIFY", true);
  config.forward_credentials = boolean(getenv, "FUNCIE_FORWARD_CREDENTIALS", false);
  try {
    backend.keys = tunnel::load_keyring({}, boolean(getenv, "FUNCIE_ENCRYPT", true), getenv);
  } catch (const tunnel::secret_error& e) {
    throw config_error(e.what());
  }
  return config;
}

namespace {

std::unique_ptr<tunnel::forwarder_backend> make_backend(asio::any_io_executor executor,
                                                        const forwarder_config& config) {
  if (!config.enabled()) return nullptr;
  try {
    return tunnel::make_forwarder_backend(std::move(executor), config.backend);
  } catch (const tunnel::backend_config_error& e) {
    throw config_error(fmt::format("FUNCIE_BACKEND: {}", e.what()));
  }
}

}  // namespace

forwarder::forwarder(asio::any_io_executor executor, forwarder_config config)
    : config_(std::move(config)), backend_(make_backend(std::move(executor), config_)) {
  if (backend_) {
    tunnel::log_keyring(config_.backend.keys, "funcie forwarder",
                        "set FUNCIE_SECRET in the function and the same secret locally");
  }
}

forwarder::forwarder(forwarder_config config, std::unique_ptr<tunnel::forwarder_backend> backend)
    : config_(std::move(config)), backend_(std::move(backend)) {}

forwarder::~forwarder() = default;

asio::awaitable<std::optional<runtime_api::result>> forwarder::forward(
    const runtime_api::invocation& invocation) {
  if (!backend_) co_return std::nullopt;
  const std::string& request_id = invocation.context.request_id;
  bool offered = false;
  try {
    const std::int64_t now_ms = util::unix_ms_now();
    const auto steady_now = std::chrono::steady_clock::now();
    const std::int64_t left_ms =
        invocation.context.deadline_ms - config_.deadline_margin.count() - now_ms;
    if (left_ms <= 0) {
      spdlog::warn("{}: not forwarded, the deadline minus the margin has passed", request_id);
      co_return error_result(
          "Funcie.Timeout",
          fmt::format("RequestId: {} Error: the invocation had {} ms left, not more than the "
                      "forwarder's margin of {} ms (FUNCIE_DEADLINE_MARGIN_MS)",
                      request_id, invocation.context.deadline_ms - now_ms,
                      config_.deadline_margin.count()));
    }
    tunnel::request req;
    req.id = util::random_hex(32);
    req.app = config_.backend.app;
    req.sent_ms = now_ms;
    req.context = invocation.context;
    req.function = config_.function;
    req.answer_by_ms = now_ms + left_ms;
    if (config_.forward_credentials) {
      // Read at each request: Lambda's credentials are fixed for an environment's life, but
      // a wrapper may refresh them.
      auto var = [](const char* name) {
        const char* v = std::getenv(name);
        return std::string(v ? v : "");
      };
      req.credentials.access_key_id = var("AWS_ACCESS_KEY_ID");
      req.credentials.secret_access_key = var("AWS_SECRET_ACCESS_KEY");
      req.credentials.session_token = var("AWS_SESSION_TOKEN");
      if (req.credentials.secret_access_key.empty()) req.credentials = {};
    }
    req.payload = invocation.payload;
    req.stream = backend_->streams();
    const auto give_up_at = steady_now + milliseconds(left_ms);

    offered = true;
    tunnel::forward_outcome outcome = co_await backend_->forward(req, give_up_at);
    switch (outcome.outcome) {
      case tunnel::forward_outcome::kind::not_taken:
        spdlog::debug("{}: runs here: {}", request_id, outcome.reason);
        last_reason_ = std::move(outcome.reason);
        co_return std::nullopt;
      case tunnel::forward_outcome::kind::answered: {
        const auto took =
            std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - steady_now);
        // One line per forwarded invocation is too chatty for the function's log at info.
        if (spdlog::should_log(spdlog::level::debug)) {
          spdlog::debug("{}: answered by consumer {} in {} ms{}", request_id,
                        outcome.answer.consumer, took.count(),
                        outcome.answer.result == tunnel::response::outcome::success
                            ? std::string()
                            : " with error " + outcome.answer.error_type);
        }
        if (outcome.answer.is_piece()) {
          co_return streamed_result(request_id, std::move(outcome), give_up_at);
        }
        co_return to_result(outcome);
      }
      case tunnel::forward_outcome::kind::failed:
        spdlog::warn("{}: {}: {}", request_id, outcome.error_type, outcome.message);
        co_return error_result(std::move(outcome.error_type), std::move(outcome.message));
    }
    co_return std::nullopt;  // not reached: every kind is handled above
  } catch (const std::exception& e) {
    if (!offered) {
      spdlog::error("{}: not forwarded ({}); it runs here", request_id, e.what());
      last_reason_ = e.what();
      co_return std::nullopt;
    }
    spdlog::error("{}: the broker failed after the offer: {}", request_id, e.what());
    co_return error_result(
        "Funcie.BrokerLost",
        fmt::format("RequestId: {} Error: the broker failed while a consumer may hold the "
                    "invocation ({}); it was not run here so that it runs at most once",
                    request_id, e.what()));
  } catch (...) {
    if (!offered) co_return std::nullopt;
    co_return error_result(
        "Funcie.BrokerLost",
        fmt::format("RequestId: {} Error: the broker failed while a consumer may hold the "
                    "invocation",
                    request_id));
  }
}

}  // namespace funcie::forwarder
