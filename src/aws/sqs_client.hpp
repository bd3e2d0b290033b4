// An SQS client on the AWS JSON 1.0 protocol: the calls funcie needs, signed with
// SigV4, over http_client, with retries as AWS SDKs do them ("standard" mode: up to 3
// attempts, exponential backoff with full jitter, on throttling, 5xx and broken
// connections; a long poll is never cut by a retry's timeout).
#pragma once

#include "aws/credentials.hpp"
#include "aws/http_client.hpp"
#include "aws/sqs_json.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace funcie::aws {

/// A call failed after its retries. `what()` is one clear sentence: the operation, the
/// queue, what SQS said and what to do ("the queue ... does not exist in eu-west-1: create
/// it or check FUNCIE_REQUEST_QUEUE_URL and the region"; "access denied to sqs:SendMessage
/// on ...: the role or user needs that permission on the queue"). Never a secret.
class sqs_error : public std::runtime_error {
 public:
  enum class kind {
    queue_missing,
    access_denied,
    throttled,
    invalid,
    server,
    transport,
    credentials
  };
  sqs_error(kind k, std::string code, const std::string& message)
      : std::runtime_error(message), kind_(k), code_(std::move(code)) {}
  kind cause() const { return kind_; }
  const std::string& code() const { return code_; }  ///< AWS's error code, if any

 private:
  kind kind_;
  std::string code_;
};

struct sqs_client_options {
  std::string region;
  std::string endpoint;  ///< URL, from resolve_service
  tls_options tls;
  /// Bound of one attempt of a call that is not a long poll (a long poll gets its wait
  /// time on top).
  std::chrono::milliseconds attempt_timeout{3000};
  int max_attempts = 3;
};

class sqs_client {
 public:
  /// Throws endpoint_error for a bad endpoint.
  sqs_client(boost::asio::any_io_executor executor, sqs_client_options options,
             std::shared_ptr<credential_provider> credentials);
  ~sqs_client();
  sqs_client(const sqs_client&) = delete;
  sqs_client& operator=(const sqs_client&) = delete;

  // Each throws sqs_error; each supports Asio's per-operation cancellation (terminal).
  boost::asio::awaitable<std::string> send_message(const std::string& queue_url,
                                                   const std::string& body);
  /// max_messages 1..10, wait_seconds 0..20, visibility_timeout < 0: the queue's default.
  boost::asio::awaitable<std::vector<sqs_json::received_message>> receive_message(
      const std::string& queue_url, int max_messages, int wait_seconds,
      int visibility_timeout = -1);
  boost::asio::awaitable<void> delete_message(const std::string& queue_url,
                                              const std::string& receipt_handle);
  boost::asio::awaitable<void> change_message_visibility(const std::string& queue_url,
                                                         const std::string& receipt_handle,
                                                         int seconds);
  boost::asio::awaitable<std::string> get_queue_url(const std::string& queue_name,
                                                    const std::string& owner_account = {});
  boost::asio::awaitable<std::map<std::string, std::string>> get_queue_attributes(
      const std::string& queue_url, const std::vector<std::string>& names);
  /// 1..10 bodies, together at most the queue's message size limit. Returns, per body,
  /// empty when it was stored, else why not (the call as a whole failing throws).
  boost::asio::awaitable<std::vector<std::string>> send_message_batch(
      const std::string& queue_url, const std::vector<std::string>& bodies);
  /// 1..10 receipt handles. Returns, per handle, empty when deleted, else why not.
  boost::asio::awaitable<std::vector<std::string>> delete_message_batch(
      const std::string& queue_url, const std::vector<std::string>& receipt_handles);
  /// 1..10 receipt handles, each hidden for seconds[i]. Returns, per handle, empty when
  /// done, else why not.
  boost::asio::awaitable<std::vector<std::string>> change_message_visibility_batch(
      const std::string& queue_url, const std::vector<std::string>& receipt_handles,
      const std::vector<int>& seconds);
  boost::asio::awaitable<void> tag_queue(const std::string& queue_url,
                                         const std::map<std::string, std::string>& tags);
  boost::asio::awaitable<void> untag_queue(const std::string& queue_url,
                                           const std::vector<std::string>& keys);
  boost::asio::awaitable<std::map<std::string, std::string>> list_queue_tags(
      const std::string& queue_url);

  /// Difference between SQS's clock (its answers' Date header) and ours, in ms, as of the
  /// last answer (positive: SQS ahead); 0 before any. For the clock-skew warning.
  std::chrono::milliseconds clock_offset() const;

  /// Closes idle connections (after a Lambda freeze they may be dead).
  void close_idle();

  struct state;

 private:
  std::shared_ptr<state> state_;
};

/// Backoff before retry `attempt` (1 = the first retry): full jitter, uniformly random in
/// [0, min(cap, base * 2^attempt)]; throttling uses a larger base (AWS SDKs: 100 ms and
/// 500 ms... see retry.cpp). `random01` in [0, 1). Pure, for tests.
std::chrono::milliseconds retry_backoff(int attempt, bool throttled, double random01);

}  // namespace funcie::aws
