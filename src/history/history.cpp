#include "history/history.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <sys/stat.h>

#include <cctype>
#include <charconv>
#include <filesystem>

namespace funcie::history {

namespace {

namespace fs = std::filesystem;

constexpr const char* schema = R"sql(
CREATE TABLE IF NOT EXISTS invocations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  app TEXT NOT NULL,
  request_id TEXT NOT NULL,
  trigger TEXT NOT NULL,
  received_ms INTEGER NOT NULL,
  duration_us INTEGER NOT NULL,
  cold INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  status TEXT NOT NULL,
  error_type TEXT NOT NULL,
  error_message TEXT NOT NULL,
  session TEXT NOT NULL,
  environment TEXT NOT NULL,
  source TEXT NOT NULL,
  replay_of INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  event BLOB NOT NULL,
  response BLOB NOT NULL,
  logs BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_request_id ON invocations(request_id);
CREATE INDEX IF NOT EXISTS invocations_app ON invocations(app, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('total_bytes', 0);
)sql";

// The list's columns: everything but the payloads, whose sizes make `bytes`.
constexpr const char* summary_columns =
    "id, app, request_id, trigger, received_ms, duration_us, cold, outcome, status, "
    "error_type, error_message, session, environment, source, replay_of, bytes";

/// One prepared statement, finalized on every way out.
class statement {
 public:
  statement(sqlite3* db, std::string_view sql, const std::string& path) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr) !=
        SQLITE_OK) {
      fail("prepare");
    }
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& bind(int i, std::int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  statement& bind(int i, std::string_view v) {
    check(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8));
    return *this;
  }
  statement& bind_blob(int i, std::string_view v) {
    check(sqlite3_bind_blob64(stmt_, i, v.empty() ? "" : v.data(), v.size(), SQLITE_STATIC));
    return *this;
  }
  /// True while there is a row.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("step");
  }
  std::int64_t integer(int i) const { return sqlite3_column_int64(stmt_, i); }
  std::string text(int i) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
    const int n = sqlite3_column_bytes(stmt_, i);
    return p == nullptr ? std::string() : std::string(p, static_cast<std::size_t>(n));
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail("bind");
  }
  [[noreturn]] void fail(const char* what) {
    throw history_error(fmt::format("history {}: {} failed: {}", path_, what, sqlite3_errmsg(db_)));
  }
  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const char* sql, const std::string& path) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string reason = message != nullptr ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    throw history_error(fmt::format("history {}: {}", path, reason));
  }
}

entry summary_of(const statement& s) {
  entry e;
  e.id = s.integer(0);
  e.app = s.text(1);
  e.request_id = s.text(2);
  e.trigger = s.text(3);
  e.received_ms = s.integer(4);
  e.duration_us = s.integer(5);
  e.cold = s.integer(6) != 0;
  e.outcome = s.text(7);
  e.status = s.text(8);
  e.error_type = s.text(9);
  e.error_message = s.text(10);
  e.session = s.text(11);
  e.environment = s.text(12);
  e.source = s.text(13);
  e.replay_of = s.integer(14);
  e.bytes = s.integer(15);
  return e;
}

/// Rolls back unless committed: every way out of a transaction ends it.
class transaction {
 public:
  transaction(sqlite3* db, const std::string& path) : db_(db), path_(path) {
    exec(db_, "BEGIN IMMEDIATE", path_);
  }
  ~transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;
  void commit() {
    exec(db_, "COMMIT", path_);
    done_ = true;
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  bool done_ = false;
};

}  // namespace

std::int64_t parse_size(std::string_view text) {
  const auto bad = [&] {
    return std::invalid_argument(
        fmt::format("--history-size: '{}' is not a size: give bytes or a number with K, M or G "
                    "(e.g. 300M), at least 1M",
                    text.substr(0, 40)));
  };
  std::int64_t number = 0;
  const auto* end = text.data() + text.size();
  const auto [rest, ec] = std::from_chars(text.data(), end, number);
  if (ec != std::errc() || rest == text.data() || number <= 0) throw bad();
  std::string_view unit(rest, static_cast<std::size_t>(end - rest));
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.remove_suffix(1);
  if (!unit.empty() && (unit.back() == 'i')) unit.remove_suffix(1);
  std::int64_t scale = 1;
  if (unit.size() == 1) {
    switch (std::toupper(static_cast<unsigned char>(unit[0]))) {
      case 'K':
        scale = 1024;
        break;
      case 'M':
        scale = 1024 * 1024;
        break;
      case 'G':
        scale = 1024LL * 1024 * 1024;
        break;
      default:
        throw bad();
    }
  } else if (!unit.empty()) {
    throw bad();
  }
  if (number > (std::int64_t{1} << 50) / scale) throw bad();
  const auto bytes = number * scale;
  if (bytes < 1024 * 1024) throw bad();
  return bytes;
}

std::string default_path(const std::function<const char*(const char*)>& getenv) {
  const auto value = [&](const char* name) {
    const char* v = getenv(name);
    return std::string(v != nullptr ? v : "");
  };
  if (auto own = value("FUNCIE_HISTORY"); !own.empty()) return own;
  if (auto state = value("XDG_STATE_HOME"); !state.empty() && state.front() == '/') {
    return fmt::format("{}/funcie/history.sqlite3", state);
  }
  const auto home = value("HOME");
  return fmt::format("{}/.local/state/funcie/history.sqlite3", home.empty() ? "." : home);
}

store::store(const std::string& path, std::int64_t bound) : path_(path), bound_(bound) {
  std::error_code ec;
  const auto dir = fs::path(path).parent_path();
  if (!dir.empty() && !fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec)
      throw history_error(
          fmt::format("history {}: cannot create its directory: {}", path, ec.message()));
    ::chmod(dir.c_str(), 0700);
  }
  const bool fresh = !fs::exists(path, ec);
  if (sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string reason = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw history_error(fmt::format("history {}: cannot open: {}", path, reason));
  }
  if (fresh) ::chmod(path.c_str(), 0600);
  try {
    // Several writers wait for each other rather than fail; readers never block writers.
    sqlite3_busy_timeout(db_, 5000);
    // Pages freed by dropping the oldest go back to the file system (incremental_vacuum after
    // each drop), so the file follows --history-size instead of keeping its largest size.
    // Takes effect only in a new file (set before its first table); an older file keeps
    // reusing its free pages, as before.
    exec(db_, "PRAGMA auto_vacuum=INCREMENTAL", path_);
    exec(db_, "PRAGMA journal_mode=WAL", path_);
    exec(db_, "PRAGMA synchronous=NORMAL", path_);
    exec(db_, "PRAGMA journal_size_limit=16777216", path_);
    exec(db_, schema, path_);
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

store::~store() {
  sqlite3_close(db_);
}

std::int64_t store::record(entry e) {
  e.bytes =
      static_cast<std::int64_t>(e.event.size() + e.response.size() + e.logs.size()) + row_overhead;
  transaction t(db_, path_);
  {
    statement insert(db_,
                     "INSERT INTO invocations (app, request_id, trigger, received_ms, "
                     "duration_us, cold, outcome, status, error_type, error_message, session, "
                     "environment, source, replay_of, bytes, event, response, logs) VALUES "
                     "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     path_);
    insert.bind(1, e.app).bind(2, e.request_id).bind(3, e.trigger).bind(4, e.received_ms);
    insert.bind(5, e.duration_us).bind(6, std::int64_t{e.cold ? 1 : 0}).bind(7, e.outcome);
    insert.bind(8, e.status).bind(9, e.error_type).bind(10, e.error_message);
    insert.bind(11, e.session).bind(12, e.environment).bind(13, e.source);
    insert.bind(14, e.replay_of).bind(15, e.bytes);
    insert.bind_blob(16, e.event).bind_blob(17, e.response).bind_blob(18, e.logs);
    insert.step();
  }
  e.id = sqlite3_last_insert_rowid(db_);
  std::int64_t total = e.bytes;
  {
    statement add(
        db_, "UPDATE meta SET value = value + ? WHERE key = 'total_bytes' RETURNING value", path_);
    add.bind(1, e.bytes);
    if (add.step()) total = add.integer(0);
    while (add.step()) {
    }
  }
  // Oldest first, a batch at a time, never the row just written.
  bool dropped = false;
  while (total > bound_) {
    std::int64_t last = 0;
    std::int64_t freed = 0;
    {
      statement oldest(db_, "SELECT id, bytes FROM invocations WHERE id < ? ORDER BY id LIMIT 64",
                       path_);
      oldest.bind(1, e.id);
      while (total - freed > bound_ && oldest.step()) {
        last = oldest.integer(0);
        freed += oldest.integer(1);
      }
    }
    if (last == 0) break;
    statement drop(db_, "DELETE FROM invocations WHERE id <= ?", path_);
    drop.bind(1, last);
    drop.step();
    statement sub(db_, "UPDATE meta SET value = value - ? WHERE key = 'total_bytes'", path_);
    sub.bind(1, freed);
    sub.step();
    total -= freed;
    dropped = true;
  }
  if (dropped) {
    statement vacuum(db_, "PRAGMA incremental_vacuum", path_);
    while (vacuum.step()) {
    }
  }
  t.commit();
  return e.id;
}

std::vector<entry> store::list(const filter& f) const {
  std::string sql = fmt::format("SELECT {} FROM invocations WHERE id > ?1", summary_columns);
  if (f.before > 0) sql += " AND id < ?2";
  if (!f.app.empty()) sql += " AND app = ?3";
  if (!f.outcome.empty()) sql += " AND outcome = ?4";
  if (!f.trigger.empty()) sql += " AND substr(trigger, 1, length(?5)) = ?5";
  if (!f.text.empty()) {
    sql +=
        " AND (instr(request_id, ?6) OR instr(trigger, ?6) OR instr(error_message, ?6) OR "
        "instr(error_type, ?6) OR instr(CAST(event AS TEXT), ?6))";
  }
  sql += " ORDER BY id DESC LIMIT ?7";
  statement s(db_, sql, path_);
  s.bind(1, f.after);
  if (f.before > 0) s.bind(2, f.before);
  if (!f.app.empty()) s.bind(3, f.app);
  if (!f.outcome.empty()) s.bind(4, f.outcome);
  if (!f.trigger.empty()) s.bind(5, f.trigger);
  if (!f.text.empty()) s.bind(6, f.text);
  s.bind(7, static_cast<std::int64_t>(f.limit));
  std::vector<entry> out;
  while (s.step()) out.push_back(summary_of(s));
  return out;
}

std::optional<entry> store::get(std::int64_t id) const {
  statement s(db_,
              fmt::format("SELECT {}, event, response, logs FROM invocations WHERE id = ?",
                          summary_columns),
              path_);
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  auto e = summary_of(s);
  e.event = s.text(16);
  e.response = s.text(17);
  e.logs = s.text(18);
  return e;
}

std::optional<entry> store::find(std::string_view key) const {
  if (key.empty()) return std::nullopt;
  std::int64_t id = 0;
  const auto [rest, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
  if (ec == std::errc() && rest == key.data() + key.size() && key.size() < 8) return get(id);
  statement s(db_,
              key.size() >= 8 ? "SELECT id FROM invocations WHERE substr(request_id, 1, "
                                "length(?1)) = ?1 ORDER BY id DESC LIMIT 1"
                              : "SELECT id FROM invocations WHERE request_id = ?1 ORDER BY id "
                                "DESC LIMIT 1",
              path_);
  s.bind(1, key);
  if (s.step()) return get(s.integer(0));
  if (ec == std::errc() && rest == key.data() + key.size()) return get(id);
  return std::nullopt;
}

std::vector<store::point> store::latency(const std::string& app, std::size_t n) const {
  statement s(db_,
              "SELECT id, received_ms, duration_us, outcome FROM invocations WHERE app = ? "
              "ORDER BY id DESC LIMIT ?",
              path_);
  s.bind(1, app).bind(2, static_cast<std::int64_t>(n));
  std::vector<point> out;
  while (s.step()) out.push_back({s.integer(0), s.integer(1), s.integer(2), s.text(3)});
  return {out.rbegin(), out.rend()};
}

std::int64_t store::last_id() const {
  statement s(db_, "SELECT COALESCE(MAX(id), 0) FROM invocations", path_);
  return s.step() ? s.integer(0) : 0;
}

std::int64_t store::count() const {
  statement s(db_, "SELECT COUNT(*) FROM invocations", path_);
  return s.step() ? s.integer(0) : 0;
}

std::int64_t store::total_bytes() const {
  statement s(db_, "SELECT value FROM meta WHERE key = 'total_bytes'", path_);
  return s.step() ? s.integer(0) : 0;
}

}  // namespace funcie::history
