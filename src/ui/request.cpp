#include "ui/request.hpp"

#include <charconv>

namespace funcie::ui {

namespace {

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
      continue;
    }
    if (s[i] == '%' && i + 2 < s.size()) {
      unsigned v = 0;
      const auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace

target split_target(std::string_view t) {
  target out;
  const auto q = t.find('?');
  out.path = percent_decode(t.substr(0, q));
  if (q == std::string_view::npos) return out;
  std::string_view rest = t.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const auto pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    out.query[percent_decode(pair.substr(0, eq))] =
        eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return out;
}

std::string refuse_cross_site(std::string_view host, std::string_view origin,
                              std::string_view fetch_site, std::uint16_t port) {
  const std::string with_port = ":" + std::to_string(port);
  const auto own_host = [&](std::string_view h) {
    return h == "127.0.0.1" + with_port || h == "localhost" + with_port;
  };
  if (!own_host(host)) {
    return "Host is not this server's (127.0.0.1 or localhost with its port): refused";
  }
  if (!origin.empty() && origin != "http://127.0.0.1" + with_port &&
      origin != "http://localhost" + with_port) {
    return "a request from another origin: refused";
  }
  if (fetch_site == "cross-site" || fetch_site == "same-site") {
    return "a cross-site request: refused";
  }
  return {};
}

bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

bool is_valid_fixture_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '.') return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80           ? 1
                          : (c >> 5) == 0x6  ? 2
                          : (c >> 4) == 0xE  ? 3
                          : (c >> 3) == 0x1E ? 4
                                             : 0;
    bool ok = n != 0 && i + n <= s.size();
    for (std::size_t k = 1; ok && k < n; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    }
    if (ok && n == 2 && c < 0xC2) ok = false;  // overlong
    if (ok && n >= 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xE0 && c1 < 0xA0) ||               // overlong
          (c == 0xED && c1 >= 0xA0) ||              // surrogates
          (c == 0xF0 && c1 < 0x90) ||               // overlong
          (c == 0xF4 && c1 >= 0x90) || c > 0xF4) {  // beyond U+10FFFF
        ok = false;
      }
    }
    if (ok) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace funcie::ui
