// An envelope on its way to Redis. Unsealed (no shared secret) and big, it stays two pieces,
// the header lines and a view of the message's own body, sent as one Redis argument without
// joining them (execute_pieces_checked): a 6 MB event or response is not copied into a fresh
// 6 MB buffer first. Sealed or small, it is the whole frame, as before. Either way the bytes
// Redis stores are the same.
#pragma once

#include "tunnel/envelope.hpp"
#include "tunnel/seal.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::redis_backend {

class outgoing_envelope {
 public:
  /// `message` must outlive this. Over `whole_up_to` bytes and without a secret: in pieces.
  template <class Message>
  outgoing_envelope(const tunnel::keyring& keys, const Message& message, std::size_t whole_up_to,
                    std::string_view key_id = {})
      : parts_(tunnel::encode_parts(message)) {
    if (keys.enabled() || parts_.size() <= whole_up_to) {
      whole_ = keys.seal_owned(parts_.joined(), key_id);
      parts_ = {};
      joined_ = true;
    }
  }

  std::size_t size() const { return joined_ ? whole_.size() : parts_.size(); }
  /// The whole frame; empty when in pieces.
  const std::string& whole() const { return whole_; }
  /// The pieces of the one Redis argument that carries it.
  std::vector<std::string_view> pieces() const {
    if (joined_) return {whole_};
    return {parts_.head, parts_.body};
  }

 private:
  tunnel::encoded_parts parts_;
  std::string whole_;
  bool joined_ = false;
};

}  // namespace funcie::redis_backend
