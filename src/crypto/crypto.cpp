#include "crypto/crypto.hpp"

#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/md5.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include <sys/random.h>

#include <cerrno>
#include <cstring>

namespace funcie::crypto {

namespace {

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

const mbedtls_md_info_t* sha256_info() {
  const mbedtls_md_info_t* info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
  if (info == nullptr) throw crypto_error("mbedTLS has no SHA-256");
  return info;
}

}  // namespace

sha256_digest sha256(std::string_view bytes) {
  sha256_digest out{};
  if (mbedtls_sha256_ret(bytes_of(bytes), bytes.size(), out.data(), 0) != 0) {
    throw crypto_error("SHA-256 failed inside mbedTLS");
  }
  return out;
}

sha256_digest hmac_sha256(std::string_view key, std::string_view data) {
  sha256_digest out{};
  if (mbedtls_md_hmac(sha256_info(), bytes_of(key), key.size(), bytes_of(data), data.size(),
                      out.data()) != 0) {
    throw crypto_error("HMAC-SHA256 failed inside mbedTLS");
  }
  return out;
}

md5_digest md5(std::string_view bytes) {
  md5_digest out{};
  if (mbedtls_md5_ret(bytes_of(bytes), bytes.size(), out.data()) != 0) {
    throw crypto_error("MD5 failed inside mbedTLS");
  }
  return out;
}

std::string to_hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 0x0F]);
  }
  return out;
}

void hkdf_sha256(std::string_view secret, std::string_view salt, std::string_view info,
                 unsigned char* out, std::size_t size) {
  if (mbedtls_hkdf(sha256_info(), bytes_of(salt), salt.size(), bytes_of(secret), secret.size(),
                   bytes_of(info), info.size(), out, size) != 0) {
    throw crypto_error("HKDF-SHA256 failed inside mbedTLS");
  }
}

void random_bytes(unsigned char* out, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::getrandom(out, size, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw crypto_error(std::string("the OS random generator failed (getrandom): ") +
                         std::strerror(errno));
    }
    out += n;
    size -= static_cast<std::size_t>(n);
  }
}

void wipe(void* data, std::size_t size) noexcept {
  mbedtls_platform_zeroize(data, size);
}

struct aes_256_gcm::state {
  mbedtls_gcm_context ctx;
  bool encrypt;
  std::size_t processed = 0;
  bool last_seen = false;  // a call with a partial block: no more may follow
};

aes_256_gcm::aes_256_gcm(const std::array<unsigned char, key_bytes>& key,
                         const unsigned char* nonce, bool encrypt, std::string_view additional_data)
    : state_(std::make_unique<state>()) {
  state_->encrypt = encrypt;
  mbedtls_gcm_init(&state_->ctx);
  const char* what = encrypt ? "sealing failed inside mbedTLS (AES-256-GCM)"
                             : "opening failed inside mbedTLS (AES-256-GCM)";
  if (mbedtls_gcm_setkey(&state_->ctx, MBEDTLS_CIPHER_ID_AES, key.data(), 256) != 0 ||
      mbedtls_gcm_starts(&state_->ctx, encrypt ? MBEDTLS_GCM_ENCRYPT : MBEDTLS_GCM_DECRYPT, nonce,
                         nonce_bytes, bytes_of(additional_data), additional_data.size()) != 0) {
    mbedtls_gcm_free(&state_->ctx);
    throw crypto_error(what);
  }
}

aes_256_gcm::~aes_256_gcm() {
  mbedtls_gcm_free(&state_->ctx);  // zeroizes the key schedule
}

void aes_256_gcm::update(const unsigned char* in, unsigned char* out, std::size_t size) {
  if (state_->last_seen && size > 0) {
    throw crypto_error("AES-256-GCM: more data after a partial block (a bug in funcie)");
  }
  if (size % 16 != 0) state_->last_seen = true;
  if (size > 0 && mbedtls_gcm_update(&state_->ctx, size, in, out) != 0) {
    throw crypto_error(state_->encrypt ? "sealing failed inside mbedTLS (AES-256-GCM)"
                                       : "opening failed inside mbedTLS (AES-256-GCM)");
  }
}

void aes_256_gcm::seal_final(unsigned char* tag) {
  if (mbedtls_gcm_finish(&state_->ctx, tag, tag_bytes) != 0) {
    throw crypto_error("sealing failed inside mbedTLS (AES-256-GCM)");
  }
}

bool aes_256_gcm::open_final(const unsigned char* tag) {
  std::array<unsigned char, tag_bytes> expected{};
  if (mbedtls_gcm_finish(&state_->ctx, expected.data(), tag_bytes) != 0) {
    throw crypto_error("opening failed inside mbedTLS (AES-256-GCM)");
  }
  unsigned char difference = 0;
  for (std::size_t i = 0; i < tag_bytes; ++i) difference |= expected[i] ^ tag[i];
  wipe(expected.data(), expected.size());
  return difference == 0;
}

}  // namespace funcie::crypto
