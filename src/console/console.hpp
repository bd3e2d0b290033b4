#pragma once

// What a person sees from `funcie connect` (docs/local.md, "Output"): the start block, one
// line per invocation (its trace and notes under it), the handlers' own output prefixed
// "[app#k 8b01d77a]", notices, REPORT figures, with --verbose the event and the response,
// and on a terminal a status line kept at the bottom (a held request's countdown).
//
// Every line (or block) is built whole and written whole, so lines from different sources
// never interleave mid-line and none is ever dropped: straight to the descriptor, or, under
// funcie connect, through an output_queue that never blocks the event loop
// (write_through()). Everything that comes from outside (the event, the handler's output
// and errors, function names) goes through printable() first: nothing printed here can send
// a terminal an escape sequence we did not write ourselves.

#include "console/output_queue.hpp"
#include "console/trigger.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::console {

/// Whether to colour what is written to `stream`: FORCE_COLOR set to anything but "" "0"
/// "false" forces it on, FORCE_COLOR "0" or "false" forces it off; otherwise only when
/// `stream` is a terminal, NO_COLOR is unset or empty and TERM is not "dumb".
bool wants_colour(std::FILE* stream);

/// Whether `stream` takes the control sequences of a live status line: a terminal, TERM
/// set and not "dumb". NO_COLOR does not matter here (it is about colours).
bool wants_live(std::FILE* stream);

/// The local time of day now, "HH:MM:SS.mmm".
std::string local_time_of_day();

enum class outcome { ok, error, held, timeout };

struct invocation_line {
  std::string function;    ///< shown only when not empty (several functions served)
  std::string request_id;  ///< the Lambda request id; its first 8 characters are shown
  trigger what;            ///< guess_trigger(event)
  std::chrono::milliseconds took{0};
  outcome result = outcome::ok;
  int status = 0;             ///< HTTP status for API-Gateway-like responses, 0 = none
  std::string error_type;     ///< for error/held/timeout
  std::string error_message;  ///< its first line is shown, cut to 100 characters
  /// The error's stack trace (error_trace()), one line each under the line.
  std::vector<std::string> trace;
  std::string note;  ///< under the line: "save a watched file or press r to run it again"
};

/// Lambda's REPORT figures of one invocation (--report).
struct report_line {
  std::string request_id;
  std::chrono::microseconds duration{0};
  unsigned memory_mb = 128;                    ///< the function's memory size
  std::optional<unsigned> max_memory_used_mb;  ///< the runtime's peak; none when unknown
  std::chrono::microseconds init{0};           ///< Init Duration; zero: a warm start
};

/// funcie connect's own lines are at most this wide, or as wide as a narrower terminal:
/// nothing of ours wraps. A handler's own lines are its own and are not cut.
inline constexpr std::size_t max_columns = 100;
/// On a live terminal narrower than max_columns, its width (but never less than this).
inline constexpr std::size_t min_columns = 60;

class console {
 public:
  /// The time of day at the start of each line; tests pass a fixed one.
  using clock = std::function<std::string()>;

  /// `live`: `out` is a terminal that takes control sequences, so the status line (a held
  /// invocation's countdown) is kept at the bottom and updated in place, and lines are laid
  /// out for max_columns (or the terminal's width when narrower). Otherwise the status line
  /// is never written and nothing is wrapped: every event is its own line.
  console(std::FILE* out, bool colour, clock time_of_day = local_time_of_day, bool live = false);
  ~console();
  console(const console&) = delete;
  console& operator=(const console&) = delete;

  /// "12:04:31.207 orders 3f2a9c1e API Gateway v2 GET /orders/7       38ms ok 200", at most
  /// max_columns wide: time (dim), function (padded, at most 16), request id, trigger
  /// (padded to 30, cut in the middle beyond 36), duration (right-aligned in 6), outcome (ok
  /// green, error and timeout red, held yellow), HTTP status (4xx yellow, 5xx red), the
  /// error ("Type: message", cut to what is left of the line). Under it, indented: the
  /// stack trace and the note, wrapped at spaces.
  void invocation(const invocation_line& line);

  /// Under an invocation's line, as Lambda prints it: "REPORT 8b01d77a  Duration: 38.12 ms
  /// Billed Duration: 39 ms  Memory Size: 128 MB  Max Memory Used: 41 MB  Init Duration:
  /// 180.30 ms" (billed at 1 ms granularity; Init Duration only after a cold start), wrapped
  /// between figures.
  void report(const report_line& figures);

  /// A line of the start block: "  watch    src, index.mjs"; `warning` paints it yellow.
  void field(std::string_view name, std::string_view text, bool warning = false);

  /// The live status line (live consoles only; "" removes it): kept below everything else,
  /// redrawn in place. Cut to fit one line.
  void status(std::string_view text);

  /// `text` written whole to `stream` (stdout, say), above the status line when both are
  /// the same terminal.
  void print_to(std::FILE* stream, std::string_view text);

  /// Whether status() shows anything (a live console).
  bool live() const { return live_; }

  /// A handler's own output: "[app#1 8b01d77a] text". `prefix` is "app#1 8b01d77a" (or in
  /// brackets; the environment and the request id it runs, made by served_function); the line
  /// may end with "\n" or "\r\n", several lines become several prefixed lines. Escape
  /// sequences (the handler's colours) are removed, other control characters escaped. The
  /// prefix is dim, yellowish for stderr.
  void handler_output(std::string_view prefix, std::string_view line, bool from_stderr);

  /// A notice (reload, held, session events): "12:04:31.207 orders • text".
  void info(std::string_view function, std::string_view text);
  /// A warning (deadline near, credentials): "12:04:31.207 orders ▲ text", in yellow.
  void warn(std::string_view function, std::string_view text);

  /// --verbose: a titled block ("event", "response") indented under the line; `pretty` is
  /// pretty_payload()'s text (it is made printable again here, newlines and tabs kept).
  void payload_block(std::string_view title, std::string_view pretty);

  /// Pads function names to at least `width` characters (the longest name served, at most
  /// 24), so that columns line up from the first line. Names seen widen it too.
  void align_functions(std::size_t width);

  /// From now on, what is written to stdout and stderr goes through `queue` (which must
  /// outlive the console): the event loop never waits for the terminal. Without it, each
  /// write waits until the descriptor took all of it.
  void write_through(output_queue& queue);

  /// Completes when the output is not behind: at once without a queue, else when the queue
  /// is not full. Whoever produces the bulk of the output (a runtime's pipe) waits for it
  /// before reading more.
  boost::asio::awaitable<void> room();
  /// Whether the output is behind (the queue is full).
  bool behind() const { return queue_ != nullptr && queue_->full(); }
  /// Completes when everything written so far has reached the descriptors.
  boost::asio::awaitable<void> drained();

  /// Called once when the output is gone for good (a terminal that hung up, a pipe nobody
  /// reads): funcie connect leaves then, as it does on Ctrl-C. Nothing is written after.
  void on_output_gone(std::function<void()> gone);

 private:
  std::string paint(std::string_view code, std::string_view text) const;
  /// The width lines are laid out for: max_columns, or a narrower live terminal's.
  std::size_t columns() const;
  std::string start_of_line();
  std::string function_column(std::string_view function);
  void notice(std::string_view function, std::string_view mark, std::string_view code,
              std::string_view text);
  void write(std::string text);
  void write_all(std::FILE* stream, std::string_view text);

  std::FILE* out_;
  output_queue* queue_ = nullptr;
  bool colour_;
  clock clock_;
  std::size_t function_width_ = 0;
  std::function<void()> on_gone_;
  bool gone_ = false;
  bool live_ = false;
  std::string status_;         // what the status line shows ("" none)
  bool status_drawn_ = false;  // it is on the screen, on the cursor's line
};

}  // namespace funcie::console
