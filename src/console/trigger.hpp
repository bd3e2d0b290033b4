#pragma once

// What `funcie connect` prints about an invocation, worked out from bytes that come from
// outside (the event, the handler's response or error, the handler's own output): the
// trigger guessed from the event's shape, the HTTP status, the error summary, and the text
// made safe to print. Pure: no I/O, never throws on any bytes (the fuzzers link it alone).
//
// Everything returned here is safe to write to a terminal: no control characters (ESC, CR,
// ...), no C1 controls, no bidirectional overrides, valid UTF-8 (see printable()).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::console {

/// Where an invocation's event came from, guessed from its JSON shape.
struct trigger {
  /// "API Gateway v1", "API Gateway v2", "API Gateway WebSocket", "Function URL", "ALB",
  /// "S3", "SQS", "SNS", "EventBridge", "DynamoDB", "Kinesis", "CloudWatch Logs",
  /// "Step Functions", "direct".
  std::string source;
  /// Short and printable: "GET /orders/7", "3 records", "ObjectCreated:Put my-bucket/a.txt",
  /// "OrderPlaced from com.shop", "2 INSERT, 1 MODIFY", "string", "42 bytes"; "" when there
  /// is nothing useful to say. At most max_detail_chars characters (cut with "…").
  std::string detail;

  friend bool operator==(const trigger&, const trigger&) = default;
};

/// The longest trigger detail, in characters (code points), "…" included.
inline constexpr std::size_t max_detail_chars = 60;

/// The trigger of `event` (the invocation's payload). Any bytes: what is not JSON is
/// "direct" with detail "N bytes" ("empty" for no bytes); a JSON value that is not an
/// object is "direct" with its type ("string", "number", "array of 3", ...).
trigger guess_trigger(std::string_view event) noexcept;

/// The HTTP status of an API Gateway / function URL / ALB style response body
/// ({"statusCode": 200, ...}; an integer or a string of digits, 100 to 599), or 0.
int response_status(std::string_view body) noexcept;

/// The error type and message of a Lambda error body {"errorType":..,"errorMessage":..}:
/// printable, one line each (the message's first non-blank line), cut to about 100
/// characters. Both empty when `body` is not one (neither field is a string).
struct error_summary {
  std::string type;
  std::string message;

  friend bool operator==(const error_summary&, const error_summary&) = default;
};
error_summary summarize_error(std::string_view body) noexcept;

/// The stack trace of a Runtime API error body ("trace" of Node's runtime client,
/// "stackTrace" of Python's and Java's: arrays of strings, or one string), one printable
/// line each, blank lines and a first line that only repeats "errorType: errorMessage"
/// left out. At most `max_lines`; empty when there is none.
std::vector<std::string> error_trace(std::string_view body, std::size_t max_lines = 12) noexcept;

/// For --verbose: pretty-printed JSON (2-space indent) when `payload` is JSON; else the
/// text as is when it is valid UTF-8 without control characters other than \n and \t
/// (CRLF line ends become \n); else "<N bytes of binary data>". Longer than `max_bytes`:
/// cut (at a line end when one is in the last half, never inside a character) with a final
/// line "… (N more bytes)". No trailing newline. Printable with newlines and tabs kept:
/// strings in JSON escape control characters, bidi overrides in text are escaped.
std::string pretty_payload(std::string_view payload, std::size_t max_bytes = 4096);

/// How much printable() keeps of the whitespace controls.
enum class keep {
  nothing,           ///< one line: \t, \n, \r are escaped too
  tabs,              ///< a line of text: tabs kept, \n and \r escaped
  tabs_and_newlines  ///< a block of text: tabs and \n kept, \r escaped
};

/// `text` made safe to write to a terminal: C0 controls and DEL become "\x1b" style
/// escapes (\t, \n, \r as "\t", "\n", "\r" unless kept), C1 controls, bidirectional
/// embeddings/overrides/isolates and U+2028/U+2029 become "\u009b" style escapes, bytes that
/// are not valid UTF-8 become "\xff" style escapes. Everything else is copied as is.
std::string printable(std::string_view text, keep what = keep::nothing);

/// `text` without the terminal escape sequences programs print for colour, cursor moves,
/// titles and links (ESC [ ... final, ESC ] ... BEL or ESC \, ESC P/X/^/_ ... ESC \, and
/// two- or three-byte ESC sequences). A lone or malformed ESC is left for printable().
std::string strip_escape_sequences(std::string_view text);

/// The number of characters (code points; a byte that is not valid UTF-8 counts as one).
std::size_t display_width(std::string_view text) noexcept;

/// `text` cut to at most `max_chars` characters, the last being "…" when cut. Never cuts
/// inside a character.
std::string shorten(std::string_view text, std::size_t max_chars);

/// `text` cut in the middle to at most `max_chars` characters ("/orders/…/items/7"): the
/// end of a path says most. Never cuts inside a character.
std::string shorten_middle(std::string_view text, std::size_t max_chars);

/// `text` (one line, printable) broken into lines of at most `width` characters at spaces;
/// a word longer than `width` is cut in its middle (shorten_middle). Never empty.
std::vector<std::string> wrap_words(std::string_view text, std::size_t width);

}  // namespace funcie::console
