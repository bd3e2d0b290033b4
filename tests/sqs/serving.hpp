// A consumer session for the SQS tests that records the ids of what it ran and answers each
// request with its own event; it stops when the session ends (next or respond throws).
#pragma once

#include "tunnel/backend.hpp"

#include <boost/asio/awaitable.hpp>

#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace funcie::test {

struct serving {
  std::vector<std::string> handled;
};

inline boost::asio::awaitable<void> serve(tunnel::consumer_session* session,
                                          std::shared_ptr<serving> log) {
  for (;;) {
    tunnel::request req;
    try {
      req = co_await session->next();
    } catch (const std::exception&) {
      co_return;
    }
    log->handled.push_back(req.id);
    tunnel::response answer;
    answer.id = req.id;
    answer.app = req.app;
    answer.consumer = session->id();
    answer.body = req.payload;
    try {
      co_await session->respond(answer);
    } catch (const std::exception&) {
      co_return;
    }
  }
}

}  // namespace funcie::test
