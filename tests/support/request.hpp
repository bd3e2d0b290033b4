// A tunnel request as a function would forward it, for tests that drive a backend directly.
#pragma once

#include "tunnel/backend.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <string>
#include <string_view>

namespace funcie::test {

/// A new request for `app` carrying `payload`: fresh ids, sent now, 60 s to its deadline.
inline tunnel::request fresh_request(std::string_view app, std::string payload) {
  tunnel::request req;
  req.id = util::random_hex(32);
  req.app = std::string(app);
  req.sent_ms = util::unix_ms_now();
  req.context.request_id = util::new_request_id();
  req.context.deadline_ms = util::unix_ms_now() + 60'000;
  req.function.name = std::string(app);
  req.payload = std::move(payload);
  return req;
}

}  // namespace funcie::test
