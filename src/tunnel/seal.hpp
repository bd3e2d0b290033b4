// Sealing: what makes the tunnel safe to run through a broker nobody fully trusts
// (docs/security.md). With a shared secret, every message a backend puts on the broker is
// sealed: encrypted and authenticated with AES-256-GCM (mbedTLS, src/crypto), or only authenticated
// (FUNCIE_ENCRYPT=false). Pure (no I/O): the fuzzers link it.
//
// Wire form of a sealed frame (the first line is text, so a frame is recognisable in
// redis-cli or the SQS console):
//   "funcie/1 sealed <key id>\n" <nonce 12> <ciphertext> <tag 16>      encrypted
//   "funcie/1 signed <key id>\n" <nonce 12> <plaintext>  <tag 16>      authenticated only
// and, where a broker takes only text (SQS bodies), the same with the kind suffixed "64"
// ("sealed64", "signed64") and everything after the first line in base64 (RFC 4648, with
// padding, one line). The first line is the additional authenticated data: the mode and
// the key id cannot be changed. <key id> is 16 lowercase hex digits derived from the key.
// "signed" frames use GMAC: AES-256-GCM over an empty plaintext, the additional data being
// the first line followed by the plaintext (the nonce is GCM's IV, so it is bound too). In
// the "64" kinds, only canonical base64 is accepted (unused bits of the last group zero),
// so a frame has exactly one valid spelling.
//
// The key is HKDF-SHA256(secret, salt "funcie/1", info "funcie tunnel key"); the key id is
// the first 8 bytes of HKDF-SHA256(secret, salt "funcie/1", info "funcie key id"). Nonces
// are 96 random bits from the OS (getrandom) per message.
#pragma once

#include "util/user_error.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace funcie::tunnel {

/// A secret that cannot be used (too short, empty line in a secret file...). The message
/// says what is wrong and what to do; it never contains the secret or any part of it.
class secret_error : public util::user_error {
 public:
  using util::user_error::user_error;
};

/// A frame that fails the check: not sealed while this side has a secret, sealed while it
/// has none, a key id this side does not know, a bad tag (forged or tampered), malformed.
/// The message is one sentence safe to log (never quotes the frame) saying what to do.
class seal_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Shortest secret accepted, in bytes. `funcie secret` prints a good one (32 random bytes
/// in base64).
inline constexpr std::size_t min_secret_bytes = 16;
/// Most bytes a sealed binary frame adds to its plaintext: the first line (at most 36:
/// "funcie/1 sealed64 " and a 16-digit key id and "\n"), the nonce and the tag.
inline constexpr std::size_t seal_overhead_bytes = 36 + 12 + 16;

/// The keys one side holds: the current one (sealing and opening) and, during a rotation,
/// the previous one (opening only). Empty: sealing is off, frames pass through unchanged.
class keyring {
 public:
  /// No secret: seal() returns its input, open() refuses sealed frames.
  keyring() = default;

  /// Derives the keys. `previous` may be empty. Throws secret_error for a secret shorter
  /// than min_secret_bytes, or when both are the same. Leading and trailing whitespace
  /// (a newline at the end of a file) is not part of a secret.
  static keyring from_secrets(std::string_view current, std::string_view previous = {},
                              bool encrypt = true);

  /// Reads a secret file: the first non-empty line is the current secret, an optional
  /// second non-empty line the previous one. `path` is only for messages. Throws
  /// secret_error (never quoting the contents).
  static keyring from_file_contents(std::string_view contents, std::string_view path,
                                    bool encrypt = true);

  bool enabled() const { return !keys_.empty(); }
  bool encrypts() const { return encrypt_; }
  /// The current key's id (16 hex), for logs: it says which secret is in use without
  /// revealing it. Empty when disabled.
  std::string current_key_id() const;
  /// Ids of every key accepted when opening (current first).
  std::vector<std::string> key_ids() const;

  /// The frame for `plain`: binary, for brokers that carry bytes (Redis). Disabled: `plain`.
  /// `key_id`: the key to seal with, for an answer (the key the message it answers came
  /// with, as open() reported it: docs/security.md, Rotation); empty, or a key this keyring
  /// does not hold: the current key.
  std::string seal(std::string_view plain, std::string_view key_id = {}) const;
  /// seal(), taking `plain`: disabled, it is returned as is (no copy of a 6 MB envelope).
  std::string seal_owned(std::string&& plain, std::string_view key_id = {}) const;
  /// The same for brokers that carry only text (SQS): the "64" kinds. Disabled: `plain`.
  std::string seal_text(std::string_view plain, std::string_view key_id = {}) const;

  /// The plaintext of a frame of any of the four kinds; disabled, a frame that is not
  /// sealed passes through unchanged. Throws seal_error. `key_id`, when given, is set to the
  /// id of the key that opened the frame (empty when it passed through unsealed).
  std::string open(std::string_view frame, std::string* key_id = nullptr) const;
  /// open(), taking `frame`: one that passes through unsealed is returned as is (no copy).
  std::string open_owned(std::string&& frame, std::string* key_id = nullptr) const;

  /// True when `frame` starts like a sealed frame (any kind), whatever its validity.
  static bool looks_sealed(std::string_view frame);
  /// The key id on a sealed frame's first line (16 hex), nullopt when it has none.
  static std::optional<std::string> key_id_of(std::string_view frame);
  /// True when `key_id` is one of this keyring's keys.
  bool holds(std::string_view key_id) const;

 private:
  struct key {
    std::array<unsigned char, 32> bytes{};
    std::string id;  // 16 hex
    key() = default;
    key(const key&) = default;
    key(key&&) = default;
    key& operator=(const key&) = default;
    key& operator=(key&&) = default;
    ~key();  // wipes the bytes (crypto::wipe)
  };
  const key& sealing_key(std::string_view key_id) const;

  std::vector<key> keys_;  // current first
  bool encrypt_ = true;
};

/// The consumer's defence against a broker that replays requests (docs/security.md): a
/// request is run at most once per id, and only while it is fresh. Kept per consumer
/// process; bounded memory (ids older than the window are forgotten).
class replay_guard {
 public:
  /// `started_ms`: when this consumer started (its clock); requests sent more than
  /// `skew_ms` before are refused (a restarted consumer forgot what it ran).
  /// `window_ms`: how old (by the sender's clock, sent_ms) a request may be; older ones are
  /// refused, so ids only need remembering that long. `skew_ms`: how far the two clocks
  /// may disagree; a request from further in the future is refused too.
  explicit replay_guard(std::int64_t started_ms, std::int64_t window_ms = 20 * 60 * 1000,
                        std::int64_t skew_ms = 2 * 60 * 1000);

  /// Nothing when the request may run (and remembers its id); otherwise why not, one
  /// sentence safe to log ("replayed: request ... was already run", "stale: sent ... ago,
  /// check both clocks"). Forgets ids older than the window as it goes.
  std::optional<std::string> check(std::string_view id, std::int64_t sent_ms, std::int64_t now_ms);

  std::size_t remembered() const { return seen_.size(); }

 private:
  std::int64_t started_ms_;
  std::int64_t window_ms_;
  std::int64_t skew_ms_;
  std::unordered_map<std::string, std::int64_t> seen_;  // id -> sent_ms
  std::int64_t last_sweep_ms_ = 0;
};

}  // namespace funcie::tunnel
