// The SQS backend's settings: from the options (the FUNCIE_SQS_* tunables typed, in
// options.sqs_tuning) and the AWS environment, checked before any I/O
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
  // The FUNCIE_SQS_* tunables come typed, read at the edges (tunnel/sqs_options.hpp).
  const auto& tuning = options.sqs_tuning;
  out.claim_window = tuning.claim_window;
  out.absent_for = tuning.absent_for;
  out.presence_every = tuning.presence_every;
  out.presence_idle_max = std::max(tuning.presence_idle_max, tuning.presence_every);
  out.receive_batch = std::clamp(tuning.receive_batch, 1, 10);
  out.max_message_bytes = tuning.max_message_bytes;
  if (out.max_message_bytes != 0 &&
      (out.max_message_bytes < min_message_bytes || out.max_message_bytes > max_message_bytes)) {
    throw tunnel::backend_config_error(
        fmt::format("FUNCIE_SQS_MAX_MESSAGE_BYTES must be 0 or from {} to {}", min_message_bytes,
                    max_message_bytes));
  }
  return out;
}

}  // namespace funcie::sqs_backend
