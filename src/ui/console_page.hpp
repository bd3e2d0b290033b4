// The page as `funcie ui` and `funcie connect --ui` run it: the server plus a local runner
// per function for Replay (made on first use: a runtime starts only when asked for).
#pragma once

#include "project/project.hpp"
#include "ui/server.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::ui {

struct page_options {
  std::shared_ptr<history::store> store;
  std::uint16_t port = 0;
  /// The functions Replay may run, by app.
  std::vector<project::function_spec> functions;
  std::string fixtures_dir;
  /// Each line a replayed handler prints, with its app.
  std::function<void(const std::string& app, int stream, std::string_view line)> output;
};

class console_page {
 public:
  /// Binds 127.0.0.1 and starts serving; throws std::system_error when it cannot bind.
  console_page(boost::asio::any_io_executor executor, page_options options);
  ~console_page();
  console_page(const console_page&) = delete;
  console_page& operator=(const console_page&) = delete;

  std::string url() const;
  /// Stops serving and the replay runtimes.
  boost::asio::awaitable<void> stop();

 private:
  boost::asio::any_io_executor executor_;
  page_options options_;
  std::map<std::string, std::unique_ptr<history::local_runner>> runners_;
  std::unique_ptr<server> server_;
};

/// Where Save as fixture writes: the directory of the nearest funcie.toml from the current
/// directory, else the current directory.
std::string fixtures_dir_here();

}  // namespace funcie::ui
