#include "ui/console_page.hpp"

#include <filesystem>

namespace funcie::ui {

namespace asio = boost::asio;

console_page::console_page(asio::any_io_executor executor, page_options options)
    : executor_(executor), options_(std::move(options)) {
  server_options o;
  o.store = options_.store;
  o.port = options_.port;
  o.fixtures_dir = options_.fixtures_dir;
  o.runner_for = [this](const std::string& app) -> history::local_runner* {
    if (auto found = runners_.find(app); found != runners_.end()) return found->second.get();
    for (const auto& spec : options_.functions) {
      if (spec.app != app) continue;
      history::local_run_options r;
      r.spec = spec;
      if (options_.output) {
        r.output = [out = options_.output, app](int stream, std::string_view line) {
          out(app, stream, line);
        };
      }
      auto& runner = runners_[app];
      runner = std::make_unique<history::local_runner>(executor_, std::move(r));
      return runner.get();
    }
    return nullptr;
  };
  server_ = std::make_unique<server>(executor, std::move(o));
  server_->start();
}

console_page::~console_page() = default;

std::string console_page::url() const {
  return server_->url();
}

asio::awaitable<void> console_page::stop() {
  server_->stop();
  for (auto& [app, runner] : runners_) co_await runner->shut_down();
}

std::string fixtures_dir_here() {
  std::error_code ec;
  const auto here = std::filesystem::current_path(ec).string();
  if (auto project = project::find_project(here)) {
    return std::filesystem::path(*project).parent_path().string();
  }
  return here;
}

}  // namespace funcie::ui
