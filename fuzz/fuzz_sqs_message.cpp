// The SQS backend's message bodies: anything with access to a queue can send one. decode
// throws message_error or returns a message that encodes back to the same one; any bytes cut
// into pieces come back whole from the pieces.
#include "backend/sqs/message.hpp"
#include "http_message.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace sq = funcie::sqs_backend;
namespace fz = funcie::fuzz;

namespace {

void check_decode(std::string_view bytes) {
  sq::message m;
  try {
    m = sq::decode(bytes);
  } catch (const sq::message_error&) {
    return;
  }
  const auto body = sq::encode(m);
  if (!sq::is_sqs_text(body)) fz::fail("an encoded body is not SQS text");
  if (sq::decode(body) != m) fz::fail("a message does not round-trip");
}

void check_split(std::string_view bytes, std::size_t limit) {
  sq::message proto;
  proto.kind = sq::message_kind::offer;
  proto.app = "fuzz";
  proto.id = "0123456789abcdef0123456789abcdef";
  proto.claim_by_ms = 1763900002000;
  proto.expires_ms = 1763900030000;
  const auto pieces = sq::split(proto, bytes, limit);
  sq::reassembly r;
  std::optional<std::string> whole;
  // Last piece first, then the rest: order must not matter.
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const auto& piece = pieces[(i + pieces.size() - 1) % pieces.size()];
    const auto body = sq::encode(piece);
    if (body.size() > limit) fz::fail("an encoded piece is over the limit");
    const auto decoded = sq::decode(body);
    if (decoded != piece) fz::fail("a piece does not round-trip");
    if (auto out = r.add(decoded, bytes.size())) whole = std::move(out);
  }
  if (!whole || *whole != bytes) fz::fail("the pieces do not reassemble to the envelope");
}

/// A presence tag's value comes from a queue anyone with sqs:TagQueue can tag: never throws,
/// and with a secret only a value sealed for its key is accepted.
void check_presence(std::string_view bytes) {
  static const auto keys = funcie::tunnel::keyring::from_secrets("fuzz secret, long enough 1234");
  const std::string key = "funcie:fuzz:01234567";
  (void)sq::presence_tag_until(key, bytes, {});
  if (sq::presence_tag_until(key, bytes, keys) && bytes.find(':') == std::string_view::npos) {
    fz::fail("an unsealed tag value was accepted with a secret");
  }
  const std::map<std::string, std::string> tags{{key, std::string(bytes)}};
  (void)sq::read_presence(tags, "fuzz", 0, keys);
  // Route tags (docs/sqs.md, "Routes"): whatever they hold, reading them never throws, and
  // with a secret bytes not sealed for the session never become its routes.
  const std::string session = "0123456789abcdef0123456789abcdef";
  for (const auto* with : {&keys, static_cast<const funcie::tunnel::keyring*>(nullptr)}) {
    const funcie::tunnel::keyring none;
    const auto& k = with != nullptr ? *with : none;
    const std::map<std::string, std::string> routed{
        {key, sq::presence_tag_value(key, 2, k, session, 2)},
        {key + ":1", std::string(bytes.substr(0, bytes.size() / 2))},
        {key + ":2", std::string(bytes.substr(bytes.size() / 2))},
    };
    const auto p = sq::read_presence(routed, "fuzz", 0, k);
    if (with != nullptr && !p.sessions.empty() && !p.sessions[0].routes.empty()) {
      fz::fail("route tags not sealed for the session were accepted with a secret");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_decode(bytes);
  check_presence(bytes);
  (void)sq::is_sqs_text(bytes);
  check_split(bytes, 1024 + (size == 0 ? 0 : data[0] % 64));
  return 0;
}
