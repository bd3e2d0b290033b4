#include "aws/sigv4.hpp"

#include "aws/credentials.hpp"

#include "crypto/crypto.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <map>
#include <stdexcept>

// The canonical forms follow AWS's SigV4 specification and, where it is silent, what
// @smithy/signature-v4 (the JavaScript SDK v3) does with uriEscapePath on (every service
// but S3): tests/integration/sigv4_smithy.test.mjs compares the two on random requests.

namespace funcie::aws {
namespace {

constexpr std::string_view algorithm = "AWS4-HMAC-SHA256";
constexpr char hex_digits[] = "0123456789abcdef";

using crypto::hmac_sha256;
using crypto::to_hex;
using digest = crypto::sha256_digest;

std::string_view as_text(const digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Undoes %XX escapes (a '%' not followed by two hex digits stays as it is). '+' is kept:
// the query of an AWS request is not form-encoded.
std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
        hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

// Drops empty, "." and ".." segments as the SDKs do for every service but S3, keeping a
// trailing '/'; then encodes each segment.
std::string canonical_uri(std::string_view path) {
  std::vector<std::string_view> segments;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(start, end - start);
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!segment.empty() && segment != ".") {
      segments.push_back(segment);
    }
    start = end + 1;
  }
  std::string out = "/";  // a request target is absolute: "" and "a/b" are "/" and "/a/b"
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) out += '/';
    out += uri_encode(segments[i], false);
  }
  if (!segments.empty() && path.ends_with('/')) out += '/';
  return out;
}

// Parameters decoded then encoded again (so "a%20b" and "a b" sign alike), sorted by
// encoded name then encoded value; a name without '=' has an empty value.
std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  std::size_t start = 0;
  while (start < query.size()) {
    std::size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view param = query.substr(start, end - start);
    start = end + 1;
    if (param.empty()) continue;
    const std::size_t eq = param.find('=');
    std::string_view name = param.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? "" : param.substr(eq + 1);
    params.emplace_back(uri_encode(percent_decode(name), false),
                        uri_encode(percent_decode(value), false));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

// Line breaks become spaces, runs of spaces and tabs one space, and the ends are trimmed.
std::string canonical_header_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    const bool blank = c == ' ' || c == '\t' || c == '\r' || c == '\n';
    if (!blank) {
      out += c;
    } else if (!out.empty() && out.back() != ' ') {
      out += ' ';
    }
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Names the signer sets itself; a caller's copy would sign the header twice.
bool set_by_signer(std::string_view lower_name) {
  return lower_name == "host" || lower_name == "x-amz-date" ||
         lower_name == "x-amz-security-token" || lower_name == "authorization";
}

std::string format_amz_date(std::chrono::system_clock::time_point time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y%m%dT%H%M%SZ", &utc);
  return buffer;
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  const auto out = crypto::sha256(bytes);
  return to_hex(out.data(), out.size());
}

std::string uri_encode(std::string_view text, bool keep_slash) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += static_cast<char>(std::toupper(hex_digits[c >> 4]));
      out += static_cast<char>(std::toupper(hex_digits[c & 0x0f]));
    }
  }
  return out;
}

signature sign(const signing_input& input, const credentials& creds) {
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    throw std::invalid_argument("SigV4: the access key id and the secret key must be set");
  }
  if (input.region.empty()) throw std::invalid_argument("SigV4: the region must be set");
  if (input.service.empty()) throw std::invalid_argument("SigV4: the service must be set");

  signature out;
  out.amz_date = format_amz_date(input.time);
  out.security_token = creds.session_token;
  const std::string date = out.amz_date.substr(0, 8);

  // Sorted by lowercase name; values of one name joined with ',' in the order given.
  std::map<std::string, std::string> headers;
  headers["host"] = canonical_header_value(input.host);
  headers["x-amz-date"] = out.amz_date;
  if (!creds.session_token.empty()) {
    headers["x-amz-security-token"] = canonical_header_value(creds.session_token);
  }
  for (const auto& [name, value] : input.headers) {
    std::string key = lowercase(name);
    if (set_by_signer(key)) continue;
    auto [it, inserted] = headers.try_emplace(std::move(key), canonical_header_value(value));
    if (!inserted) it->second += "," + canonical_header_value(value);
  }
  std::string canonical_headers;
  std::string signed_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ":" + value + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += name;
  }

  out.canonical_request = input.method + "\n" + canonical_uri(input.path) + "\n" +
                          canonical_query(input.query) + "\n" + canonical_headers + "\n" +
                          signed_headers + "\n" + sha256_hex(input.payload);

  const std::string scope = date + "/" + input.region + "/" + input.service + "/aws4_request";
  out.string_to_sign = std::string(algorithm) + "\n" + out.amz_date + "\n" + scope + "\n" +
                       sha256_hex(out.canonical_request);

  digest key = hmac_sha256("AWS4" + creds.secret_access_key, date);
  key = hmac_sha256(as_text(key), input.region);
  key = hmac_sha256(as_text(key), input.service);
  key = hmac_sha256(as_text(key), "aws4_request");
  const digest mac = hmac_sha256(as_text(key), out.string_to_sign);

  out.authorization = std::string(algorithm) + " Credential=" + creds.access_key_id + "/" + scope +
                      ", SignedHeaders=" + signed_headers +
                      ", Signature=" + to_hex(mac.data(), mac.size());
  return out;
}

}  // namespace funcie::aws
