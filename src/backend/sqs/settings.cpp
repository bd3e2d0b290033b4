// The SQS backend's settings: from the options and the environment, checked before any I/O
// (docs/sqs.md, "Configuration").
#include "backend/sqs/link.hpp"
#include "backend/sqs/sqs_backend.hpp"

namespace funcie::sqs_backend {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

using namespace detail;

namespace {

std::string variable(const aws::getenv_fn& getenv, const char* name) {
  const char* value = getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::int64_t integer_variable(const aws::getenv_fn& getenv, const char* name, std::int64_t fallback,
                              std::int64_t min, std::int64_t max) {
  const std::string text = variable(getenv, name);
  if (text.empty()) return fallback;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    throw tunnel::backend_config_error(
        fmt::format("{} must be a whole number from {} to {}", name, min, max));
  }
  return value;
}

void check_queue_url(const std::string& url, const char* what) {
  const bool http = url.starts_with("https://") || url.starts_with("http://");
  const auto slash = url.find('/', url.find("://") + 3);
  if (!http || slash == std::string::npos || slash + 1 >= url.size() || url.size() > 2048 ||
      std::any_of(url.begin(), url.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= ' '; })) {
    throw tunnel::backend_config_error(fmt::format(
        "the {} is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)", what));
  }
}

}  // namespace

settings resolve_settings(const tunnel::backend_options& options, const aws::getenv_fn& getenv) {
  tunnel::check_app(options.app);
  const std::string_view url = options.url;
  if (url.size() != 6 || (url[0] | 0x20) != 's' || (url[1] | 0x20) != 'q' ||
      (url[2] | 0x20) != 's' || url.substr(3) != "://") {
    throw tunnel::backend_config_error(
        "the SQS backend URL is just sqs:// (the queues come from FUNCIE_REQUEST_QUEUE_URL and "
        "FUNCIE_RESPONSE_QUEUE_URL, or --request-queue and --response-queue)");
  }
  if (options.timing.heartbeat < 600ms) {
    throw tunnel::backend_config_error(
        fmt::format("heartbeat {} ms is too short for SQS: use at least 600 ms",
                    options.timing.heartbeat.count()));
  }
  settings out;
  out.app = options.app;
  out.request_queue = options.sqs.request_queue_url;
  if (out.request_queue.empty()) out.request_queue = variable(getenv, "FUNCIE_REQUEST_QUEUE_URL");
  if (out.request_queue.empty()) out.request_queue = variable(getenv, "LAMBDA_PROXY_REQ_QUEUE_URL");
  out.response_queue = options.sqs.response_queue_url;
  if (out.response_queue.empty()) {
    out.response_queue = variable(getenv, "FUNCIE_RESPONSE_QUEUE_URL");
  }
  if (out.response_queue.empty()) {
    out.response_queue = variable(getenv, "LAMBDA_PROXY_RESP_QUEUE_URL");
  }
  if (out.request_queue.empty()) {
    throw tunnel::backend_config_error(
        "no request queue: set FUNCIE_REQUEST_QUEUE_URL (or --request-queue) to the queue's URL");
  }
  check_queue_url(out.request_queue, "request queue (FUNCIE_REQUEST_QUEUE_URL)");
  if (!out.response_queue.empty()) {
    check_queue_url(out.response_queue, "response queue (FUNCIE_RESPONSE_QUEUE_URL)");
    if (out.response_queue == out.request_queue) {
      throw tunnel::backend_config_error(
          "the request and response queues are the same queue: use two queues");
    }
  }
  try {
    out.service = aws::resolve_service(getenv, "sqs", out.request_queue);
  } catch (const std::exception& e) {
    throw tunnel::backend_config_error(e.what());
  }
  out.ca_file = options.ca_file;
  if (out.ca_file.empty()) out.ca_file = variable(getenv, "AWS_CA_BUNDLE");
  out.tls_verify = options.tls_verify;
  out.keys = options.keys;
  out.heartbeat = options.timing.heartbeat;
  out.command_timeout = options.timing.command_timeout;
  out.claim_window =
      milliseconds(integer_variable(getenv, "FUNCIE_SQS_CLAIM_MS", 2000, 100, 60000));
  out.absent_for =
      milliseconds(integer_variable(getenv, "FUNCIE_SQS_ABSENT_MS", 30000, 0, 3600 * 1000));
  out.presence_every =
      milliseconds(integer_variable(getenv, "FUNCIE_SQS_PRESENCE_MS", 10000, 1000, 3600 * 1000));
  out.presence_idle_max = milliseconds(
      integer_variable(getenv, "FUNCIE_SQS_PRESENCE_IDLE_MS", 300000, 1000, 24 * 3600 * 1000));
  out.presence_idle_max = std::max(out.presence_idle_max, out.presence_every);
  out.receive_batch =
      static_cast<int>(integer_variable(getenv, "FUNCIE_SQS_RECEIVE_BATCH", 10, 1, 10));
  out.max_message_bytes = static_cast<std::size_t>(integer_variable(
      getenv, "FUNCIE_SQS_MAX_MESSAGE_BYTES", 0, 0, static_cast<std::int64_t>(max_message_bytes)));
  if (out.max_message_bytes != 0 && out.max_message_bytes < min_message_bytes) {
    throw tunnel::backend_config_error(
        fmt::format("FUNCIE_SQS_MAX_MESSAGE_BYTES must be at least {}", min_message_bytes));
  }
  return out;
}

}  // namespace funcie::sqs_backend
