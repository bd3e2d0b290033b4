#include "consumer/watcher.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

namespace funcie::consumer {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace asio::experimental::awaitable_operators;

namespace {

// What makes a change. Not IN_MODIFY: a file being written is seen when it is closed.
constexpr std::uint32_t watch_mask =
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_ONLYDIR;

// One watched directory (one inotify watch descriptor).
struct watched_dir {
  std::string dir;     // spelled from the path given: names are joined to it
  bool whole = false;  // every entry counts (a watched tree); else only `files`
  std::map<std::string, std::string, std::less<>> files;  // name -> the path as given
};

bool ignored(std::string_view name) {
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  // node_modules: thousands of watches for files a reload would not pick up anyway (an
  // install is followed by a save or r); __pycache__: Python writes it on import.
  return name == ".git" || name == "node_modules" || name == "__pycache__" || name == "4913" ||
         name.substr(0, 2) == ".#" || ends_with(".swp") || ends_with(".swx") || ends_with(".swo") ||
         ends_with("~");
}

std::string join(const std::string& dir, std::string_view name) {
  std::string out = dir;
  if (out.empty() || out.back() != '/') out += '/';
  out.append(name);
  return out;
}

// "src/" -> "src", "./src/./lib" -> "src/lib", "/" stays.
std::string tidy(const std::string& path) {
  std::string out = fs::path(path).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out.empty() ? std::string(".") : out;
}

}  // namespace

struct watcher::state {
  state(const asio::any_io_executor& executor, std::chrono::milliseconds d,
        std::function<void(std::vector<std::string>)> f)
      : timer(executor), debounce(d), on_change(std::move(f)) {}

  std::optional<asio::posix::stream_descriptor> inotify;
  asio::steady_timer timer;
  std::chrono::milliseconds debounce;
  std::function<void(std::vector<std::string>)> on_change;
  std::unordered_map<int, watched_dir> watches;
  std::vector<std::string> roots;  // reported when the kernel's queue overflowed
  std::vector<char> buffer = std::vector<char>(64 * 1024);

  // The burst so far.
  bool pending = false;
  std::chrono::steady_clock::time_point last_event;
  std::vector<std::string> changed;
  std::set<std::string, std::less<>> seen;

  bool stopped = false;
  bool warned_limit = false;

  int fd() { return inotify->native_handle(); }

  void note(const std::string& path) {
    pending = true;
    last_event = std::chrono::steady_clock::now();
    if (changed.size() < max_reported && seen.insert(path).second) changed.push_back(path);
  }

  // Adds (or extends) the watch on directory `path`. At start a failure throws; later (a
  // directory created meanwhile) it is logged, since there is no one to throw to.
  std::optional<int> add_watch(const std::string& path, bool at_start) {
    int wd = inotify_add_watch(fd(), path.c_str(), watch_mask);
    if (wd >= 0) return wd;
    const int err = errno;
    std::string why;
    if (err == ENOSPC) {
      why = "cannot watch '" + path +
            "': the inotify watch limit is reached; raise fs.inotify.max_user_watches (e.g. "
            "sudo sysctl fs.inotify.max_user_watches=524288)";
    } else if (at_start || (err != ENOENT && err != ENOTDIR)) {
      why = "cannot watch '" + path + "': " + std::strerror(err);
    } else {
      return std::nullopt;  // gone again before we could watch it
    }
    if (at_start) throw std::runtime_error(why);
    if (err != ENOSPC || !warned_limit) spdlog::warn("{}", why);
    if (err == ENOSPC) warned_limit = true;
    return std::nullopt;
  }

  // Watches directory `dir` and every directory under it but .git ones. With `report`, the
  // files already in it count as changed (a directory created or moved in: what was put
  // there before its watch existed is not missed).
  void add_tree(const std::string& dir, bool at_start, bool report) {
    auto wd = add_watch(dir, at_start);
    if (!wd) return;
    auto& root = watches[*wd];
    root.dir = dir;
    root.whole = true;
    std::error_code ec;
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const auto name = it->path().filename().string();
      if (ignored(name)) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        ec.clear();
        continue;
      }
      // Spelled from `dir` as given, not as the iterator joins it.
      auto relative = it->path().lexically_relative(dir).string();
      auto path = join(dir, relative);
      std::error_code type_ec;
      if (it->is_directory(type_ec) && !it->is_symlink(type_ec)) {
        if (auto sub = add_watch(it->path().string(), at_start)) {
          auto& w = watches[*sub];
          w.dir = path;
          w.whole = true;
        } else {
          it.disable_recursion_pending();
        }
      }
      if (report) note(path);
    }
  }

  // A directory moved away: its watches would report under the old name.
  void remove_tree(const std::string& dir) {
    const auto prefix = dir + "/";
    for (auto it = watches.begin(); it != watches.end();) {
      const auto& w = it->second;
      if (w.whole && (w.dir == dir || w.dir.compare(0, prefix.size(), prefix) == 0)) {
        inotify_rm_watch(fd(), it->first);
        it = watches.erase(it);
      } else {
        ++it;
      }
    }
  }

  void handle(int wd, std::uint32_t mask, std::string_view name) {
    if (mask & IN_Q_OVERFLOW) {
      // Events were lost: say that everything may have changed.
      for (const auto& root : roots) note(root);
      return;
    }
    auto found = watches.find(wd);
    if (found == watches.end()) return;
    if (mask & IN_IGNORED) {  // the directory is gone (or its watch was removed)
      watches.erase(found);
      return;
    }
    if (name.empty() || ignored(name)) return;
    const watched_dir& w = found->second;
    std::string path;
    if (w.whole) {
      path = join(w.dir, name);
    } else if (auto file = w.files.find(name); file != w.files.end()) {
      path = file->second;
    } else {
      return;
    }
    if ((mask & IN_ISDIR) && w.whole) {
      if (mask & (IN_CREATE | IN_MOVED_TO)) add_tree(path, false, true);
      if (mask & IN_MOVED_FROM) remove_tree(path);
    }
    note(path);
  }

  // Reads and handles every event queued now. False when the descriptor failed.
  bool read_events() {
    for (;;) {
      ssize_t n = ::read(fd(), buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (n <= 0) {
        spdlog::warn("file watch stopped: {}", n < 0 ? std::strerror(errno) : "end of file");
        return false;
      }
      const auto size = static_cast<std::size_t>(n);
      std::size_t offset = 0;
      // Records are a fixed header then `len` bytes of NUL-padded name.
      while (size - offset >= sizeof(inotify_event)) {
        inotify_event event;
        std::memcpy(&event, buffer.data() + offset, sizeof event);
        const std::size_t record = sizeof(inotify_event) + event.len;
        if (record > size - offset) break;  // cut short: not from a sane kernel
        std::string_view name;
        if (event.len > 0) {
          const char* start = buffer.data() + offset + sizeof(inotify_event);
          name = std::string_view(start, strnlen(start, event.len));
        }
        handle(event.wd, event.mask, name);
        offset += record;
      }
    }
  }

  void fire() {
    auto paths = std::move(changed);
    changed.clear();
    seen.clear();
    pending = false;
    try {
      on_change(std::move(paths));
    } catch (const std::exception& e) {
      spdlog::warn("file change handler failed: {}", e.what());
    }
  }
};

namespace {

asio::awaitable<void> watch_loop(std::shared_ptr<watcher::state> s) {
  try {
    for (;;) {
      if (s->pending) {
        s->timer.expires_at(s->last_event + s->debounce);
        auto woke = co_await (s->inotify->async_wait(asio::posix::stream_descriptor::wait_read,
                                                     asio::use_awaitable) ||
                              s->timer.async_wait(asio::use_awaitable));
        if (s->stopped) co_return;
        if (woke.index() == 1) {
          s->fire();
          if (s->stopped) co_return;
          continue;
        }
      } else {
        co_await s->inotify->async_wait(asio::posix::stream_descriptor::wait_read,
                                        asio::use_awaitable);
        if (s->stopped) co_return;
      }
      if (!s->read_events()) co_return;
    }
  } catch (const std::exception&) {
    // Cancelled: the watcher was destroyed.
  }
}

}  // namespace

watcher::watcher(asio::any_io_executor executor, std::vector<std::string> paths,
                 std::chrono::milliseconds debounce,
                 std::function<void(std::vector<std::string>)> on_change)
    : state_(std::make_shared<state>(executor, debounce, std::move(on_change))) {
  for (const auto& path : paths) {
    std::error_code ec;
    if (path.empty() || !fs::exists(path, ec)) {
      throw std::invalid_argument("cannot watch '" + path + "': no such file or directory");
    }
  }
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw std::runtime_error(
        err == EMFILE ? "cannot watch files: too many inotify instances; raise "
                        "fs.inotify.max_user_instances"
                      : std::string("cannot watch files: inotify: ") + std::strerror(err));
  }
  state_->inotify.emplace(executor, fd);
  auto& s = *state_;
  for (const auto& given : paths) {
    std::error_code ec;
    if (fs::is_directory(given, ec)) {
      auto dir = tidy(given);
      s.roots.push_back(dir);
      s.add_tree(dir, true, false);
      continue;
    }
    // A file: through its directory, so that rename-over-it and delete-and-recreate count.
    s.roots.push_back(given);
    auto parent = fs::path(given).parent_path().string();
    if (parent.empty()) parent = ".";
    auto name = fs::path(given).filename().string();
    if (auto wd = s.add_watch(parent, true)) {
      auto& w = s.watches[*wd];
      if (w.dir.empty()) w.dir = tidy(parent);
      w.files.emplace(name, given);
    }
  }
  asio::co_spawn(executor, watch_loop(state_), asio::detached);
}

watcher::~watcher() {
  auto& s = *state_;
  s.stopped = true;
  s.timer.cancel();
  boost::system::error_code ignored_error;
  s.inotify->close(ignored_error);  // the loop's wait ends with operation_aborted
}

}  // namespace funcie::consumer
