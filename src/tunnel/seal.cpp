#include "tunnel/seal.hpp"

#include "util/base64.hpp"

#include "crypto/crypto.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <optional>

namespace funcie::tunnel {

namespace {

constexpr std::string_view magic = "funcie/1 ";
constexpr std::size_t nonce_bytes = 12;
constexpr std::size_t tag_bytes = 16;
constexpr std::size_t key_id_digits = 16;
// The longest first line: "funcie/1 sealed64 " + key id + "\n".
constexpr std::size_t max_first_line = 36;
// Plaintext encrypted per step when the output goes to base64 (a multiple of 3).
constexpr std::size_t text_chunk = 3 * 16 * 1024;

constexpr std::string_view hkdf_salt = "funcie/1";
constexpr std::string_view key_info = "funcie tunnel key";
constexpr std::string_view key_id_info = "funcie key id";

enum class frame_kind { sealed, signed_, sealed64, signed64 };

struct kind_name {
  frame_kind kind;
  std::string_view name;
};
// "sealed64" before "sealed": names are matched up to a delimiter anyway.
constexpr kind_name kind_names[] = {{frame_kind::sealed64, "sealed64"},
                                    {frame_kind::signed64, "signed64"},
                                    {frame_kind::sealed, "sealed"},
                                    {frame_kind::signed_, "signed"}};

bool encrypted(frame_kind k) {
  return k == frame_kind::sealed || k == frame_kind::sealed64;
}
bool text(frame_kind k) {
  return k == frame_kind::sealed64 || k == frame_kind::signed64;
}
std::string_view name_of(frame_kind k) {
  for (const auto& n : kind_names) {
    if (n.kind == k) return n.name;
  }
  return "?";
}

// The kind named right after "funcie/1 ", delimited by ' ', '\n' or the end.
std::optional<frame_kind> kind_of(std::string_view frame) {
  if (!frame.starts_with(magic)) return std::nullopt;
  const auto rest = frame.substr(magic.size());
  for (const auto& n : kind_names) {
    if (!rest.starts_with(n.name)) continue;
    if (rest.size() == n.name.size() || rest[n.name.size()] == ' ' || rest[n.name.size()] == '\n') {
      return n.kind;
    }
  }
  return std::nullopt;
}

bool is_key_id(std::string_view s) {
  return s.size() == key_id_digits && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// A sealed frame's first line, parsed: "funcie/1 <kind> <key id>\n".
struct first_line {
  frame_kind kind;
  std::string_view key_id;
  std::string_view line;  // with its "\n": the additional authenticated data
  std::string_view body;  // what follows
};

std::optional<first_line> parse_first_line(std::string_view frame) {
  const auto kind = kind_of(frame);
  if (!kind) return std::nullopt;
  const auto end = frame.substr(0, max_first_line + 1).find('\n');
  if (end == std::string_view::npos) return std::nullopt;
  const std::size_t id_at = magic.size() + name_of(*kind).size() + 1;
  if (id_at > end || frame[id_at - 1] != ' ') return std::nullopt;
  const auto id = frame.substr(id_at, end - id_at);
  if (!is_key_id(id)) return std::nullopt;
  return first_line{*kind, id, frame.substr(0, end + 1), frame.substr(end + 1)};
}

std::string make_first_line(frame_kind kind, std::string_view key_id) {
  std::string line;
  line.reserve(max_first_line);
  line.append(magic);
  line.append(name_of(kind));
  line.push_back(' ');
  line.append(key_id);
  line.push_back('\n');
  return line;
}

std::string_view trim(std::string_view s) {
  constexpr std::string_view space = " \t\r\n\v\f";
  const auto first = s.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// --- crypto (src/crypto) ----------------------------------------------------------------

void hkdf(std::string_view secret, std::string_view info, unsigned char* out, std::size_t size) {
  crypto::hkdf_sha256(secret, hkdf_salt, info, out, size);
}

// One AES-256-GCM operation: sealing (encrypt) or opening. Every failure is an `Error`. The
// additional data is the first line, and for a signed frame (GMAC, nothing encrypted) the
// plaintext after it: mbedTLS takes it at once, so a signed frame's body is copied once.
template <typename Error>
class gcm {
 public:
  gcm(const std::array<unsigned char, 32>& key, const unsigned char* nonce, bool encrypt,
      std::string_view line, std::optional<std::string_view> signed_body = std::nullopt)
      : encrypt_(encrypt) {
    try {
      if (signed_body) {
        std::string aad;
        aad.reserve(line.size() + signed_body->size());
        aad.append(line).append(*signed_body);
        c_.emplace(key, nonce, encrypt, aad);
      } else {
        c_.emplace(key, nonce, encrypt, line);
      }
    } catch (const crypto::crypto_error&) {
      fail();
    }
  }

  /// Encrypts or decrypts `size` bytes from `in` to `out` (the same, or not overlapping);
  /// whole 16-byte blocks on every call but the last.
  void update(const unsigned char* in, unsigned char* out, std::size_t size) {
    try {
      c_->update(in, out, size);
    } catch (const crypto::crypto_error&) {
      fail();
    }
  }

  /// Sealing: ends and writes the tag.
  void seal_final(unsigned char* tag) {
    try {
      c_->seal_final(tag);
    } catch (const crypto::crypto_error&) {
      fail();
    }
  }

  /// Opening: true when `tag` is right (compared in constant time).
  bool open_final(const unsigned char* tag) {
    try {
      return c_->open_final(tag);
    } catch (const crypto::crypto_error&) {
      fail();
    }
  }

 private:
  [[noreturn]] void fail() const {
    throw Error(encrypt_ ? "sealing a message failed inside mbedTLS (AES-256-GCM)"
                         : "opening a message failed inside mbedTLS (AES-256-GCM)");
  }
  std::optional<crypto::aes_256_gcm> c_;
  bool encrypt_;
};

std::array<unsigned char, nonce_bytes> new_nonce() {
  std::array<unsigned char, nonce_bytes> nonce{};
  try {
    crypto::random_bytes(nonce.data(), nonce.size());
  } catch (const crypto::crypto_error& e) {
    throw std::runtime_error(std::string(e.what()) + ": cannot seal");
  }
  return nonce;
}

// Appends base64 to a string a few bytes at a time: groups of 3 go out as they fill, the
// last (padded) one at finish().
class base64_stream {
 public:
  explicit base64_stream(std::string& out) : out_(out) {}

  void write(const unsigned char* data, std::size_t size) {
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    while (carried_ > 0 && carried_ < 3 && !bytes.empty()) {
      carry_[carried_++] = bytes.front();
      bytes.remove_prefix(1);
    }
    if (carried_ == 3) {
      util::append_base64(out_, std::string_view(carry_.data(), 3));
      carried_ = 0;
    }
    const std::size_t whole = bytes.size() / 3 * 3;
    util::append_base64(out_, bytes.substr(0, whole));
    for (const char c : bytes.substr(whole)) carry_[carried_++] = c;
  }

  void finish() {
    util::append_base64(out_, std::string_view(carry_.data(), carried_));
    carried_ = 0;
  }

 private:
  std::string& out_;
  std::array<char, 3> carry_{};
  std::size_t carried_ = 0;
};

// --- messages ---------------------------------------------------------------------------

const char* const no_secret_here =
    "this side has no secret: set FUNCIE_SECRET / --secret-file to the function's secret";
const char* const not_sealed =
    "not sealed: the other side has no secret; set FUNCIE_SECRET in the function and "
    "--secret-file locally, the same on both";

std::string joined(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) {
    if (!out.empty()) out += ", ";
    out += id;
  }
  return out;
}

seal_error malformed(std::string_view what) {
  return seal_error("malformed sealed frame: " + std::string(what));
}

}  // namespace

// --- keyring ----------------------------------------------------------------------------

keyring::key::~key() {
  crypto::wipe(bytes.data(), bytes.size());
}

keyring keyring::from_secrets(std::string_view current, std::string_view previous, bool encrypt) {
  const auto now = trim(current);
  const auto before = trim(previous);
  const auto too_short = [](const char* which) {
    return secret_error(std::string(which) + " is shorter than " +
                        std::to_string(min_secret_bytes) +
                        " bytes: make a good one with `funcie secret`");
  };
  if (now.empty()) throw secret_error("the secret is empty: make one with `funcie secret`");
  if (now.size() < min_secret_bytes) throw too_short("the secret");
  if (!before.empty() && before.size() < min_secret_bytes) throw too_short("the previous secret");
  if (!before.empty() && before == now) {
    throw secret_error(
        "the current and previous secrets are the same: during a rotation the new secret comes "
        "first (FUNCIE_SECRET) and the old one second (FUNCIE_SECRET_PREVIOUS); otherwise give "
        "only one");
  }
  keyring ring;
  ring.encrypt_ = encrypt;
  for (const auto secret : {now, before}) {
    if (secret.empty()) continue;
    key& k = ring.keys_.emplace_back();
    hkdf(secret, key_info, k.bytes.data(), k.bytes.size());
    std::array<unsigned char, key_id_digits / 2> id{};
    hkdf(secret, key_id_info, id.data(), id.size());
    constexpr char hex[] = "0123456789abcdef";
    k.id.reserve(key_id_digits);
    for (const unsigned char b : id) {
      k.id.push_back(hex[b >> 4]);
      k.id.push_back(hex[b & 0x0F]);
    }
  }
  return ring;
}

keyring keyring::from_file_contents(std::string_view contents, std::string_view path,
                                    bool encrypt) {
  const std::string file = "the secret file '" + std::string(path) + "'";
  std::vector<std::string_view> lines;
  while (!contents.empty()) {
    const auto end = contents.find('\n');
    const auto line = trim(contents.substr(0, end));  // a '\r' of a CRLF line goes too
    if (!line.empty()) {
      if (lines.size() == 2) {
        throw secret_error(file +
                           " has more than two secrets: the first line is the current "
                           "secret, the optional second line the previous one (during a "
                           "rotation); remove the others");
      }
      lines.push_back(line);
    }
    if (end == std::string_view::npos) break;
    contents.remove_prefix(end + 1);
  }
  if (lines.empty()) {
    throw secret_error(file + " is empty: write a secret into it with `funcie secret > " +
                       std::string(path) + "`");
  }
  try {
    return from_secrets(lines[0], lines.size() > 1 ? lines[1] : std::string_view(), encrypt);
  } catch (const secret_error& e) {
    throw secret_error(file + ": " + e.what());
  }
}

std::string keyring::current_key_id() const {
  return keys_.empty() ? std::string() : keys_.front().id;
}

std::vector<std::string> keyring::key_ids() const {
  std::vector<std::string> ids;
  ids.reserve(keys_.size());
  for (const auto& k : keys_) ids.push_back(k.id);
  return ids;
}

bool keyring::holds(std::string_view key_id) const {
  return std::any_of(keys_.begin(), keys_.end(), [&](const key& k) { return k.id == key_id; });
}

bool keyring::looks_sealed(std::string_view frame) {
  return kind_of(frame).has_value();
}

std::optional<std::string> keyring::key_id_of(std::string_view frame) {
  const auto line = parse_first_line(frame);
  if (!line) return std::nullopt;
  return std::string(line->key_id);
}

const keyring::key& keyring::sealing_key(std::string_view key_id) const {
  const auto it = std::find_if(keys_.begin(), keys_.end(),
                               [&](const key& candidate) { return candidate.id == key_id; });
  return it != keys_.end() ? *it : keys_.front();
}

std::string keyring::seal(std::string_view plain, std::string_view key_id) const {
  if (!enabled()) return std::string(plain);
  const key& k = sealing_key(key_id);
  const auto kind = encrypt_ ? frame_kind::sealed : frame_kind::signed_;
  std::string out = make_first_line(kind, k.id);
  const std::size_t at = out.size();
  out.resize(at + nonce_bytes + plain.size() + tag_bytes);
  auto* dst = reinterpret_cast<unsigned char*>(out.data() + at);
  const auto nonce = new_nonce();
  std::memcpy(dst, nonce.data(), nonce_bytes);
  // Authentication only (GMAC) when not encrypting: the plaintext is additional data after
  // the first line.
  gcm<std::runtime_error> c(k.bytes, nonce.data(), true, std::string_view(out.data(), at),
                            encrypt_ ? std::nullopt : std::optional<std::string_view>(plain));
  if (encrypt_) {
    c.update(bytes_of(plain), dst + nonce_bytes, plain.size());
  } else {
    if (!plain.empty()) std::memcpy(dst + nonce_bytes, plain.data(), plain.size());
  }
  c.seal_final(dst + nonce_bytes + plain.size());
  return out;
}

std::string keyring::seal_owned(std::string&& plain, std::string_view key_id) const {
  if (!enabled()) return std::move(plain);
  return seal(plain, key_id);
}

std::string keyring::open_owned(std::string&& frame, std::string* key_id) const {
  if (!enabled() && !looks_sealed(frame)) {
    if (key_id != nullptr) key_id->clear();
    return std::move(frame);
  }
  return open(frame, key_id);
}

std::string keyring::seal_text(std::string_view plain, std::string_view key_id) const {
  if (!enabled()) return std::string(plain);
  const key& k = sealing_key(key_id);
  const auto kind = encrypt_ ? frame_kind::sealed64 : frame_kind::signed64;
  const std::string line = make_first_line(kind, k.id);
  std::string out;
  out.reserve(line.size() + util::base64_size(nonce_bytes + plain.size() + tag_bytes));
  out.append(line);
  const auto nonce = new_nonce();
  gcm<std::runtime_error> c(k.bytes, nonce.data(), true, line,
                            encrypt_ ? std::nullopt : std::optional<std::string_view>(plain));
  base64_stream b64(out);
  b64.write(nonce.data(), nonce.size());
  if (encrypt_) {
    // Encrypted a chunk at a time straight into the base64: no binary copy of the frame.
    std::array<unsigned char, text_chunk> chunk{};
    for (std::size_t done = 0; done < plain.size();) {
      const std::size_t n = std::min(text_chunk, plain.size() - done);
      c.update(bytes_of(plain) + done, chunk.data(), n);
      b64.write(chunk.data(), n);
      done += n;
    }
    crypto::wipe(chunk.data(), chunk.size());
  } else {
    b64.write(bytes_of(plain), plain.size());
  }
  std::array<unsigned char, tag_bytes> tag{};
  c.seal_final(tag.data());
  b64.write(tag.data(), tag.size());
  b64.finish();
  return out;
}

std::string keyring::open(std::string_view frame, std::string* key_id) const {
  if (key_id != nullptr) key_id->clear();
  if (!looks_sealed(frame)) {
    if (!enabled()) return std::string(frame);
    throw seal_error(not_sealed);
  }
  if (!enabled()) throw seal_error(no_secret_here);
  const auto line = parse_first_line(frame);
  if (!line) {
    throw malformed("its first line is not \"funcie/1 <kind> <key id>\" (cut short or altered)");
  }
  const auto k = std::find_if(keys_.begin(), keys_.end(),
                              [&](const key& candidate) { return candidate.id == line->key_id; });
  if (k == keys_.end()) {
    throw seal_error("unknown key id: the message is sealed with key " + std::string(line->key_id) +
                     " and this side holds " + joined(key_ids()) +
                     ": the two sides have different secrets; give both the same (compare "
                     "with `funcie secret --key-id`)");
  }

  // The nonce, and out = the ciphertext (or plaintext) followed by the tag.
  std::array<unsigned char, nonce_bytes> nonce{};
  std::string out;
  if (text(line->kind)) {
    // The nonce is exactly 16 base64 characters: the rest decodes on its own, straight into
    // `out`. Canonical base64 only: one encoding per frame, so no bit of it can change.
    constexpr std::size_t nonce_chars = util::base64_size(nonce_bytes);
    if (line->body.size() < nonce_chars + util::base64_size(tag_bytes)) {
      throw malformed("too short to hold a nonce and a tag (cut short?)");
    }
    out.reserve((line->body.size() - nonce_chars) / 4 * 3);
    if (!util::append_from_base64(out, line->body.substr(0, nonce_chars), true) ||
        out.size() != nonce_bytes) {
      throw malformed("what follows the first line is not base64");
    }
    std::memcpy(nonce.data(), out.data(), nonce_bytes);
    out.clear();
    if (!util::append_from_base64(out, line->body.substr(nonce_chars), true)) {
      throw malformed("what follows the first line is not base64");
    }
    if (out.size() < tag_bytes) throw malformed("too short to hold a nonce and a tag (cut short?)");
  } else {
    if (line->body.size() < nonce_bytes + tag_bytes) {
      throw malformed("too short to hold a nonce and a tag (cut short?)");
    }
    std::memcpy(nonce.data(), line->body.data(), nonce_bytes);
    out.assign(line->body.substr(nonce_bytes));
  }
  const std::size_t size = out.size() - tag_bytes;
  auto* data = reinterpret_cast<unsigned char*>(out.data());

  gcm<seal_error> c(k->bytes, nonce.data(), false, line->line,
                    encrypted(line->kind)
                        ? std::nullopt
                        : std::optional<std::string_view>(std::string_view(out.data(), size)));
  if (encrypted(line->kind)) c.update(data, data, size);  // in place
  if (!c.open_final(data + size)) {
    crypto::wipe(data, size);
    throw seal_error(
        "forged or tampered: the message's tag does not match its contents under key " + k->id +
        " (changed on the way, or made by someone without the secret)");
  }
  out.resize(size);
  if (key_id != nullptr) *key_id = k->id;
  return out;
}

// --- replay_guard -----------------------------------------------------------------------

namespace {

// Forgetting ids costs a pass over them: at most this often.
constexpr std::int64_t sweep_interval_ms = 5000;

std::string span(std::int64_t ms) {
  const std::int64_t s = ms / 1000;
  if (ms % 60000 == 0 && ms >= 60000) return std::to_string(ms / 60000) + "-minute";
  return std::to_string(s) + "-second";
}

}  // namespace

replay_guard::replay_guard(std::int64_t started_ms, std::int64_t window_ms, std::int64_t skew_ms)
    : started_ms_(started_ms), window_ms_(window_ms), skew_ms_(skew_ms) {}

std::optional<std::string> replay_guard::check(std::string_view id, std::int64_t sent_ms,
                                               std::int64_t now_ms) {
  if (now_ms - last_sweep_ms_ >= sweep_interval_ms || now_ms < last_sweep_ms_) {
    // Anything sent before the window is refused as stale below: its id need not be kept.
    std::erase_if(seen_, [&](const auto& entry) { return entry.second < now_ms - window_ms_; });
    last_sweep_ms_ = now_ms;
  }
  if (seen_.contains(std::string(id))) {
    // Ids are checked hex from inside the sealed bytes; cut anyway, one line stays one line.
    const auto shown = id.substr(0, 64);
    return "replayed: request " + std::string(shown) + " was already run";
  }
  if (sent_ms < now_ms - window_ms_) {
    return "stale: sent " + std::to_string((now_ms - sent_ms) / 1000) + " s ago, more than the " +
           span(window_ms_) + " window; check both clocks";
  }
  if (sent_ms > now_ms + skew_ms_) {
    return "from the future: sent " + std::to_string((sent_ms - now_ms) / 1000) +
           " s ahead of this clock, more than the " + span(skew_ms_) +
           " allowance for clock skew; check both clocks";
  }
  if (sent_ms < started_ms_ - skew_ms_) {
    return "sent before this consumer started: " + std::to_string((started_ms_ - sent_ms) / 1000) +
           " s before its start, more than the " + span(skew_ms_) +
           " allowance; a request from before a restart may have run already";
  }
  seen_.emplace(id, sent_ms);
  return std::nullopt;
}

}  // namespace funcie::tunnel
