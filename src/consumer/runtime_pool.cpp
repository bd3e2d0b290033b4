#include "consumer/runtime_pool.hpp"

#include "emulate/environment.hpp"
#include "process/child.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>
#include <exception>

namespace funcie::consumer {

namespace asio = boost::asio;

namespace {

runtime_api::result error_result(std::string type, std::string message) {
  runtime_api::result r;
  r.outcome = runtime_api::result::kind::function_error;
  r.body = runtime_api::format_error(runtime_api::function_error{type, std::move(message), {}});
  r.error_type = std::move(type);
  return r;
}

/// Field `index` (0-based) of "arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]".
std::string arn_field(std::string_view arn, std::size_t index) {
  for (std::size_t i = 0; i < index; ++i) {
    auto colon = arn.find(':');
    if (colon == std::string_view::npos) return {};
    arn.remove_prefix(colon + 1);
  }
  return std::string(arn.substr(0, arn.find(':')));
}

using wake_channel = asio::experimental::channel<void(boost::system::error_code)>;

constexpr std::size_t max_merged_bytes = 1024 * 1024;

// A streamed response on its way from a local runtime to the tunnel: the runtime's pieces
// are queued as it writes them (the environment is never held up by the broker), read in
// order by the consumer, and end with how the invocation ended.
class local_stream final : public runtime_api::piece_source {
 public:
  explicit local_stream(const asio::any_io_executor& executor)
      : wake_(executor, 1), first_(executor, 1) {
    sink.start = [this](std::string_view content_type) -> asio::awaitable<void> {
      content_type_ = content_type;
      co_return;
    };
    sink.bytes = [this](std::string_view bytes) -> asio::awaitable<void> {
      if (bytes.empty()) co_return;
      queue_.emplace_back(bytes);
      wake_.try_send(boost::system::error_code{});
      if (!started_) {
        started_ = true;
        first_.try_send(boost::system::error_code{});
      }
      co_return;
    };
  }

  asio::awaitable<std::optional<std::string>> read() override {
    for (;;) {
      if (!queue_.empty()) {
        // What queued up while the last piece was on its way goes as one piece (up to
        // 1 MiB), so a slow broker costs round trips, not memory.
        std::string bytes = std::move(queue_.front());
        queue_.pop_front();
        while (!queue_.empty() && bytes.size() + queue_.front().size() <= max_merged_bytes) {
          bytes += queue_.front();
          queue_.pop_front();
        }
        co_return bytes;
      }
      if (ended_) co_return std::nullopt;
      boost::system::error_code ec;
      co_await wake_.async_receive(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  const std::optional<runtime_api::function_error>& error() const override { return error_; }
  const std::string& error_body() const override { return error_body_; }

  /// The invocation ended (after its last piece).
  void finish(runtime_api::result ended) {
    if (ended.outcome != runtime_api::result::kind::success) {
      error_ = runtime_api::function_error{ended.error_type, {}, {}};
      error_body_ = ended.body;
    }
    done = std::move(ended);
    ended_ = true;
    wake_.try_send(boost::system::error_code{});
    first_.try_send(boost::system::error_code{});
  }

  /// Waits until the first bytes are written or the invocation ended without any.
  asio::awaitable<void> started_or_ended() {
    while (!started_ && !ended_) {
      boost::system::error_code ec;
      co_await first_.async_receive(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  bool started() const { return started_; }
  const std::string& content_type() const { return content_type_; }

  emulate::stream_sink sink;
  runtime_api::result done;    ///< How it ended, once it did.
  std::exception_ptr failure;  ///< The invocation threw.

 private:
  std::deque<std::string> queue_;
  wake_channel wake_;
  wake_channel first_;
  std::string content_type_;
  bool started_ = false;
  bool ended_ = false;
  std::optional<runtime_api::function_error> error_;
  std::string error_body_;
};

runtime_api::result to_result(emulate::outcome out) {
  runtime_api::result r;
  r.outcome = out.function_error ? runtime_api::result::kind::function_error
                                 : runtime_api::result::kind::success;
  r.body = std::move(out.body);
  r.content_type = out.function_error ? std::string() : std::move(out.content_type);
  r.error_type = std::move(out.error_type);
  return r;
}

}  // namespace

const std::vector<std::string>& developer_variables() {
  static const std::vector<std::string> names = {
      "AWS_PROFILE",
      "AWS_DEFAULT_PROFILE",
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
      "AWS_CONFIG_FILE",
      "AWS_SHARED_CREDENTIALS_FILE",
      "AWS_CA_BUNDLE",
      "AWS_ENDPOINT_URL",
      "AWS_SDK_LOAD_CONFIG",
      // Not AWS settings, but a sanitized local runtime should report where its build says.
      "ASAN_OPTIONS",
      "UBSAN_OPTIONS",
      "LSAN_OPTIONS",
  };
  return names;
}

emulate::function_config config_for(const runtime_pool_options& options,
                                    const tunnel::request& first) {
  const auto& fn = first.function;
  emulate::function_config config;
  config.name = fn.name.empty() ? options.app : fn.name;
  config.region = fn.region;
  if (config.region.empty()) config.region = arn_field(first.context.function_arn, 3);
  if (config.region.empty()) config.region = "us-east-1";
  if (auto account = arn_field(first.context.function_arn, 4); !account.empty()) {
    config.account = account;
  }
  if (fn.memory_mb != 0) config.memory_mb = fn.memory_mb;
  if (!fn.handler.empty()) config.handler = fn.handler;
  // Forwarded invocations carry the cloud's deadline; this only bounds one that does not.
  config.timeout = std::chrono::seconds(900);
  // Not Lambda's 10 s: a runtime started under a debugger may wait at its start (node
  // --inspect-brk, gdbserver) for as long as the developer takes to attach.
  config.init_timeout = std::chrono::seconds(900);
  config.concurrency = options.concurrency;
  config.command = options.command;
  config.environment = options.environment;
  // What the cloud said overrides emulate's defaults for these (set after Lambda's own).
  if (!fn.version.empty()) config.environment["AWS_LAMBDA_FUNCTION_VERSION"] = fn.version;
  if (!fn.log_group.empty()) config.environment["AWS_LAMBDA_LOG_GROUP_NAME"] = fn.log_group;
  if (!fn.log_stream.empty()) config.environment["AWS_LAMBDA_LOG_STREAM_NAME"] = fn.log_stream;
  config.working_directory = options.working_directory;
  config.output = options.output;
  config.output_room = options.output_room;
  config.on_invoke = options.on_invoke;
  if (options.forward_credentials && !first.credentials.empty()) {
    // The function's role, as Lambda gives it: the developer's own settings stay out.
    config.environment["AWS_ACCESS_KEY_ID"] = first.credentials.access_key_id;
    config.environment["AWS_SECRET_ACCESS_KEY"] = first.credentials.secret_access_key;
    if (!first.credentials.session_token.empty()) {
      config.environment["AWS_SESSION_TOKEN"] = first.credentials.session_token;
    }
  } else {
    config.inherit_environment = developer_variables();
  }
  return config;
}

runtime_pool::runtime_pool(asio::any_io_executor executor, runtime_pool_options options)
    : executor_(std::move(executor)), options_(std::move(options)) {}

runtime_pool::~runtime_pool() = default;

asio::awaitable<runtime_api::result> runtime_pool::run(const tunnel::request& req) {
  if (shutting_down_) {
    co_return error_result("Funcie.ConsumerLeft", "the local runtimes are shutting down");
  }
  if (!emulator_) {
    auto config = config_for(options_, req);
    spdlog::debug("starting execution environments for function {} ({} MB, {})", config.name,
                  config.memory_mb, config.region);
    emulator_ = std::make_unique<emulate::emulator>(executor_, std::move(config));
  } else if (req.function != tunnel::function_info{} &&
             req.function.name != emulator_->config().name) {
    spdlog::debug("request for function {} runs in the environments made for {}", req.function.name,
                  emulator_->config().name);
  }
  runtime_api::invocation inv{req.context, req.payload, {}};
  // A forwarder that takes a streamed response as pieces gets one as soon as the runtime
  // writes its first bytes; one that fails before that is an ordinary result (--hold holds
  // it).
  const std::int64_t start_by = req.answer_by_ms != 0 ? req.answer_by_ms - answer_transit_ms : 0;
  if (req.stream) {
    auto stream = std::make_shared<local_stream>(executor_);
    emulate::emulator* emulator = emulator_.get();
    asio::co_spawn(
        executor_,
        [stream, emulator, inv = std::move(inv), start_by,
         this]() mutable -> asio::awaitable<void> {
          runtime_api::result ended;
          try {
            ended = to_result(co_await emulator->invoke(std::move(inv), start_by, &stream->sink));
          } catch (const process::spawn_error& e) {
            ended = error_result("Runtime.InvalidEntrypoint", e.what());
          } catch (const std::exception& e) {
            if (shutting_down_) {
              ended = error_result("Funcie.ConsumerLeft", "the local runtimes are shutting down");
            } else if (stream->started()) {
              ended = error_result("Funcie.ConsumerError", e.what());
            } else {
              stream->failure = std::current_exception();
            }
          }
          stream->finish(std::move(ended));
        },
        asio::detached);
    co_await stream->started_or_ended();
    if (!stream->started()) {
      if (stream->failure) std::rethrow_exception(stream->failure);
      co_return std::move(stream->done);
    }
    runtime_api::result r;
    r.content_type = stream->content_type();
    r.pieces = stream;
    co_return r;
  }
  emulate::outcome out;
  try {
    // A request still queued when the forwarder is about to stop waiting never runs: its
    // caller has an answer (this one, in time to arrive first).
    out = co_await emulator_->invoke(std::move(inv), start_by);
  } catch (const process::spawn_error& e) {
    co_return error_result("Runtime.InvalidEntrypoint", e.what());
  } catch (const std::exception& e) {
    if (shutting_down_) {
      co_return error_result("Funcie.ConsumerLeft", "the local runtimes are shutting down");
    }
    throw;
  }
  co_return to_result(std::move(out));
}

void runtime_pool::restart() {
  if (emulator_) emulator_->restart();
}

std::optional<environment_report> runtime_pool::report_of(unsigned index) const {
  if (!emulator_) return std::nullopt;
  const auto* env = emulator_->environment_at(index);
  if (env == nullptr) return std::nullopt;
  return environment_report{env->runtime_pid(), env->last_init()};
}

runner runtime_pool::as_runner() {
  return [this](const tunnel::request& req) { return run(req); };
}

asio::awaitable<void> runtime_pool::shut_down(std::chrono::milliseconds grace) {
  shutting_down_ = true;
  if (emulator_) co_await emulator_->shut_down(grace);
}

}  // namespace funcie::consumer
