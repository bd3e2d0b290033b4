// What `funcie connect` prints about an invocation, from bytes that come from outside: the
// event (guess_trigger, pretty_payload), the handler's response (response_status,
// pretty_payload) and error (summarize_error, error_trace), the lines cut and wrapped
// to a width (shorten_middle, wrap_words), the handler's output (strip_escape_sequences,
// printable). None may crash, throw, or let through anything a terminal would obey.
// guess_trigger and response_status keep only what they read of the JSON: they must answer
// exactly as from the whole parsed document (console/trigger_reference.hpp).
#include "console/trigger.hpp"

#include "console/trigger_reference.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace con = funcie::console;

namespace {

[[noreturn]] void fail(const char* what, std::string_view text) {
  std::fprintf(stderr, "invariant broken: %s: %.*s\n", what, static_cast<int>(text.size()),
               text.data());
  std::abort();
}

/// Valid UTF-8 without C0 controls (but `allowed`), DEL, C1 controls or bidi overrides.
void check_printable(const char* what, std::string_view text, std::string_view allowed = {}) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 || c == 0x7F) && allowed.find(text[i]) == std::string_view::npos) {
      fail(what, text);
    }
  }
  // Round trip through printable() with everything kept that `allowed` allows: the text must
  // already be printable, so it comes back unchanged.
  const con::keep keep = allowed.find('\n') != std::string_view::npos ? con::keep::tabs_and_newlines
                         : allowed.find('\t') != std::string_view::npos ? con::keep::tabs
                                                                        : con::keep::nothing;
  if (con::printable(text, keep) != text) fail(what, text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  const con::trigger t = con::guess_trigger(bytes);
  if (t.source.empty()) fail("no trigger source", bytes);
  check_printable("trigger source", t.source);
  check_printable("trigger detail", t.detail);
  if (con::display_width(t.detail) > con::max_detail_chars) fail("detail too long", t.detail);
  if (t != con::reference::guess_trigger(bytes))
    fail("trigger differs from the whole parse", bytes);

  const int status = con::response_status(bytes);
  if (status != 0 && (status < 100 || status > 599)) fail("status out of range", bytes);
  if (status != con::reference::response_status(bytes))
    fail("status differs from the whole parse", bytes);

  const con::error_summary e = con::summarize_error(bytes);
  check_printable("error type", e.type);
  check_printable("error message", e.message);
  if (con::display_width(e.type) > 100 || con::display_width(e.message) > 100) {
    fail("error summary too long", e.message);
  }

  const auto trace = con::error_trace(bytes, 12);
  if (trace.size() > 12) fail("error trace not bounded", bytes);
  for (const auto& frame : trace) check_printable("error trace", frame);

  const std::string shown = con::printable(bytes);
  for (const std::size_t width : {std::size_t{1}, std::size_t{8}, std::size_t{36}}) {
    if (con::display_width(con::shorten_middle(shown, width)) > width) {
      fail("shorten_middle too wide", shown);
    }
    for (const auto& part : con::wrap_words(shown, width)) {
      if (con::display_width(part) > std::max<std::size_t>(width, 8)) fail("wrap too wide", part);
    }
  }

  for (const std::size_t max_bytes : {std::size_t{4096}, std::size_t{64}, std::size_t{0}}) {
    const std::string pretty = con::pretty_payload(bytes, max_bytes);
    check_printable("pretty payload", pretty, "\n\t");
    // Cut to the limit plus the final "\n… (N more bytes)" line.
    if (pretty.size() > max_bytes + 48) fail("pretty payload not cut", pretty);
  }

  const std::string line = con::printable(con::strip_escape_sequences(bytes), con::keep::tabs);
  check_printable("handler output", line, "\t");
  check_printable("one line", con::printable(bytes));
  check_printable("block", con::printable(bytes, con::keep::tabs_and_newlines), "\n\t");
  if (con::display_width(con::shorten(line, 10)) > 10) fail("shorten", line);
  return 0;
}
