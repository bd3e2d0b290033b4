// The console server's first look at a request (src/ui/request.hpp), on any bytes: the
// target splits without throwing, valid_utf8 gives valid UTF-8 that it leaves unchanged, the
// cross-site check accepts only the page's own Host and Origin, and a fixture name never
// leaves events/.
#include "ui/request.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace ui = funcie::ui;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  const auto t = ui::split_target(bytes);
  if (bytes.find('?') == std::string_view::npos && !t.query.empty()) fail("a query without '?'");

  const auto text = ui::valid_utf8(bytes);
  if (ui::valid_utf8(text) != text) fail("valid_utf8 changed valid UTF-8");
  if (text.size() < bytes.size()) fail("valid_utf8 dropped bytes");

  // The first line as Host, the rest as Origin.
  const auto newline = bytes.find('\n');
  const auto host = bytes.substr(0, newline);
  const auto origin =
      newline == std::string_view::npos ? std::string_view() : bytes.substr(newline + 1);
  if (ui::refuse_cross_site(host, origin, "", 4000).empty()) {
    if (host != "127.0.0.1:4000" && host != "localhost:4000") fail("a foreign Host accepted");
    if (!origin.empty() && origin != "http://127.0.0.1:4000" && origin != "http://localhost:4000") {
      fail("a foreign Origin accepted");
    }
  }

  if (ui::is_valid_fixture_name(bytes) &&
      (bytes.find('/') != std::string_view::npos || bytes.starts_with("."))) {
    fail("a fixture name that leaves events/");
  }
  if (ui::same_secret(bytes, "0123456789abcdef0123456789abcdef") !=
      (bytes == "0123456789abcdef0123456789abcdef")) {
    fail("same_secret disagrees with ==");
  }
  return 0;
}
