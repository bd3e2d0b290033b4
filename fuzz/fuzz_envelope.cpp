// The tunnel envelope decoders: bytes from the broker -> request, response or notice.
// Anything may arrive on a channel or a list; the decoders must throw protocol_error or
// return a message that encodes back to an equivalent one.
#include "http_message.hpp"

#include "tunnel/envelope.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tn = funcie::tunnel;
namespace rt = funcie::runtime_api;
namespace fz = funcie::fuzz;

namespace {

template <typename Message, typename Decode>
void check(std::string_view bytes, Decode decode) {
  Message m;
  try {
    m = decode(bytes);
  } catch (const rt::protocol_error&) {
    return;
  }
  // What decodes re-encodes to something that decodes to the same message.
  if (decode(tn::encode(m)) != m) fz::fail("envelope does not round-trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check<tn::request>(bytes, [](std::string_view b) { return tn::decode_request(b); });
  check<tn::response>(bytes, [](std::string_view b) { return tn::decode_response(b); });
  check<tn::notice>(bytes, [](std::string_view b) { return tn::decode_notice(b); });
  try {
    (void)tn::peek_kind(bytes);
  } catch (const rt::protocol_error&) {
  }
  return 0;
}
