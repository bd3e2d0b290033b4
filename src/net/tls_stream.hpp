// TLS 1.2 client streams on mbedTLS, for the Redis connection and the AWS HTTP client
// (docs/packaging.md, "TLS and crypto on mbedTLS"). The one place that includes mbedTLS's
// TLS headers: callers see Asio types and strings.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>

namespace funcie::net {

/// The CA bundle cannot be read or holds no certificate. what() is the cause alone; the
/// caller names the setting to fix.
class tls_config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What a TLS client trusts: parsed once, shared by every stream made with it.
class tls_config {
 public:
  /// `ca_file` empty: the system's bundle (SSL_CERT_FILE when set, else Debian's or Amazon
  /// Linux's path). `verify` false: any certificate, any host. Returns a cached config for the
  /// same arguments while one is alive. Throws tls_config_error.
  static std::shared_ptr<const tls_config> make(const std::string& ca_file, bool verify);

  tls_config(const std::string& ca_file, bool verify);
  ~tls_config();
  tls_config(const tls_config&) = delete;
  tls_config& operator=(const tls_config&) = delete;

  bool verify() const { return verify_; }
  struct impl;
  impl& get() const { return *impl_; }

 private:
  std::unique_ptr<impl> impl_;
  bool verify_;
};

/// mbedTLS's error codes as error_code ("mbedtls" category).
const boost::system::error_category& mbedtls_category();

/// TLS over a connected socket the caller owns (and closes: closing it ends every pending
/// operation). An Asio AsyncReadStream and AsyncWriteStream, so asio::async_read/async_write
/// and Beast's HTTP functions work on it; one read and one write may run at the same time.
class tls_stream {
 public:
  using executor_type = boost::asio::any_io_executor;

  /// `host`: the name or address the certificate must be for (a name is also sent as SNI).
  tls_stream(boost::asio::ip::tcp::socket& socket, std::shared_ptr<const tls_config> config,
             const std::string& host);
  ~tls_stream();
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  boost::asio::ip::tcp::socket& next_layer() { return socket_; }

  /// The client handshake. Returns the error: the socket's, or mbedTLS's (then
  /// verification_failed() tells whether the certificate was refused).
  boost::asio::awaitable<boost::system::error_code> handshake();
  /// Sends close_notify (best effort).
  boost::asio::awaitable<void> shutdown();

  /// After a failed handshake: the certificate was refused.
  bool verification_failed() const;
  /// ... only because it is not for the host (name or address).
  bool wrong_host() const;
  /// ... why, in words (mbedTLS's text for the chain's faults).
  std::string verification_failure() const;
  /// Decrypted or received bytes wait to be read.
  bool has_buffered_input() const;

  template <typename MutableBufferSequence, typename Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        read_op<MutableBufferSequence>{this, buffers}, token, socket_);
  }

  template <typename ConstBufferSequence, typename Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        write_op<ConstBufferSequence>{this, buffers}, token, socket_);
  }

 private:
  // The steps the operations take; mbedTLS only ever sees the two memory buffers.
  /// Decrypts into `into`. `need_input`: nothing to give until more bytes arrive.
  std::size_t read_plain(boost::asio::mutable_buffer into, boost::system::error_code& ec,
                         bool& need_input);
  boost::asio::mutable_buffer input_space();
  void input_arrived(std::size_t n);
  void input_ended();
  /// Plaintext bytes a write takes at most.
  static constexpr std::size_t max_write = 64 * 1024;
  /// Collects plaintext; encrypt_staged() turns it into records in the outgoing buffer.
  void stage(const void* data, std::size_t size);
  void encrypt_staged(boost::system::error_code& ec);
  /// Moves the outgoing bytes aside for one send; output_sent() when it is done.
  boost::asio::const_buffer take_output();
  void output_sent();

  template <typename Buffers>
  struct read_op {
    tls_stream* s;
    Buffers buffers;
    bool reading = false;

    template <typename Self>
    void operator()(Self& self, boost::system::error_code ec = {}, std::size_t n = 0) {
      if (reading) {
        reading = false;
        if (ec == boost::asio::error::eof) {
          s->input_ended();
        } else if (ec) {
          self.complete(ec, 0);
          return;
        } else {
          s->input_arrived(n);
        }
      }
      boost::asio::mutable_buffer into;
      for (auto it = boost::asio::buffer_sequence_begin(buffers);
           it != boost::asio::buffer_sequence_end(buffers); ++it) {
        if (boost::asio::mutable_buffer b(*it); b.size() > 0) {
          into = b;
          break;
        }
      }
      if (into.size() == 0) {
        self.complete({}, 0);
        return;
      }
      boost::system::error_code failure;
      bool need_input = false;
      const std::size_t got = s->read_plain(into, failure, need_input);
      if (need_input) {
        reading = true;
        s->socket_.async_read_some(s->input_space(), std::move(self));
        return;
      }
      self.complete(failure, got);
    }
  };

  template <typename Buffers>
  struct write_op {
    tls_stream* s;
    Buffers buffers;
    bool sending = false;
    std::size_t taken = 0;

    template <typename Self>
    void operator()(Self& self, boost::system::error_code ec = {}, std::size_t = 0) {
      if (sending) {
        s->output_sent();
        self.complete(ec, ec ? 0 : taken);
        return;
      }
      // Small pieces (a Redis command's) go into one record, up to max_write bytes a call.
      for (auto it = boost::asio::buffer_sequence_begin(buffers);
           it != boost::asio::buffer_sequence_end(buffers) && taken < max_write; ++it) {
        boost::asio::const_buffer b(*it);
        const std::size_t n = std::min(b.size(), max_write - taken);
        s->stage(b.data(), n);
        taken += n;
      }
      if (taken == 0) {
        self.complete({}, 0);
        return;
      }
      boost::system::error_code failure;
      s->encrypt_staged(failure);
      if (failure) {
        self.complete(failure, 0);
        return;
      }
      sending = true;
      boost::asio::async_write(s->socket_, s->take_output(), std::move(self));
    }
  };

  boost::asio::ip::tcp::socket& socket_;
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace funcie::net
