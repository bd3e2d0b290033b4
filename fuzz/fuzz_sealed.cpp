// Sealed frames (tunnel/seal.hpp): anything with access to the broker can put bytes where a
// sealed frame is expected. open() throws seal_error (one line, never the secret) or returns
// the plaintext of a frame the keyring could have sealed; a keyring without a secret passes
// unsealed bytes through unchanged and refuses sealed ones. The input is also sealed in the
// four kinds, opened back, and each frame with one bit flipped must be refused.
#include "http_message.hpp"
#include "tunnel/seal.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tn = funcie::tunnel;
namespace fz = funcie::fuzz;

namespace {

// The seed corpus (fuzz/corpus/fuzz_sealed/) was sealed with this secret, so the fuzzer starts
// from frames that open.
constexpr std::string_view secret = "funcie-fuzz-secret-0123456789abcdef";
constexpr std::string_view other_secret = "funcie-fuzz-other-secret-fedcba987654";

const tn::keyring& sealing() {
  static const auto k = tn::keyring::from_secrets(secret);
  return k;
}
const tn::keyring& signing() {
  static const auto k = tn::keyring::from_secrets(secret, {}, false);
  return k;
}
const tn::keyring& rotated() {
  static const auto k = tn::keyring::from_secrets(other_secret, secret);
  return k;
}

void check_message(const tn::seal_error& e) {
  const std::string_view what = e.what();
  if (what.empty() || what.find('\n') != std::string_view::npos) {
    fz::fail("a seal_error is not one line");
  }
  if (what.find(secret) != std::string_view::npos) fz::fail("a seal_error quotes the secret");
}

void check_open(const tn::keyring& k, std::string_view bytes) {
  std::string plain;
  try {
    plain = k.open(bytes);
  } catch (const tn::seal_error& e) {
    check_message(e);
    return;
  }
  if (!k.enabled()) {
    if (tn::keyring::looks_sealed(bytes)) fz::fail("a keyring without a secret opened a frame");
    if (plain != bytes) fz::fail("a keyring without a secret changed unsealed bytes");
    return;
  }
  // Only a frame sealed with one of its keys opens, and it is one sealing could have made.
  if (!tn::keyring::looks_sealed(bytes)) fz::fail("a keyring with a secret opened unsealed bytes");
  const auto id = tn::keyring::key_id_of(bytes);
  if (!id || !k.holds(*id)) fz::fail("a frame opened with a key the keyring does not hold");
  const auto binary = k.seal(plain).size();
  const auto text = k.seal_text(plain).size();
  if (bytes.size() != binary && bytes.size() != text) {
    fz::fail("an opened frame is not the size sealing its plaintext gives");
  }
  if (k.open(bytes) != plain) fz::fail("opening the same frame twice differs");
}

void check_round_trip(const tn::keyring& k, std::string_view plain, std::size_t flip) {
  for (const auto& frame : {k.seal(plain), k.seal_text(plain)}) {
    if (!tn::keyring::looks_sealed(frame)) fz::fail("a sealed frame does not look sealed");
    if (tn::keyring::key_id_of(frame) != k.current_key_id()) fz::fail("wrong key id on a frame");
    if (k.open(frame) != plain) fz::fail("a sealed frame does not open to its plaintext");
    if (rotated().open(frame) != plain) fz::fail("the previous key does not open a frame");
    // One bit flipped anywhere: refused.
    std::string bad = frame;
    bad[(flip / 8) % bad.size()] =
        static_cast<char>(bad[(flip / 8) % bad.size()] ^ (1 << (flip % 8)));
    try {
      (void)k.open(bad);
      fz::fail("a frame with a bit flipped opened");
    } catch (const tn::seal_error& e) {
      check_message(e);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_open(sealing(), bytes);
  check_open(signing(), bytes);
  check_open(rotated(), bytes);
  check_open(tn::keyring(), bytes);
  std::size_t flip = 0;
  for (std::size_t i = 0; i < size && i < 4; ++i) flip = flip * 256 + data[i];
  check_round_trip(size % 2 == 0 ? sealing() : signing(), bytes, flip);
  return 0;
}
