// The cryptographic primitives funcie uses, on mbedTLS (docs/packaging.md, "TLS and crypto"):
// SHA-256 and HMAC-SHA256 (SigV4), MD5 (SQS's body checks), HKDF-SHA256 and AES-256-GCM (the
// seal), the OS's random bytes. The one place that includes mbedTLS's crypto headers.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace funcie::crypto {

/// A primitive failed inside the library or the OS (never for bad input to a hash).
class crypto_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using sha256_digest = std::array<unsigned char, 32>;
using md5_digest = std::array<unsigned char, 16>;

sha256_digest sha256(std::string_view bytes);
sha256_digest hmac_sha256(std::string_view key, std::string_view data);
md5_digest md5(std::string_view bytes);
/// Lower-case hex of `size` bytes.
std::string to_hex(const unsigned char* bytes, std::size_t size);

/// HKDF (RFC 5869) with SHA-256: `size` bytes of key material into `out`.
void hkdf_sha256(std::string_view secret, std::string_view salt, std::string_view info,
                 unsigned char* out, std::size_t size);

/// Fills `out` from the kernel's random generator (getrandom). Throws crypto_error.
void random_bytes(unsigned char* out, std::size_t size);

/// Overwrites `size` bytes at `data` with zeros in a way the compiler keeps.
void wipe(void* data, std::size_t size) noexcept;

/// One AES-256-GCM operation with a 12-byte nonce and a 16-byte tag: sealing (encrypt) or
/// opening. The additional data is given whole at the start (mbedTLS 2.28 takes it at once);
/// update() takes whole 16-byte blocks on every call but the last.
class aes_256_gcm {
 public:
  static constexpr std::size_t key_bytes = 32;
  static constexpr std::size_t nonce_bytes = 12;
  static constexpr std::size_t tag_bytes = 16;

  aes_256_gcm(const std::array<unsigned char, key_bytes>& key, const unsigned char* nonce,
              bool encrypt, std::string_view additional_data);
  ~aes_256_gcm();
  aes_256_gcm(const aes_256_gcm&) = delete;
  aes_256_gcm& operator=(const aes_256_gcm&) = delete;

  /// Encrypts or decrypts `size` bytes from `in` to `out` (the same, or not overlapping).
  void update(const unsigned char* in, unsigned char* out, std::size_t size);
  /// Sealing: ends and writes the 16-byte tag.
  void seal_final(unsigned char* tag);
  /// Opening: true when `tag` is right (compared in constant time).
  bool open_final(const unsigned char* tag);

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace funcie::crypto
