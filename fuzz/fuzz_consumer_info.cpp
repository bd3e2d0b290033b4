// The consumer info a session publishes (Redis: its presence key; SQS: a pong): anybody with
// access to the broker can write one. decode returns nullopt or a card that encodes back to
// the same card.
#include "http_message.hpp"
#include "tunnel/consumer_info.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fz = funcie::fuzz;
namespace tn = funcie::tunnel;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto card = tn::decode_consumer_card(bytes);
  if (!card) return 0;
  const auto again = tn::decode_consumer_card(tn::encode_consumer_card(*card));
  if (!again) fz::fail("an encoded consumer info does not decode");
  if (*again != *card) fz::fail("a consumer info does not round-trip");
  return 0;
}
