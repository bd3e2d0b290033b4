#include "console/console.hpp"

#include <fmt/format.h>

#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <utility>

namespace funcie::console {
namespace {

// SGR codes.
constexpr std::string_view reset = "\x1b[0m";
constexpr std::string_view dim = "\x1b[2m";
constexpr std::string_view red = "\x1b[31m";
constexpr std::string_view green = "\x1b[32m";
constexpr std::string_view yellow = "\x1b[33m";
constexpr std::string_view dim_yellow = "\x1b[2;33m";

constexpr std::size_t request_id_width = 8;
constexpr std::size_t trigger_width = 30;
constexpr std::size_t max_trigger_chars = 36;
constexpr std::size_t duration_width = 6;
constexpr std::size_t max_function_width = 16;
constexpr std::size_t max_error_type_chars = 60;
constexpr std::size_t max_error_message_chars = 100;
/// Blocks under a line start below its function column: "HH:MM:SS.mmm ".
constexpr std::size_t block_indent = 13;
/// Trace lines shown under an error line; the rest is "… N more".
constexpr std::size_t max_trace_lines = 8;
/// Piped: no width to fit, one line per event.
constexpr std::size_t piped_columns = 100'000;
/// Whatever is left of the line for the error, when less than this it goes under the line.
constexpr std::size_t min_error_columns = 24;

std::string pad_right(std::string text, std::size_t width) {
  const std::size_t has = display_width(text);
  if (has < width) text.append(width - has, ' ');
  return text;
}

std::string pad_left(const std::string& text, std::size_t width) {
  const std::size_t has = display_width(text);
  return has < width ? std::string(width - has, ' ') + text : text;
}

std::string duration_text(std::chrono::milliseconds took) {
  const long long ms = std::max<long long>(0, took.count());
  if (ms < 1'000) return fmt::format("{}ms", ms);
  if (ms < 10'000) return fmt::format("{:.2f}s", static_cast<double>(ms) / 1000.0);
  if (ms < 100'000) return fmt::format("{:.1f}s", static_cast<double>(ms) / 1000.0);
  if (ms < 3'600'000) return fmt::format("{}m{:02}s", ms / 60'000, ms / 1'000 % 60);
  return fmt::format("{}h{:02}m", ms / 3'600'000, ms / 60'000 % 60);
}

std::string_view outcome_word(outcome result) {
  switch (result) {
    case outcome::ok:
      return "ok";
    case outcome::error:
      return "error";
    case outcome::held:
      return "held";
    case outcome::timeout:
      return "timeout";
  }
  return "?";
}

std::string_view outcome_colour(outcome result) {
  switch (result) {
    case outcome::ok:
      return green;
    case outcome::held:
      return yellow;
    case outcome::error:
    case outcome::timeout:
      break;
  }
  return red;
}

/// The first line of `text` that is not blank, without its line end.
std::string_view first_line(std::string_view text) {
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") != std::string_view::npos) return line;
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return {};
}

std::string one_line(std::string_view text, std::size_t max_chars) {
  return shorten(printable(text), max_chars);
}

/// The first `n` characters of `text` made printable (a prefix, not an abbreviation: no "…").
std::string head(std::string_view text, std::size_t n) {
  const std::string shown = printable(text);
  std::size_t end = 0;
  for (std::size_t chars = 0; chars < n && end < shown.size(); ++chars) {
    ++end;  // printable() output is valid UTF-8: skip the continuation bytes
    while (end < shown.size() && (static_cast<unsigned char>(shown[end]) & 0xC0u) == 0x80u) ++end;
  }
  return shown.substr(0, end);
}

/// "Type: message" for errors, timeouts and held failures.
std::string error_text(const invocation_line& line) {
  const std::string type = one_line(first_line(line.error_type), max_error_type_chars);
  const std::string message = one_line(first_line(line.error_message), max_error_message_chars);
  if (line.result == outcome::ok) return {};
  if (type.empty()) return message;
  if (message.empty()) return type;
  return type + ": " + message;
}

/// Splits `text` into lines, without a last empty one for a final "\n".
template <typename Each>
void for_each_line(std::string_view text, Each each) {
  while (!text.empty()) {
    const auto end = text.find('\n');
    each(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

}  // namespace

bool wants_colour(std::FILE* stream) {
  const auto env = [](const char* name) -> std::string_view {
    const char* value = std::getenv(name);
    return value != nullptr ? value : "";
  };
  const std::string_view force = env("FORCE_COLOR");
  if (!force.empty()) return force != "0" && force != "false";
  if (stream == nullptr) return false;
  if (!env("NO_COLOR").empty()) return false;
  if (env("TERM") == "dumb") return false;
  const int fd = ::fileno(stream);
  return fd >= 0 && ::isatty(fd) == 1;
}

bool wants_live(std::FILE* stream) {
  if (stream == nullptr) return false;
  const char* term = std::getenv("TERM");
  if (term == nullptr || *term == '\0' || std::string_view(term) == "dumb") return false;
  const int fd = ::fileno(stream);
  return fd >= 0 && ::isatty(fd) == 1;
}

std::string local_time_of_day() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm local{};
  ::localtime_r(&seconds, &local);
  return fmt::format("{:02}:{:02}:{:02}.{:03}", local.tm_hour, local.tm_min, local.tm_sec,
                     std::max<long long>(0, ms));
}

console::console(std::FILE* out, bool colour, clock time_of_day, bool live)
    : out_(out), colour_(colour), clock_(std::move(time_of_day)), live_(live) {}

console::~console() {
  status({});
  // The queue writes what is left after this console is gone: it must not call back here.
  if (queue_ != nullptr) queue_->on_gone({});
}

void console::align_functions(std::size_t width) {
  function_width_ = std::max(function_width_, std::min(width, max_function_width));
}

std::string console::paint(std::string_view code, std::string_view text) const {
  if (!colour_ || text.empty()) return std::string(text);
  std::string painted;
  painted.reserve(code.size() + text.size() + reset.size());
  painted.append(code).append(text).append(reset);
  return painted;
}

std::string console::start_of_line() {
  return paint(dim, printable(clock_ ? clock_() : std::string())) + " ";
}

std::string console::function_column(std::string_view function) {
  if (function.empty()) return {};
  std::string name = one_line(function, max_function_width);
  align_functions(display_width(name));
  return pad_right(std::move(name), function_width_) + " ";
}

std::size_t console::columns() const {
  // Piped or in a file: one line per event, nothing wrapped (grep and less read it).
  if (!live_ || out_ == nullptr) return piped_columns;
  winsize size{};
  const int fd = ::fileno(out_);
  if (fd < 0 || ::ioctl(fd, TIOCGWINSZ, &size) != 0 || size.ws_col == 0) return max_columns;
  return std::clamp<std::size_t>(size.ws_col, min_columns, max_columns);
}

void console::invocation(const invocation_line& line) {
  // Widths are counted on the text before it is painted.
  std::string text = start_of_line();
  std::size_t used = block_indent;
  const std::string function = function_column(line.function);
  text += function;
  used += display_width(function);
  const std::string id = pad_right(head(line.request_id, request_id_width), request_id_width) + " ";
  text += id;
  used += display_width(id);

  // A terminal narrower than 100 columns narrows the trigger column first.
  const std::size_t width = columns();
  const std::size_t after_trigger = 1 + duration_width + 1 + 7 + 4;  // " 12.3s timeout 503"
  const std::size_t room =
      width > used + after_trigger + 11 ? width - used - after_trigger - 1 : 10;
  const std::size_t column_width = std::min(trigger_width, room);
  // The source stays whole when it can; the detail (a path) loses its middle.
  const std::size_t max_what = std::min(max_trigger_chars, room);
  const std::string source = printable(line.what.source);
  const std::string detail = printable(line.what.detail);
  std::string what;
  if (detail.empty()) {
    what = shorten(source, max_what);
  } else if (source.empty()) {
    what = shorten_middle(detail, max_what);
  } else if (display_width(source) + 1 + 4 <= max_what) {
    what = source + " " + shorten_middle(detail, max_what - display_width(source) - 1);
  } else {
    what = shorten_middle(source + " " + detail, max_what);
  }
  const std::string trigger_column = pad_right(what, column_width) + " ";
  text += trigger_column;
  used += display_width(trigger_column);
  text += pad_left(duration_text(line.took), duration_width) + " ";
  used += duration_width + 1;
  const std::string_view word = outcome_word(line.result);
  text += paint(outcome_colour(line.result), word);
  used += word.size();

  if (line.status != 0) {
    const std::string status = std::to_string(line.status);
    text += " ";
    text += line.status >= 500   ? paint(red, status)
            : line.status >= 400 ? paint(yellow, status)
                                 : status;
    used += 1 + status.size();
  }
  const std::string indent(block_indent, ' ');
  const std::size_t under_width = width - block_indent - 2;
  std::string below;
  // "Type: message" on the line when it fits; else the type there (when it fits) and the
  // message under the line, wrapped at spaces: never cut.
  if (const std::string error = error_text(line); !error.empty()) {
    const std::size_t room_left = width > used + 1 ? width - used - 1 : 0;
    const std::string type = one_line(first_line(line.error_type), max_error_type_chars);
    const std::string message = one_line(first_line(line.error_message), max_error_message_chars);
    if (display_width(error) <= room_left) {
      text += " " + error;
    } else if (!type.empty() && display_width(type) + 1 <= room_left && !message.empty()) {
      text += " " + type + ":";
      for (const auto& part : wrap_words(message, under_width))
        below += indent + "  " + part + "\n";
    } else {
      for (const auto& part : wrap_words(error, under_width)) below += indent + "  " + part + "\n";
    }
  }
  text += '\n';
  for (std::size_t i = 0; i < line.trace.size() && i < max_trace_lines; ++i) {
    below +=
        indent + "  " + paint(dim, shorten_middle(printable(line.trace[i]), under_width)) + "\n";
  }
  if (line.trace.size() > max_trace_lines) {
    below += indent + "  " +
             paint(dim, fmt::format("… {} more", line.trace.size() - max_trace_lines)) + "\n";
  }
  if (const std::string note = printable(line.note, keep::nothing); !note.empty()) {
    for (const auto& part : wrap_words(note, under_width)) {
      below += indent + "  " + paint(dim, part) + "\n";
    }
  }
  write(text + below);
}

void console::report(const report_line& figures) {
  const auto ms = [](std::chrono::microseconds d) {
    return fmt::format("{:.2f} ms",
                       static_cast<double>(std::max<long long>(0, d.count())) / 1000.0);
  };
  const long long billed = (std::max<long long>(0, figures.duration.count()) + 999) / 1000;
  std::vector<std::string> items = {
      "REPORT " + head(figures.request_id, request_id_width),
      "Duration: " + ms(figures.duration),
      fmt::format("Billed Duration: {} ms", std::max<long long>(1, billed)),
      fmt::format("Memory Size: {} MB", figures.memory_mb),
  };
  if (figures.max_memory_used_mb) {
    items.push_back(fmt::format("Max Memory Used: {} MB", *figures.max_memory_used_mb));
  }
  if (figures.init.count() > 0) items.push_back("Init Duration: " + ms(figures.init));
  const std::string indent(block_indent, ' ');
  const std::size_t width = columns();
  std::string text;
  std::string current;
  for (const auto& item : items) {
    if (!current.empty() && block_indent + 2 + current.size() + 2 + item.size() > width) {
      text += indent + "  " + paint(dim, current) + "\n";
      current.clear();
    }
    current += (current.empty() ? "" : "  ") + item;
  }
  text += indent + "  " + paint(dim, current) + "\n";
  write(text);
}

void console::field(std::string_view name, std::string_view text, bool warning) {
  const std::string label = pad_right(printable(name), 8);
  const std::size_t width = columns() - 2 - 8 - 1;
  std::string out;
  bool first = true;
  for (const auto& part : wrap_words(printable(text, keep::nothing), width)) {
    out += "  ";
    out += first ? paint(dim, label) : std::string(8, ' ');
    out += ' ';
    out += warning ? paint(yellow, part) : part;
    out += '\n';
    first = false;
  }
  write(out);
}

void console::status(std::string_view text) {
  if (!live_) return;
  std::string shown = shorten(printable(text, keep::nothing), columns() - 1);
  if (shown == status_) return;
  status_ = std::move(shown);
  write({});
}

void console::handler_output(std::string_view prefix, std::string_view line, bool from_stderr) {
  std::string label;
  if (!prefix.empty()) {
    label = printable(prefix);
    if (label.front() != '[' || label.back() != ']') label = "[" + label + "]";
    label = paint(from_stderr ? dim_yellow : dim, label);
  }
  if (line.ends_with('\n')) line.remove_suffix(1);
  std::string text;
  const auto add = [&](std::string_view part) {
    if (part.ends_with('\r')) part.remove_suffix(1);
    const std::string shown = printable(strip_escape_sequences(part), keep::tabs);
    text += label;
    if (!label.empty() && !shown.empty()) text += ' ';
    text += shown;
    text += '\n';
  };
  if (line.empty()) {
    add(line);
  } else {
    for_each_line(line, add);
  }
  write(text);
}

void console::notice(std::string_view function, std::string_view mark, std::string_view code,
                     std::string_view text) {
  std::string out = start_of_line();
  const std::string column = function_column(function);
  out += column;
  // Continuation lines start under the text, after the mark.
  const std::size_t indent = block_indent + display_width(column) + display_width(mark) + 1;
  const auto parts =
      wrap_words(printable(text, keep::nothing), columns() > indent + 20 ? columns() - indent : 20);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::string body;
    if (i == 0) {
      body = std::string(mark) + ' ' + parts[i];
    } else {
      out += std::string(indent, ' ');
      body = parts[i];
    }
    out += code.empty() ? body : paint(code, body);
    out += '\n';
  }
  write(out);
}

void console::info(std::string_view function, std::string_view text) {
  notice(function, "•", {}, text);
}

void console::warn(std::string_view function, std::string_view text) {
  notice(function, "▲", yellow, text);
}

void console::payload_block(std::string_view title, std::string_view pretty) {
  const std::string indent(block_indent, ' ');
  std::string text = indent + paint(dim, printable(title)) + "\n";
  const std::string body = printable(pretty, keep::tabs_and_newlines);
  if (body.empty()) {
    text += indent + "  " + paint(dim, "(empty)") + "\n";
  } else {
    for_each_line(body, [&](std::string_view part) {
      text += indent;
      text += "  ";
      text += part;
      text += '\n';
    });
  }
  write(text);
}

void console::on_output_gone(std::function<void()> gone) {
  on_gone_ = std::move(gone);
}

void console::write(std::string text) {
  if (out_ == nullptr || gone_) return;
  if (live_) {
    // The status line stays at the bottom: erased, the text, drawn again (no newline, so
    // the next erase finds it on the cursor's line).
    if (status_drawn_) text.insert(0, "\r\x1b[2K");
    text += status_;
    status_drawn_ = !status_.empty();
  }
  write_all(out_, text);
}

void console::print_to(std::FILE* stream, std::string_view text) {
  if (stream == nullptr) return;
  if (stream == out_) {
    write(std::string(text));
    return;
  }
  if (live_ && status_drawn_ && !gone_) write_all(out_, "\r\x1b[2K");
  write_all(stream, text);
  if (live_ && status_drawn_ && !gone_) write_all(out_, status_);
}

void console::write_through(output_queue& queue) {
  queue_ = &queue;
  queue.on_gone([this](int fd) {
    if (out_ == nullptr || fd != ::fileno(out_) || gone_) return;
    gone_ = true;
    if (on_gone_) on_gone_();
  });
}

boost::asio::awaitable<void> console::room() {
  if (queue_ != nullptr) co_await queue_->room();
}

boost::asio::awaitable<void> console::drained() {
  if (queue_ != nullptr) co_await queue_->drained();
}

void console::write_all(std::FILE* stream, std::string_view text) {
  const int fd = ::fileno(stream);
  if (queue_ != nullptr && (fd == STDOUT_FILENO || fd == STDERR_FILENO)) {
    std::fflush(stream);  // what stdio holds goes first
    queue_->write(fd, std::string(text));
    return;
  }
  if (fd < 0) {  // a stream without a descriptor (tests' memory streams)
    if (std::fwrite(text.data(), 1, text.size(), stream) != text.size()) std::clearerr(stream);
    std::fflush(stream);
    return;
  }
  // Without a queue (tests, funcie's other commands): straight to the descriptor, all of it:
  // a short write is continued, never dropped. The descriptor is blocking (funcie connect never
  // sets O_NONBLOCK on a terminal it shares with the shell); should something else have set it,
  // poll() waits until the terminal takes more. Waiting here is the backpressure: while the
  // terminal is behind, the handler's pipe is not read and the handler waits on its own writes.
  std::fflush(stream);
  std::string_view rest(text);
  while (!rest.empty()) {
    const ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n >= 0) {
      rest.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd ready{fd, POLLOUT, 0};
      ::poll(&ready, 1, -1);
      continue;
    }
    // EIO: the terminal hung up (its window closed); EPIPE: whoever read the pipe is gone.
    // Nobody sees what is written from now on: say so once, write nothing more.
    if ((errno == EIO || errno == EPIPE || errno == ENXIO) && stream == out_) {
      gone_ = true;
      if (on_gone_) on_gone_();
    }
    return;
  }
}

}  // namespace funcie::console
