// `funcie ui`'s web server (docs/console.md): the page and its API on 127.0.0.1 only,
// guarded by a random token, with Host and Origin checked so that neither another local
// user nor a web page in the browser can read the history; the live list as server-sent
// events; Replay and Save as fixture.
#pragma once

#include "history/history.hpp"
#include "history/local_run.hpp"
#include "ui/request.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace funcie::ui {

struct server_options {
  std::shared_ptr<history::store> store;  ///< Read for the page, written by Replay.
  std::uint16_t port = 0;                 ///< 0: a free port.
  std::string token;                      ///< Empty: 32 random hex digits.
  /// Where Save as fixture writes events/NAME.json (the project's directory).
  std::string fixtures_dir;
  /// The local handler of an app, for Replay; nullptr when there is none.
  std::function<history::local_runner*(const std::string& app)> runner_for;
  /// How often the live list looks for new rows (written by this or another process).
  std::chrono::milliseconds poll{150};
};

class server {
 public:
  /// Binds 127.0.0.1 at once; throws std::system_error when it cannot.
  server(boost::asio::any_io_executor executor, server_options options);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  std::uint16_t port() const;
  /// http://127.0.0.1:PORT/?token=TOKEN
  std::string url() const;
  void start();
  void stop();

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace funcie::ui
