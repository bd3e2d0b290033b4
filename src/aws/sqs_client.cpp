// Every call goes the same way: a JSON body from sqs_json, signed with SigV4, POST / to the
// configured endpoint (never the queue URL's host: local servers issue URLs whose host does
// not resolve), retried on throttling, 5xx and broken connections, and turned into one
// sqs_error that says what to do. Nothing here ever formats a credential, a signature or
// the Authorization header.
#include "aws/sqs_client.hpp"

#include "aws/sigv4.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <array>
#include <optional>
#include <random>

namespace funcie::aws {

namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

/// Where the caller read about permissions.
constexpr std::string_view permissions_doc = "docs/sqs.md";

struct call {
  std::string_view operation;  ///< "SendMessage"
  std::string queue;           ///< The queue URL, or the name for GetQueueUrl
  bool by_name = false;
  std::string body;
  milliseconds extra_time{0};  ///< A long poll's wait, on top of the attempt timeout
};

/// Time allowed for moving `bytes` on top of the attempt timeout: a 1 MiB message over a
/// slow uplink (or to a busy server) is not an unreachable one. 4 ms per KiB: 4 s per MiB.
milliseconds transfer_time(std::size_t bytes) {
  return milliseconds(static_cast<std::int64_t>(bytes / 256));
}

std::string queue_words(const call& c) {
  return c.by_name ? "the queue named " + c.queue : c.queue;
}

/// Parses an HTTP Date ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110's IMF-fixdate).
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text) {
  auto comma = text.find(", ");
  if (comma == std::string_view::npos) return std::nullopt;
  text.remove_prefix(comma + 2);
  if (text.size() < 24) return std::nullopt;
  auto number = [&](std::size_t at, std::size_t len) -> int {
    int v = 0;
    for (std::size_t i = at; i < at + len; ++i) {
      if (text[i] < '0' || text[i] > '9') return -1;
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  static constexpr std::array<std::string_view, 12> months = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  unsigned month = 0;
  for (unsigned i = 0; i < months.size(); ++i) {
    if (text.substr(3, 3) == months[i]) month = i + 1;
  }
  int day = number(0, 2), year = number(7, 4);
  int hour = number(12, 2), minute = number(15, 2), second = number(18, 2);
  if (month == 0 || day < 1 || year < 1970 || hour < 0 || minute < 0 || second < 0) {
    return std::nullopt;
  }
  std::chrono::year_month_day date{std::chrono::year(year), std::chrono::month(month),
                                   std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days(date) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
         std::chrono::seconds(second);
}

/// "User: arn:aws:sts::1:assumed-role/x/y is not authorized to perform: ..." -> the ARN.
std::string identity_in(std::string_view message) {
  constexpr std::string_view prefix = "User: ";
  auto start = message.find(prefix);
  if (start == std::string_view::npos) return {};
  start += prefix.size();
  auto end = message.find(" is not authorized", start);
  if (end == std::string_view::npos) return {};
  return std::string(message.substr(start, end - start));
}

bool is_permission_code(std::string_view code) {
  return code == "AccessDenied" || code == "AccessDeniedException" ||
         code == "AWS.SimpleQueueService.AccessDenied" || code == "KMS.AccessDeniedException";
}

std::string with_message(const sqs_json::error_info& info) {
  std::string out = info.code.empty() ? std::string("no error code") : info.code;
  if (!info.message.empty()) out += ": " + info.message;
  return out;
}

}  // namespace

struct sqs_client::state {
  state(asio::any_io_executor ex, sqs_client_options o, std::shared_ptr<credential_provider> c)
      : executor(ex),
        options(std::move(o)),
        to(parse_endpoint(options.endpoint)),
        provider(std::move(c)),
        http(ex, options.tls),
        random(std::random_device{}()) {
    if (options.max_attempts < 1) options.max_attempts = 1;
  }

  asio::any_io_executor executor;
  sqs_client_options options;
  endpoint to;
  std::shared_ptr<credential_provider> provider;
  http_client http;
  std::mt19937_64 random;
  milliseconds offset{0};
  std::string credential_source;  ///< Of the last credentials used, for messages

  std::string region_words() const {
    return options.region.empty() ? std::string() : " (in region " + options.region + ")";
  }

  /// The request of one attempt, signed now.
  http_request signed_request(const call& c, const credentials& creds) {
    signing_input input;
    input.method = "POST";
    input.host = to.host_header();
    input.path = "/";
    input.headers = {{"content-type", std::string(sqs_json::content_type)},
                     {"x-amz-target", sqs_json::target(c.operation)}};
    input.payload = c.body;
    input.region = options.region;
    input.service = "sqs";
    input.time = std::chrono::system_clock::now();
    signature sig = sign(input, creds);
    http_request request;
    request.method = "POST";
    request.target = "/";
    request.headers = std::move(input.headers);
    request.headers.emplace_back("x-amz-date", sig.amz_date);
    if (!sig.security_token.empty()) {
      request.headers.emplace_back("x-amz-security-token", sig.security_token);
    }
    request.headers.emplace_back("authorization", sig.authorization);
    request.headers.emplace_back("user-agent", "funcie");
    request.body = c.body;
    return request;
  }

  /// SQS's clock from its answer's Date, which has whole seconds: the offset is the smallest
  /// one consistent with Date and the time the exchange took (0 when ours fits in).
  void record_clock(const http_response& response, std::chrono::system_clock::time_point sent,
                    std::chrono::system_clock::time_point received) {
    auto date = parse_http_date(response.header("date"));
    if (!date) return;
    auto lowest = *date - received;                         // SQS at the earliest
    auto highest = *date + std::chrono::seconds(1) - sent;  // SQS at the latest
    if (lowest > std::chrono::system_clock::duration::zero()) {
      offset = std::chrono::duration_cast<milliseconds>(lowest);
    } else if (highest < std::chrono::system_clock::duration::zero()) {
      offset = std::chrono::duration_cast<milliseconds>(highest);
    } else {
      offset = milliseconds(0);
    }
  }

  sqs_error failure(const call& c, const sqs_json::error_info& info, unsigned status,
                    int attempts) const {
    using k = sqs_json::error_info::kind;
    const std::string op = "sqs:" + std::string(c.operation);
    switch (info.type) {
      case k::queue_missing:
        return sqs_error(sqs_error::kind::queue_missing, info.code,
                         std::string("SQS queue ") + (c.by_name ? "named " : "") + c.queue +
                             " does not exist" + region_words() +
                             ": create it or check the queue URL and the region");
      case k::access_denied: {
        if (is_permission_code(info.code)) {
          std::string who = identity_in(info.message);
          who = who.empty() ? "the role or user" : "the role or user " + who;
          if (!credential_source.empty()) who += " (credentials from " + credential_source + ")";
          return sqs_error(sqs_error::kind::access_denied, info.code,
                           "access denied to " + op + " on " + queue_words(c) + " (" + info.code +
                               "): " + who + " needs " + op + " on the queue's ARN; see " +
                               std::string(permissions_doc));
        }
        return sqs_error(
            sqs_error::kind::access_denied, info.code,
            "SQS refused the credentials" +
                (credential_source.empty() ? std::string() : " from " + credential_source) +
                " for " + op + " on " + queue_words(c) + " (" + with_message(info) +
                "): check the access key, secret and session token, and that this "
                "machine's clock is right");
      }
      case k::throttled:
        return sqs_error(sqs_error::kind::throttled, info.code,
                         "SQS throttled " + op + " on " + queue_words(c) + " " +
                             std::to_string(attempts) + " times in a row (" + with_message(info) +
                             "): send fewer requests, or ask AWS to raise the account's quota");
      case k::server:
        return sqs_error(sqs_error::kind::server, info.code,
                         "SQS failed " + op + " on " + queue_words(c) + " " +
                             std::to_string(attempts) + " times (HTTP " + std::to_string(status) +
                             ", " + with_message(info) + "): try again later");
      case k::invalid:
      case k::other:
        break;
    }
    return sqs_error(sqs_error::kind::invalid, info.code,
                     "SQS refused " + op + " on " + queue_words(c) + " (HTTP " +
                         std::to_string(status) + ", " + with_message(info) + ")");
  }

  sqs_error transport_failure(const call& c, const http_error& e, int attempts) const {
    return sqs_error(sqs_error::kind::transport, "",
                     "cannot reach SQS at " + options.endpoint + ": " + e.detail() +
                         " (sqs:" + std::string(c.operation) + " on " + queue_words(c) + ", " +
                         std::to_string(attempts) + (attempts == 1 ? " attempt)" : " attempts)"));
  }

  double random01() { return std::uniform_real_distribution<double>(0.0, 1.0)(random); }
};

namespace {

/// Runs `c` with its retries; returns the body of the 200 answer.
asio::awaitable<std::string> perform(std::shared_ptr<sqs_client::state> s, call c) {
  const int max_attempts = s->options.max_attempts;
  for (int attempt = 1;; ++attempt) {
    credentials creds;
    try {
      creds = co_await s->provider->get();
    } catch (const credentials_error& e) {
      throw sqs_error(sqs_error::kind::credentials, "", e.what());
    }
    s->credential_source = creds.source;

    bool throttled = false;
    std::string why;  // of a retry, for the debug log
    try {
      http_request request = s->signed_request(c, creds);
      auto sent = std::chrono::system_clock::now();
      const milliseconds bound =
          s->options.attempt_timeout + c.extra_time + transfer_time(c.body.size());
      http_response response = co_await s->http.send(s->to, std::move(request), bound);
      s->record_clock(response, sent, std::chrono::system_clock::now());
      if (response.status == 200) co_return std::move(response.body);
      sqs_json::error_info info = sqs_json::parse_error_response(
          response.status, response.body, response.header("x-amzn-query-error"));
      if (!info.retryable() || attempt >= max_attempts) {
        throw s->failure(c, info, response.status, attempt);
      }
      throttled = info.type == sqs_json::error_info::kind::throttled;
      why = "HTTP " + std::to_string(response.status) + " " + info.code;
    } catch (const http_error& e) {
      // A refused certificate stays refused: no point in trying again.
      if (e.cause() == http_error::kind::tls || attempt >= max_attempts) {
        throw s->transport_failure(c, e, attempt);
      }
      why = e.detail();
    }
    milliseconds backoff = retry_backoff(attempt, throttled, s->random01());
    spdlog::debug("sqs:{} on {}: attempt {} failed ({}); retrying in {} ms", c.operation,
                  queue_words(c), attempt, why, backoff.count());
    asio::steady_timer timer(s->executor, backoff);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

/// Parses a 200 answer; a body that is not SQS's is an error of its own.
template <class Parse>
auto parse_answer(const sqs_client::state& s, const call& c, Parse&& parse) {
  try {
    return parse();
  } catch (const sqs_json::parse_error& e) {
    throw sqs_error(sqs_error::kind::server, "",
                    "SQS at " + s.options.endpoint + " answered sqs:" + std::string(c.operation) +
                        " on " + queue_words(c) + " with something funcie cannot read (" +
                        e.what() + "): is the endpoint an SQS server?");
  }
}

}  // namespace

sqs_client::sqs_client(asio::any_io_executor executor, sqs_client_options options,
                       std::shared_ptr<credential_provider> credentials)
    : state_(std::make_shared<state>(std::move(executor), std::move(options),
                                     std::move(credentials))) {}

sqs_client::~sqs_client() = default;

asio::awaitable<std::string> sqs_client::send_message(const std::string& queue_url,
                                                      const std::string& body) {
  auto s = state_;
  call c;
  c.operation = "SendMessage";
  c.queue = queue_url;
  c.body = sqs_json::send_message(queue_url, body);
  std::string answer = co_await perform(s, c);
  co_return parse_answer(*s, c, [&] { return sqs_json::parse_send_message(answer, body); });
}

asio::awaitable<std::vector<sqs_json::received_message>> sqs_client::receive_message(
    const std::string& queue_url, int max_messages, int wait_seconds, int visibility_timeout) {
  auto s = state_;
  call c;
  c.operation = "ReceiveMessage";
  c.queue = queue_url;
  c.body = sqs_json::receive_message(queue_url, max_messages, wait_seconds, visibility_timeout);
  // The wait, and 250 ms per message that may come (up to 1 MiB each): enough for a busy
  // server, short enough that a dead one is noticed within seconds.
  c.extra_time = std::chrono::seconds(std::max(wait_seconds, 0)) +
                 milliseconds(250) * std::max(max_messages, 1);
  std::string answer = co_await perform(s, c);
  co_return parse_answer(*s, c, [&] { return sqs_json::parse_receive_message(answer); });
}

asio::awaitable<void> sqs_client::delete_message(const std::string& queue_url,
                                                 const std::string& receipt_handle) {
  call c;
  c.operation = "DeleteMessage";
  c.queue = queue_url;
  c.body = sqs_json::delete_message(queue_url, receipt_handle);
  co_await perform(state_, c);
}

asio::awaitable<void> sqs_client::change_message_visibility(const std::string& queue_url,
                                                            const std::string& receipt_handle,
                                                            int seconds) {
  call c;
  c.operation = "ChangeMessageVisibility";
  c.queue = queue_url;
  c.body = sqs_json::change_message_visibility(queue_url, receipt_handle, seconds);
  co_await perform(state_, c);
}

asio::awaitable<std::string> sqs_client::get_queue_url(const std::string& queue_name,
                                                       const std::string& owner_account) {
  auto s = state_;
  call c;
  c.operation = "GetQueueUrl";
  c.queue = queue_name;
  c.by_name = true;
  c.body = sqs_json::get_queue_url(queue_name, owner_account);
  std::string answer = co_await perform(s, c);
  co_return parse_answer(*s, c, [&] { return sqs_json::parse_get_queue_url(answer); });
}

asio::awaitable<std::map<std::string, std::string>> sqs_client::get_queue_attributes(
    const std::string& queue_url, const std::vector<std::string>& names) {
  auto s = state_;
  call c;
  c.operation = "GetQueueAttributes";
  c.queue = queue_url;
  c.body = sqs_json::get_queue_attributes(queue_url, names);
  std::string answer = co_await perform(s, c);
  co_return parse_answer(*s, c, [&] { return sqs_json::parse_get_queue_attributes(answer); });
}

asio::awaitable<std::vector<std::string>> sqs_client::send_message_batch(
    const std::string& queue_url, const std::vector<std::string>& bodies) {
  auto s = state_;
  call c;
  c.operation = "SendMessageBatch";
  c.queue = queue_url;
  c.body = sqs_json::send_message_batch(queue_url, bodies);
  std::string answer = co_await perform(s, c);
  co_return parse_answer(*s, c,
                         [&] { return sqs_json::parse_send_message_batch(answer, bodies).failed; });
}

asio::awaitable<std::vector<std::string>> sqs_client::delete_message_batch(
    const std::string& queue_url, const std::vector<std::string>& receipt_handles) {
  auto s = state_;
  call c;
  c.operation = "DeleteMessageBatch";
  c.queue = queue_url;
  c.body = sqs_json::delete_message_batch(queue_url, receipt_handles);
  std::string answer = co_await perform(s, c);
  co_return parse_answer(*s, c, [&] {
    return sqs_json::parse_delete_message_batch(answer, receipt_handles.size()).failed;
  });
}

asio::awaitable<std::vector<std::string>> sqs_client::change_message_visibility_batch(
    const std::string& queue_url, const std::vector<std::string>& receipt_handles,
    const std::vector<int>& seconds) {
  auto s = state_;
  call c;
  c.operation = "ChangeMessageVisibilityBatch";
  c.queue = queue_url;
  c.body = sqs_json::change_message_visibility_batch(queue_url, receipt_handles, seconds);
  std::string answer = co_await perform(s, c);
  co_return parse_answer(*s, c, [&] {
    return sqs_json::parse_change_message_visibility_batch(answer, receipt_handles.size()).failed;
  });
}

asio::awaitable<void> sqs_client::tag_queue(const std::string& queue_url,
                                            const std::map<std::string, std::string>& tags) {
  call c;
  c.operation = "TagQueue";
  c.queue = queue_url;
  c.body = sqs_json::tag_queue(queue_url, tags);
  co_await perform(state_, c);
}

asio::awaitable<void> sqs_client::untag_queue(const std::string& queue_url,
                                              const std::vector<std::string>& keys) {
  call c;
  c.operation = "UntagQueue";
  c.queue = queue_url;
  c.body = sqs_json::untag_queue(queue_url, keys);
  co_await perform(state_, c);
}

asio::awaitable<std::map<std::string, std::string>> sqs_client::list_queue_tags(
    const std::string& queue_url) {
  auto s = state_;
  call c;
  c.operation = "ListQueueTags";
  c.queue = queue_url;
  c.body = sqs_json::list_queue_tags(queue_url);
  std::string answer = co_await perform(s, c);
  co_return parse_answer(*s, c, [&] { return sqs_json::parse_list_queue_tags(answer); });
}

milliseconds sqs_client::clock_offset() const {
  return state_->offset;
}

void sqs_client::close_idle() {
  state_->http.close_idle();
}

}  // namespace funcie::aws
