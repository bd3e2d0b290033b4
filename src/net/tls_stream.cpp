#include "net/tls_stream.hpp"

#include "crypto/crypto.hpp"

#include <mbedtls/asn1.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace funcie::net {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

/// Where the system's CA bundle is (mbedTLS has no default): Debian and Ubuntu, then Amazon
/// Linux (Lambda's runtimes), Fedora and RHEL.
constexpr const char* system_bundles[] = {"/etc/ssl/certs/ca-certificates.crt",
                                          "/etc/pki/tls/certs/ca-bundle.crt"};

std::string mbedtls_text(int code) {
  std::array<char, 200> text{};
  mbedtls_strerror(code, text.data(), text.size());
  return text.data();
}

// Boost's error_category has a protected non-virtual destructor, by design.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class mbedtls_error_category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "mbedtls"; }
  std::string message(int code) const override { return mbedtls_text(-code); }
};
#pragma GCC diagnostic pop

/// mbedTLS's codes are negative; error_code keeps them positive.
error_code to_error(int code) {
  return {-code, mbedtls_category()};
}

int random_for_mbedtls(void*, unsigned char* out, std::size_t size) {
  try {
    crypto::random_bytes(out, size);
    return 0;
  } catch (const crypto::crypto_error&) {
    return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
  }
}

/// Whether `cert` names `address` (4 or 16 bytes) among its iPAddress subject alternative
/// names. Walks the raw extensions: mbedTLS 2.28 keeps DNS names only.
bool certificate_has_address(const mbedtls_x509_crt& cert,
                             const std::vector<unsigned char>& address) {
  unsigned char* p = cert.v3_ext.p;
  if (p == nullptr) return false;
  const unsigned char* end = p + cert.v3_ext.len;
  std::size_t len = 0;
  // v3_ext is the Extensions SEQUENCE (after the [3] tag); accept the tag too.
  if (*p == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 3)) {
    if (mbedtls_asn1_get_tag(&p, end, &len,
                             MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 3) != 0) {
      return false;
    }
    end = p + len;
  }
  if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) {
    return false;
  }
  end = p + len;
  const std::string_view san_oid(MBEDTLS_OID_SUBJECT_ALT_NAME,
                                 sizeof(MBEDTLS_OID_SUBJECT_ALT_NAME) - 1);
  while (p < end) {
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) !=
        0) {
      return false;
    }
    const unsigned char* ext_end = p + len;
    if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OID) != 0) return false;
    const std::string_view oid(reinterpret_cast<const char*>(p), len);
    p += len;
    if (oid != san_oid) {
      p = const_cast<unsigned char*>(ext_end);
      continue;
    }
    int critical = 0;
    if (int r = mbedtls_asn1_get_bool(&p, ext_end, &critical);
        r != 0 && r != MBEDTLS_ERR_ASN1_UNEXPECTED_TAG) {
      return false;
    }
    if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0) return false;
    if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) !=
        0) {
      return false;
    }
    const unsigned char* names_end = p + len;
    while (p < names_end) {
      const unsigned char tag = *p++;
      if (mbedtls_asn1_get_len(&p, names_end, &len) != 0) return false;
      // iPAddress [7] IMPLICIT OCTET STRING
      if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && len == address.size() &&
          std::memcmp(p, address.data(), len) == 0) {
        return true;
      }
      p += len;
    }
    return false;
  }
  return false;
}

std::optional<std::vector<unsigned char>> address_bytes(const std::string& host) {
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  if (address.is_v4()) {
    const auto b = address.to_v4().to_bytes();
    return std::vector<unsigned char>(b.begin(), b.end());
  }
  const auto b = address.to_v6().to_bytes();
  return std::vector<unsigned char>(b.begin(), b.end());
}

}  // namespace

const boost::system::error_category& mbedtls_category() {
  static const mbedtls_error_category category;
  return category;
}

// --- tls_config -----------------------------------------------------------------------------

struct tls_config::impl {
  mbedtls_ssl_config conf;
  mbedtls_x509_crt ca;
  impl() {
    mbedtls_ssl_config_init(&conf);
    mbedtls_x509_crt_init(&ca);
  }
  ~impl() {
    mbedtls_ssl_config_free(&conf);
    mbedtls_x509_crt_free(&ca);
  }
};

tls_config::tls_config(const std::string& ca_file, bool verify)
    : impl_(std::make_unique<impl>()), verify_(verify) {
  mbedtls_ssl_config& conf = impl_->conf;
  if (int r = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT,
                                          MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
      r != 0) {
    throw tls_config_error(mbedtls_text(r));
  }
  mbedtls_ssl_conf_min_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_rng(&conf, random_for_mbedtls, nullptr);
  mbedtls_ssl_conf_renegotiation(&conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
  if (!verify) {
    mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
    return;
  }
  mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  std::string file = ca_file;
  if (file.empty()) {
    if (const char* env = std::getenv("SSL_CERT_FILE"); env != nullptr && *env != '\0') {
      file = env;
    } else {
      for (const char* candidate : system_bundles) {
        std::error_code ignored;
        if (std::filesystem::exists(candidate, ignored)) {
          file = candidate;
          break;
        }
      }
    }
    if (file.empty()) {
      throw tls_config_error(std::string("no CA bundle at ") + system_bundles[0] + " or " +
                             system_bundles[1]);
    }
  }
  const int r = mbedtls_x509_crt_parse_file(&impl_->ca, file.c_str());
  // r > 0: some certificates of the bundle did not parse; the rest are used.
  if (r < 0) throw tls_config_error(file + ": " + mbedtls_text(r));
  if (impl_->ca.version == 0) throw tls_config_error(file + ": no certificate in it");
  mbedtls_ssl_conf_ca_chain(&conf, &impl_->ca, nullptr);
}

tls_config::~tls_config() = default;

std::shared_ptr<const tls_config> tls_config::make(const std::string& ca_file, bool verify) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, bool>, std::weak_ptr<const tls_config>> cache;
  const std::lock_guard lock(mutex);
  auto& slot = cache[{ca_file, verify}];
  if (auto alive = slot.lock()) return alive;
  auto made = std::make_shared<const tls_config>(ca_file, verify);
  slot = made;
  return made;
}

// --- tls_stream -----------------------------------------------------------------------------

struct tls_stream::impl {
  std::shared_ptr<const tls_config> config;
  mbedtls_ssl_context ssl;
  std::optional<std::vector<unsigned char>> address;  ///< The host, when it is an address
  bool wrong_address = false;

  std::vector<unsigned char> in;  ///< Received, not yet taken by mbedTLS
  std::size_t in_taken = 0;
  bool in_ended = false;
  std::array<unsigned char, 32 * 1024> raw{};  ///< Where socket reads land

  std::vector<unsigned char> staged;   ///< Plaintext to encrypt
  std::vector<unsigned char> out;      ///< Records mbedTLS wrote, not yet being sent
  std::vector<unsigned char> sending;  ///< Records being sent

  impl() { mbedtls_ssl_init(&ssl); }
  ~impl() {
    mbedtls_ssl_free(&ssl);
    crypto::wipe(raw.data(), raw.size());
    if (!staged.empty()) crypto::wipe(staged.data(), staged.size());
  }

  static int send(void* self, const unsigned char* data, std::size_t size) {
    auto* s = static_cast<impl*>(self);
    s->out.insert(s->out.end(), data, data + size);
    return static_cast<int>(size);
  }

  static int receive(void* self, unsigned char* data, std::size_t size) {
    auto* s = static_cast<impl*>(self);
    const std::size_t available = s->in.size() - s->in_taken;
    if (available == 0) return s->in_ended ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
    const std::size_t n = std::min(size, available);
    std::memcpy(data, s->in.data() + s->in_taken, n);
    s->in_taken += n;
    if (s->in_taken == s->in.size()) {
      s->in.clear();
      s->in_taken = 0;
    }
    return static_cast<int>(n);
  }

  static int verify(void* self, mbedtls_x509_crt* cert, int depth, std::uint32_t* flags) {
    auto* s = static_cast<impl*>(self);
    if (depth == 0 && s->address && !certificate_has_address(*cert, *s->address)) {
      *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
      s->wrong_address = true;
    }
    return 0;
  }
};

tls_stream::tls_stream(asio::ip::tcp::socket& socket, std::shared_ptr<const tls_config> config,
                       const std::string& host)
    : socket_(socket), impl_(std::make_unique<impl>()) {
  impl_->config = std::move(config);
  if (int r = mbedtls_ssl_setup(&impl_->ssl, &impl_->config->get().conf); r != 0) {
    throw tls_config_error(mbedtls_text(r));
  }
  impl_->address = address_bytes(host);
  if (!impl_->address) {
    // A name: checked against the certificate by mbedTLS, and sent as SNI.
    if (int r = mbedtls_ssl_set_hostname(&impl_->ssl, host.c_str()); r != 0) {
      throw tls_config_error(mbedtls_text(r));
    }
  } else if (impl_->config->verify()) {
    mbedtls_ssl_set_verify(&impl_->ssl, &impl::verify, impl_.get());
  }
  mbedtls_ssl_set_bio(&impl_->ssl, impl_.get(), &impl::send, &impl::receive, nullptr);
}

tls_stream::~tls_stream() = default;

asio::awaitable<error_code> tls_stream::handshake() {
  for (;;) {
    const int r = mbedtls_ssl_handshake(&impl_->ssl);
    error_code ec;
    if (!impl_->out.empty()) {
      co_await asio::async_write(socket_, take_output(),
                                 asio::redirect_error(asio::use_awaitable, ec));
      output_sent();
      if (ec) co_return ec;
    }
    if (r == 0) co_return error_code{};
    if (r == MBEDTLS_ERR_SSL_CONN_EOF) co_return asio::error::eof;
    if (r != MBEDTLS_ERR_SSL_WANT_READ) co_return to_error(r);
    const std::size_t n = co_await socket_.async_read_some(
        input_space(), asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::eof) {
      input_ended();
    } else if (ec) {
      co_return ec;
    } else {
      input_arrived(n);
    }
  }
}

asio::awaitable<void> tls_stream::shutdown() {
  mbedtls_ssl_close_notify(&impl_->ssl);
  if (impl_->out.empty()) co_return;
  error_code ignored;
  co_await asio::async_write(socket_, take_output(),
                             asio::redirect_error(asio::use_awaitable, ignored));
  output_sent();
}

bool tls_stream::verification_failed() const {
  return impl_->config->verify() && mbedtls_ssl_get_verify_result(&impl_->ssl) != 0;
}

bool tls_stream::wrong_host() const {
  // Only the host is wrong: a chain that is not trusted is told first, as OpenSSL does.
  const std::uint32_t host = MBEDTLS_X509_BADCERT_CN_MISMATCH;
  const std::uint32_t flags = mbedtls_ssl_get_verify_result(&impl_->ssl);
  return verification_failed() && (flags & ~host) == 0 &&
         ((flags & host) != 0 || impl_->wrong_address);
}

std::string tls_stream::verification_failure() const {
  std::uint32_t flags = mbedtls_ssl_get_verify_result(&impl_->ssl);
  flags &= ~static_cast<std::uint32_t>(MBEDTLS_X509_BADCERT_CN_MISMATCH);
  if (flags == 0) return "the certificate is not for the host";
  std::array<char, 512> text{};
  mbedtls_x509_crt_verify_info(text.data(), text.size(), "", flags);
  // One fault a line; joined with "; ", without the last newline.
  std::string out;
  for (const char* p = text.data(); *p != '\0'; ++p) {
    if (*p == '\n') {
      if (p[1] != '\0') out += "; ";
    } else {
      out += *p;
    }
  }
  return out;
}

bool tls_stream::has_buffered_input() const {
  return impl_->in.size() > impl_->in_taken || mbedtls_ssl_get_bytes_avail(&impl_->ssl) > 0;
}

std::size_t tls_stream::read_plain(asio::mutable_buffer into, error_code& ec, bool& need_input) {
  const int r =
      mbedtls_ssl_read(&impl_->ssl, static_cast<unsigned char*>(into.data()), into.size());
  if (r > 0) return static_cast<std::size_t>(r);
  if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
    need_input = true;
    return 0;
  }
  if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF) {
    ec = asio::error::eof;
  } else {
    ec = to_error(r);
  }
  return 0;
}

asio::mutable_buffer tls_stream::input_space() {
  return asio::buffer(impl_->raw);
}

void tls_stream::input_arrived(std::size_t n) {
  impl_->in.insert(impl_->in.end(), impl_->raw.begin(), impl_->raw.begin() + static_cast<long>(n));
}

void tls_stream::input_ended() {
  impl_->in_ended = true;
}

void tls_stream::stage(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  impl_->staged.insert(impl_->staged.end(), bytes, bytes + size);
}

void tls_stream::encrypt_staged(error_code& ec) {
  std::size_t done = 0;
  while (done < impl_->staged.size()) {
    const int r =
        mbedtls_ssl_write(&impl_->ssl, impl_->staged.data() + done, impl_->staged.size() - done);
    if (r < 0) {
      ec = to_error(r);
      break;
    }
    done += static_cast<std::size_t>(r);
  }
  crypto::wipe(impl_->staged.data(), impl_->staged.size());
  impl_->staged.clear();
}

asio::const_buffer tls_stream::take_output() {
  impl_->sending.clear();
  std::swap(impl_->sending, impl_->out);
  return asio::buffer(impl_->sending);
}

void tls_stream::output_sent() {
  impl_->sending.clear();
}

}  // namespace funcie::net
