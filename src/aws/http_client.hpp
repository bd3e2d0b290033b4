// A small HTTP/1.1 client for AWS endpoints: plain or TLS (certificate and host name
// verified by default), keep-alive connections pooled per endpoint, a bound on each
// request. Boost.Beast over Asio, mbedTLS for TLS (net/tls_stream.hpp).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace funcie::aws {

/// The request could not be made or no answer came: connect refused, TLS refused, reset,
/// timeout. `what()` names the endpoint (never a credential) and the cause.
class http_error : public std::runtime_error {
 public:
  enum class kind { connect, tls, io, timeout };
  http_error(kind k, const std::string& message, std::string detail = {})
      : std::runtime_error(message), kind_(k), detail_(std::move(detail)) {}
  kind cause() const { return kind_; }
  /// The cause alone, without the endpoint ("connection refused"), for callers that name
  /// the endpoint themselves; what() when not set.
  std::string detail() const { return detail_.empty() ? std::string(what()) : detail_; }

 private:
  kind kind_;
  std::string detail_;
};

/// An endpoint URL is malformed ("http://host:port" or "https://host[:port]", no path but "/").
class endpoint_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct endpoint {
  bool tls = true;
  std::string host;  ///< Name or address, without brackets for IPv6
  std::uint16_t port = 443;
  /// The Host header: host, plus ":port" when it is not the scheme's default.
  std::string host_header() const;
};

/// Parses "https://sqs.eu-west-1.amazonaws.com", "http://127.0.0.1:4566/". Throws
/// endpoint_error.
endpoint parse_endpoint(std::string_view url);

struct http_request {
  std::string method = "POST";
  std::string target = "/";
  std::vector<std::pair<std::string, std::string>> headers;  ///< Host is added
  std::string body;
};

struct http_response {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// The first header of that name (case-insensitive), empty when absent.
  std::string_view header(std::string_view name) const;
};

struct tls_options {
  std::string ca_file;  ///< PEM bundle to trust instead of the system's; empty: system's
  bool verify = true;   ///< Verify the certificate chain and the host name
};

class http_client {
 public:
  http_client(boost::asio::any_io_executor executor, tls_options tls);
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Sends `request` to `to` and reads the whole answer, within `timeout` (connect, TLS
  /// handshake, write and read together). Reuses an idle connection to the same endpoint
  /// when there is one; a reused connection found closed by the peer is retried once on a
  /// new one. Several send() may run at once (each on its own connection). Supports Asio's
  /// per-operation cancellation (terminal). Throws http_error; any status is returned.
  boost::asio::awaitable<http_response> send(const endpoint& to, http_request request,
                                             std::chrono::milliseconds timeout);

  /// Closes idle connections (after a Lambda freeze they may be dead).
  void close_idle();

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace funcie::aws
