#include "redis/url.hpp"

#include <limits>

// Messages never repeat any part of the input: a password typed without its '@' or with an
// unencoded '/' could otherwise end up in a log line through the "host" or "port" it became.

namespace funcie::redis {
namespace {

constexpr std::string_view redis_scheme = "redis://";
constexpr std::string_view rediss_scheme = "rediss://";

[[noreturn]] void fail(std::string_view what) {
  throw url_error("Redis URL: " + std::string(what) +
                  " (expected redis[s]://[[user]:password@]host[:port][,host[:port]...][/db])");
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (lower(text[i]) != prefix[i]) return false;
  }
  return true;
}

// The length of the scheme including "://", or 0 when it is neither redis:// nor rediss://.
std::size_t scheme_length(std::string_view url, bool& tls) {
  if (starts_with_nocase(url, rediss_scheme)) {
    tls = true;
    return rediss_scheme.size();
  }
  if (starts_with_nocase(url, redis_scheme)) {
    tls = false;
    return redis_scheme.size();
  }
  return 0;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view text, std::string_view part) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (text.size() - i < 3) fail("bad percent-encoding in the " + std::string(part));
    int hi = hex_value(text[i + 1]);
    int lo = hex_value(text[i + 2]);
    if (hi < 0 || lo < 0) fail("bad percent-encoding in the " + std::string(part));
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

bool all_digits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Digits only, no sign; -1 when the value exceeds `max`.
long long parse_number(std::string_view digits, long long max) {
  long long value = 0;
  for (char c : digits) {
    value = value * 10 + (c - '0');
    if (value > max) return -1;
  }
  return value;
}

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

bool is_ipv6_char(char c) {
  return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
         c == '.';
}

// The authority's user info ends at its last '@': a password may hold '@', '/', '?' or '#'
// unencoded and still parse (the db path never contains '@').
std::size_t userinfo_end(std::string_view rest) {
  return rest.rfind('@');
}

// One "host[:port]" (IPv6 in brackets) of the authority.
void parse_host_port(std::string_view authority, std::string& host_out, std::uint16_t& port_out) {
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) fail("unterminated IPv6 address in the host");
    std::string_view address = authority.substr(1, close - 1);
    if (address.empty()) fail("missing host");
    for (char c : address) {
      if (!is_ipv6_char(c)) fail("invalid IPv6 address in the host");
    }
    if (address.find(':') == std::string_view::npos) fail("invalid IPv6 address in the host");
    host_out = std::string(address);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') fail("unexpected characters after the IPv6 address");
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    std::size_t colon = authority.find(':');
    std::string_view host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
      if (port_text.find(':') != std::string_view::npos) {
        fail("an IPv6 host must be written in brackets, as [::1]");
      }
    }
    if (host.empty()) fail("missing host");
    for (char c : host) {
      if (c == '?' || c == '#') fail("query strings and fragments are not supported");
      if (!is_host_char(c)) fail("the host contains a character that is not allowed");
    }
    host_out = std::string(host);
  }

  if (has_port) {
    if (!all_digits(port_text)) {
      if (port_text.find_first_of("?#") != std::string_view::npos) {
        fail("query strings and fragments are not supported");
      }
      fail("the port must be a number from 1 to 65535");
    }
    long long port = parse_number(port_text, std::numeric_limits<std::uint16_t>::max());
    if (port < 1) fail("the port must be a number from 1 to 65535");
    port_out = static_cast<std::uint16_t>(port);
  }
}

}  // namespace

endpoint parse_url(std::string_view url) {
  endpoint result;
  std::size_t skip = scheme_length(url, result.tls);
  if (skip == 0) fail("unknown scheme");
  std::string_view rest = url.substr(skip);

  if (std::size_t at = userinfo_end(rest); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (!userinfo.empty()) {
      std::size_t colon = userinfo.find(':');
      if (colon == std::string_view::npos) fail("the user info before '@' must be [user]:password");
      result.user = percent_decode(userinfo.substr(0, colon), "user");
      result.password = percent_decode(userinfo.substr(colon + 1), "password");
    }
  }

  std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path =
      slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);

  // "h1:p1,h2:p2": the seed nodes of a cluster.
  if (authority.empty()) fail("missing host");
  bool first = true;
  while (true) {
    const std::size_t comma = authority.find(',');
    const std::string_view one = authority.substr(0, comma);
    if (one.empty()) {
      fail("an empty host in the list of hosts (write host:port,host:port)");
    }
    if (first) {
      parse_host_port(one, result.host, result.port);
      first = false;
    } else {
      seed more;
      parse_host_port(one, more.host, more.port);
      result.more_seeds.push_back(std::move(more));
    }
    if (comma == std::string_view::npos) break;
    authority = authority.substr(comma + 1);
  }

  if (!path.empty()) {
    if (path.find_first_of("?#") != std::string_view::npos) {
      fail("query strings and fragments are not supported");
    }
    if (!all_digits(path)) fail("the db must be a non-negative integer");
    long long db = parse_number(path, std::numeric_limits<int>::max());
    if (db < 0) fail("the db is too large");
    result.db = static_cast<int>(db);
  }
  return result;
}

std::string redact(std::string_view url) {
  std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return "(not a URL)";
  std::size_t authority = scheme_end + 3;
  std::size_t at = userinfo_end(url.substr(authority));
  if (at == std::string_view::npos) return std::string(url);
  std::string_view userinfo = url.substr(authority, at);
  if (userinfo.empty()) return std::string(url);
  std::size_t colon = userinfo.find(':');
  std::string out(url.substr(0, authority));
  if (colon == std::string_view::npos) {
    // "scheme://secret@host": whatever it is, it may be a password.
    out += "****";
  } else {
    out += userinfo.substr(0, colon + 1);
    if (colon + 1 < userinfo.size()) out += "****";
  }
  out += url.substr(authority + at);
  return out;
}

std::string describe(const endpoint& e) {
  std::string out;
  if (e.host.find(':') != std::string::npos) {
    out = "[" + e.host + "]";
  } else {
    out = e.host;
  }
  out += ':';
  out += std::to_string(e.port);
  return out;
}

}  // namespace funcie::redis
