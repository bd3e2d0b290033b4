// The invocation history (docs/console.md): one SQLite database that `funcie connect`,
// `funcie invoke` and the page's Replay write a row to per finished invocation, and that
// `funcie ui` reads. Bounded in bytes, oldest rows dropped first; safe for several
// processes at once (WAL, IMMEDIATE transactions, a busy timeout).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;

namespace funcie::history {

/// The database cannot be opened, read or written; the message names the file and SQLite's
/// reason, never a row's contents.
class history_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One finished invocation.
struct entry {
  std::int64_t id = 0;  ///< Set by the store: the order of recording.
  std::string app;
  std::string request_id;
  std::string trigger;           ///< "API Gateway v2 GET /orders/7", "SQS 2 records"
  std::int64_t received_ms = 0;  ///< Unix ms when the local side took it.
  std::int64_t duration_us = 0;  ///< How long the handler ran.
  bool cold = false;             ///< A runtime started for it.
  std::string outcome;           ///< "ok", "error" or "timeout"
  std::string status;            ///< A proxy response's HTTP status, else empty.
  std::string error_type;
  std::string error_message;
  std::string event;     ///< Byte for byte.
  std::string response;  ///< The payload, or the error JSON.
  std::string logs;      ///< The handler's lines while it ran, '\n'-separated.
  std::string session;
  std::string environment;        ///< "orders#2"
  std::string source = "tunnel";  ///< "tunnel", "replay" or "invoke"
  std::int64_t replay_of = 0;     ///< The id a replay ran again; 0 otherwise.
  std::int64_t bytes = 0;         ///< Set by the store: the row's weight for the bound.
};

/// What the list shows; empty fields match everything.
struct filter {
  std::int64_t after = 0;   ///< Only ids above (the live list's cursor).
  std::int64_t before = 0;  ///< Only ids below (paging back); 0: no bound.
  std::string app;
  std::string outcome;
  std::string trigger;  ///< A prefix of the trigger ("SQS", "API Gateway").
  std::string text;     ///< Found in the request id, trigger, error or event.
  std::size_t limit = 200;
};

/// A row's weight beyond its payloads, for the bound.
inline constexpr std::int64_t row_overhead = 512;
inline constexpr std::int64_t default_bound = 256LL * 1024 * 1024;

/// "300M", "1G", "512K", "1048576" (bytes); throws std::invalid_argument with what is
/// allowed. At least 1 MiB.
std::int64_t parse_size(std::string_view text);

/// $FUNCIE_HISTORY, else $XDG_STATE_HOME/funcie/history.sqlite3, else
/// $HOME/.local/state/funcie/history.sqlite3. `getenv` is passed in for tests.
std::string default_path(const std::function<const char*(const char*)>& getenv);

class store {
 public:
  /// Opens (creating the file, mode 0600, and its directory, mode 0700) and prepares the
  /// schema. Throws history_error.
  store(const std::string& path, std::int64_t bound = default_bound);
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  const std::string& path() const { return path_; }
  std::int64_t bound() const { return bound_; }

  /// Writes `e` (its id and bytes are set here) and drops the oldest rows while the total
  /// is over the bound, never the row just written. Returns the new id. Throws history_error.
  std::int64_t record(entry e);

  /// Newest first, without event, response and logs (their sizes in `bytes`).
  std::vector<entry> list(const filter& f) const;
  /// The whole row.
  std::optional<entry> get(std::int64_t id) const;
  /// By id ("42"), request id, or a request id prefix of at least 8 characters (the newest
  /// match).
  std::optional<entry> find(std::string_view key) const;
  /// (id, duration_us, outcome) of the last `n` invocations of `app`, oldest first.
  struct point {
    std::int64_t id;
    std::int64_t received_ms;
    std::int64_t duration_us;
    std::string outcome;
  };
  std::vector<point> latency(const std::string& app, std::size_t n) const;

  std::int64_t last_id() const;
  std::int64_t count() const;
  /// The sum of the rows' bytes (kept with the rows).
  std::int64_t total_bytes() const;

 private:
  std::string path_;
  std::int64_t bound_;
  sqlite3* db_ = nullptr;
};

}  // namespace funcie::history
