// The backends this build carries (src/tunnel/registry.hpp).
#include "backend/redis/redis_backend.hpp"
#include "backend/sqs/sqs_backend.hpp"
#include "tunnel/registry.hpp"

#include <array>

namespace funcie::tunnel {

std::span<const backend_kind* const> backend_kinds() {
  static const std::array<const backend_kind*, 2> kinds{&redis_backend::kind(),
                                                        &sqs_backend::kind()};
  return kinds;
}

}  // namespace funcie::tunnel
