#pragma once

// What a person sees from `funcie connect` (docs/local.md, "Output"): one line per
// invocation, the handlers' own output prefixed "[app#k]", notices, and with --verbose the
// event and the response under the line.
//
// Every line (or block) is built whole and written with one fwrite and a flush, so lines
// from different sources never interleave mid-line. Everything that comes from outside (the
// event, the handler's output and errors, function names) goes through printable() first:
// nothing printed here can send a terminal an escape sequence we did not write ourselves.

#include "console/trigger.hpp"

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace funcie::console {

/// Whether to colour what is written to `stream`: FORCE_COLOR set to anything but "" "0"
/// "false" forces it on, FORCE_COLOR "0" or "false" forces it off; otherwise only when
/// `stream` is a terminal, NO_COLOR is unset or empty and TERM is not "dumb".
bool wants_colour(std::FILE* stream);

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
  std::string note;           ///< appended in parentheses: "r or save to run again, 41.2 s left"
};

class console {
 public:
  /// The time of day at the start of each line; tests pass a fixed one.
  using clock = std::function<std::string()>;

  console(std::FILE* out, bool colour, clock time_of_day = local_time_of_day);

  /// "12:04:31.207 orders 3f2a9c1e API Gateway v2 GET /orders/7         38ms ok 200":
  /// time (dim), function (padded), request id, trigger (padded to 33 columns), duration
  /// (right-aligned in 6), outcome (ok green, error and timeout red, held yellow), HTTP
  /// status (4xx yellow, 5xx red), the error ("Type: message"; held: the type), the note.
  void invocation(const invocation_line& line);

  /// A handler's own output: "[app#1] text". `prefix` is "app#1" (or "[app#1]"); the line
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

 private:
  std::string paint(std::string_view code, std::string_view text) const;
  std::string start_of_line();
  std::string function_column(std::string_view function);
  void notice(std::string_view function, std::string_view mark, std::string_view code,
              std::string_view text);
  void write(const std::string& text);

  std::FILE* out_;
  bool colour_;
  clock clock_;
  std::size_t function_width_ = 0;
};

}  // namespace funcie::console
