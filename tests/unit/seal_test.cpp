#include "tunnel/seal.hpp"
#include "util/base64.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tn = funcie::tunnel;
using tn::keyring;
using tn::replay_guard;
using tn::seal_error;
using tn::secret_error;

namespace {

// Recognizable, so that a message quoting any of them is caught.
const std::string secret_a = "SECRET-AAAA-do-not-print-0123456789";
const std::string secret_b = "SECRET-BBBB-do-not-print-9876543210";
const std::string secret_c = "SECRET-CCCC-do-not-print-5555555555";

std::string binary_bytes(std::size_t n, std::uint32_t seed = 7) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xFF);
  return s;
}

// The seal_error `f` throws (fails the test when it throws nothing).
template <typename F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const seal_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no seal_error";
  return {};
}

template <typename F>
std::string secret_refusal(F&& f) {
  try {
    f();
  } catch (const secret_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no secret_error";
  return {};
}

void expect_safe(const std::string& message) {
  EXPECT_FALSE(message.empty());
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_EQ(message.find("SECRET-"), std::string::npos) << message;
  EXPECT_EQ(message.find("do-not-print"), std::string::npos) << message;
}

std::string first_line(const std::string& frame) {
  return frame.substr(0, frame.find('\n'));
}

struct mode {
  bool encrypt;
  bool text;
  std::string_view kind;
};
const mode modes[] = {{true, false, "sealed"},
                      {false, false, "signed"},
                      {true, true, "sealed64"},
                      {false, true, "signed64"}};

std::string seal_in(const keyring& k, const mode& m, std::string_view plain) {
  return m.text ? k.seal_text(plain) : k.seal(plain);
}

}  // namespace

// --- round trips ------------------------------------------------------------------------

TEST(Seal, RoundTripsInAllFourKinds) {
  const std::vector<std::string> payloads = {"", "{\"hello\":\"world\"}", binary_bytes(1000),
                                             std::string(1, '\0'), binary_bytes(6 << 20)};
  for (const auto& m : modes) {
    const auto k = keyring::from_secrets(secret_a, {}, m.encrypt);
    EXPECT_EQ(k.encrypts(), m.encrypt);
    for (const auto& plain : payloads) {
      const auto frame = seal_in(k, m, plain);
      EXPECT_EQ(first_line(frame), "funcie/1 " + std::string(m.kind) + " " + k.current_key_id());
      EXPECT_TRUE(keyring::looks_sealed(frame));
      EXPECT_EQ(keyring::key_id_of(frame), k.current_key_id());
      EXPECT_EQ(k.open(frame), plain) << m.kind << " " << plain.size();
      if (!m.text) {
        EXPECT_EQ(frame.size(), first_line(frame).size() + 1 + 12 + plain.size() + 16);
        EXPECT_LE(frame.size() - plain.size(), tn::seal_overhead_bytes);
      } else {
        const auto body = std::string_view(frame).substr(first_line(frame).size() + 1);
        EXPECT_EQ(body.size(), funcie::util::base64_size(12 + plain.size() + 16));
        EXPECT_TRUE(funcie::util::from_base64(body).has_value());
      }
      // Either side opens both forms, whatever it seals with itself.
      const auto other_mode = keyring::from_secrets(secret_a, {}, !m.encrypt);
      EXPECT_EQ(other_mode.open(frame), plain);
    }
  }
}

TEST(Seal, EncryptedFramesDoNotCarryThePlaintextSignedOnesDo) {
  const std::string plain = "a readable event body, long enough to look for";
  const auto sealed = keyring::from_secrets(secret_a).seal(plain);
  const auto signed_ = keyring::from_secrets(secret_a, {}, false).seal(plain);
  EXPECT_EQ(sealed.find(plain), std::string::npos);
  EXPECT_NE(signed_.find(plain), std::string::npos);
}

TEST(Seal, TwoSealsOfTheSamePlaintextDiffer) {
  for (const auto& m : modes) {
    const auto k = keyring::from_secrets(secret_a, {}, m.encrypt);
    const auto one = seal_in(k, m, "same");
    const auto two = seal_in(k, m, "same");
    EXPECT_NE(one, two) << m.kind;
    EXPECT_EQ(k.open(one), k.open(two));
  }
}

TEST(Seal, KeyIdIsStableAndSixteenHex) {
  const auto a1 = keyring::from_secrets(secret_a);
  const auto a2 = keyring::from_secrets(secret_a, {}, false);
  const auto b = keyring::from_secrets(secret_b);
  EXPECT_EQ(a1.current_key_id(), a2.current_key_id());
  EXPECT_NE(a1.current_key_id(), b.current_key_id());
  for (const auto& id : {a1.current_key_id(), b.current_key_id()}) {
    ASSERT_EQ(id.size(), 16u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  }
  // Whitespace around a secret is not part of it.
  EXPECT_EQ(keyring::from_secrets("  " + secret_a + "\n").current_key_id(), a1.current_key_id());
  EXPECT_EQ(a1.key_ids(), std::vector<std::string>{a1.current_key_id()});
  EXPECT_TRUE(a1.holds(a1.current_key_id()));
  EXPECT_FALSE(a1.holds(b.current_key_id()));
}

TEST(Seal, KeyIdIsDerivedAsDocumented) {
  // HKDF-SHA256(secret, salt "funcie/1", info "funcie key id")[0..8], computed independently
  // (Python's cryptography package) for this secret.
  EXPECT_EQ(keyring::from_secrets("funcie-fuzz-secret-0123456789abcdef").current_key_id(),
            "d56ba6870da69989");
}

TEST(Seal, KeyringsAreCopyable) {
  const auto k = keyring::from_secrets(secret_a, secret_b);
  keyring copy = k;
  keyring assigned;
  assigned = copy;
  keyring moved = std::move(copy);
  EXPECT_EQ(assigned.key_ids(), k.key_ids());
  EXPECT_EQ(moved.open(k.seal("x")), "x");
  EXPECT_EQ(k.open(assigned.seal_text("y")), "y");
}

// --- tampering --------------------------------------------------------------------------

TEST(Seal, EveryBitFlipIsRefused) {
  for (const auto& m : modes) {
    const auto k = keyring::from_secrets(secret_a, {}, m.encrypt);
    const auto frame = seal_in(k, m, "{\"small\":true}");
    for (std::size_t i = 0; i < frame.size(); ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string bad = frame;
        bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
        try {
          (void)k.open(bad);
          ADD_FAILURE() << m.kind << ": byte " << i << " bit " << bit << " flipped still opens";
        } catch (const seal_error& e) {
          expect_safe(e.what());
        }
      }
    }
  }
}

TEST(Seal, TamperedBodyIsForgedOrTampered) {
  const auto k = keyring::from_secrets(secret_a);
  auto frame = k.seal("{\"amount\":100}");
  frame[frame.size() - 20] ^= 0x01;
  const auto message = refusal([&] { (void)k.open(frame); });
  EXPECT_NE(message.find("forged or tampered"), std::string::npos) << message;
  expect_safe(message);
}

TEST(Seal, TruncationsAreRefused) {
  for (const auto& m : modes) {
    const auto k = keyring::from_secrets(secret_a, {}, m.encrypt);
    const auto frame = seal_in(k, m, "{\"small\":true}");
    for (std::size_t n = 0; n < frame.size(); ++n) {
      const auto cut = frame.substr(0, n);
      EXPECT_THROW((void)k.open(cut), seal_error) << m.kind << " cut to " << n;
    }
    // And the other way: bytes added at the end.
    EXPECT_THROW((void)k.open(frame + "A"), seal_error);
    EXPECT_THROW((void)k.open(frame + "AAAA"), seal_error);
    EXPECT_THROW((void)k.open(frame + "\n"), seal_error);
  }
}

TEST(Seal, MalformedFramesAreRefusedWithoutQuotingThem) {
  const auto k = keyring::from_secrets(secret_a);
  const auto id = k.current_key_id();
  const std::vector<std::string> frames = {
      "funcie/1 sealed",
      "funcie/1 sealed\n",
      "funcie/1 sealed " + id,
      "funcie/1 sealed " + id + "x\n" + std::string(40, 'Q'),
      "funcie/1 sealed ABCDEF0123456789\n" + std::string(40, 'Q'),
      "funcie/1 sealed64 " + id + "\n" +
          "not base64 at all, QUOTED-BYTES!! and then some more text",
      "funcie/1 sealed64 " + id + "\n" + "QUJD\nQUJDQUJDQUJDQUJDQUJDQUJDQUJD",
      "funcie/1 signed64 " + id + "\n" + "QUJD",
      "funcie/1 signed  " + id + "\n" + std::string(40, 'Q'),
  };
  for (const auto& f : frames) {
    const auto message = refusal([&] { (void)k.open(f); });
    expect_safe(message);
    EXPECT_EQ(message.find("QUOTED"), std::string::npos) << message;
    EXPECT_EQ(message.find("QUJD"), std::string::npos) << message;
  }
  EXPECT_NE(refusal([&] { (void)k.open(frames[5]); }).find("base64"), std::string::npos);
}

TEST(Seal, NonCanonicalBase64IsRefused) {
  const auto k = keyring::from_secrets(secret_a, {}, false);
  // 12 + 1 + 16 = 29 bytes: the base64 ends in "x=" padding... find a frame with padding.
  for (std::string plain = ""; plain.size() < 3; plain += "a") {
    const auto frame = k.seal_text(plain);
    if (frame.back() != '=') continue;
    // The character before the padding, with one of its unused low bits set.
    std::string bad = frame;
    auto& c = bad[bad.find_last_not_of('=')];
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    c = alphabet[alphabet.find(c) | 1];
    ASSERT_NE(bad, frame);
    // Decodes to the same bytes leniently, but the frame is refused.
    const auto line = frame.find('\n') + 1;
    EXPECT_EQ(funcie::util::from_base64(std::string_view(bad).substr(line)),
              funcie::util::from_base64(std::string_view(frame).substr(line)));
    EXPECT_THROW((void)k.open(bad), seal_error);
  }
}

// --- keys -------------------------------------------------------------------------------

TEST(Seal, AFrameOfKeyAIsRefusedByKeyBNamingBothIds) {
  const auto a = keyring::from_secrets(secret_a);
  const auto b = keyring::from_secrets(secret_b);
  for (const auto& frame : {a.seal("x"), a.seal_text("x")}) {
    const auto message = refusal([&] { (void)b.open(frame); });
    EXPECT_NE(message.find("unknown key id"), std::string::npos) << message;
    EXPECT_NE(message.find(a.current_key_id()), std::string::npos) << message;
    EXPECT_NE(message.find(b.current_key_id()), std::string::npos) << message;
    expect_safe(message);
  }
}

TEST(Seal, AFrameWithAnotherKeyIdButTheRightKeyIsRefused) {
  // Relabelling a frame with a key id the receiver holds does not make it open.
  const auto a = keyring::from_secrets(secret_a);
  const auto both = keyring::from_secrets(secret_b, secret_a);
  auto frame = a.seal("x");
  const auto at = frame.find(a.current_key_id());
  frame.replace(at, 16, both.current_key_id());
  EXPECT_THROW((void)both.open(frame), seal_error);
}

TEST(Seal, RotationOpensBothKeysAndSealsWithTheNewOne) {
  const auto old_only = keyring::from_secrets(secret_a);
  const auto new_only = keyring::from_secrets(secret_b);
  const auto rotating = keyring::from_secrets(secret_b, secret_a);
  EXPECT_EQ(rotating.current_key_id(), new_only.current_key_id());
  EXPECT_EQ(rotating.key_ids(),
            (std::vector<std::string>{new_only.current_key_id(), old_only.current_key_id()}));
  EXPECT_EQ(rotating.open(old_only.seal("from old")), "from old");
  EXPECT_EQ(rotating.open(old_only.seal_text("from old")), "from old");
  EXPECT_EQ(rotating.open(new_only.seal("from new")), "from new");
  const auto sealed = rotating.seal("by rotating");
  EXPECT_EQ(keyring::key_id_of(sealed), new_only.current_key_id());
  EXPECT_EQ(new_only.open(sealed), "by rotating");
  // The old side alone cannot open what the rotating side seals.
  const auto message = refusal([&] { (void)old_only.open(sealed); });
  EXPECT_NE(message.find(new_only.current_key_id()), std::string::npos) << message;
  EXPECT_THROW((void)old_only.open(rotating.seal_text("x")), seal_error);
}

TEST(Seal, AnAnswerIsSealedWithTheKeyTheRequestCameWith) {
  const auto old_only = keyring::from_secrets(secret_a);
  const auto rotating = keyring::from_secrets(secret_b, secret_a);
  for (const bool text : {false, true}) {
    const auto request = text ? old_only.seal_text("req") : old_only.seal("req");
    std::string key_id = "junk";
    EXPECT_EQ(rotating.open(request, &key_id), "req");
    EXPECT_EQ(key_id, old_only.current_key_id());
    const auto answer = text ? rotating.seal_text("resp", key_id) : rotating.seal("resp", key_id);
    EXPECT_EQ(keyring::key_id_of(answer), old_only.current_key_id());
    EXPECT_EQ(old_only.open(answer), "resp");
  }
  // An id it does not hold, or none: the current key.
  EXPECT_EQ(keyring::key_id_of(rotating.seal("x", "0123456789abcdef")), rotating.current_key_id());
  EXPECT_EQ(keyring::key_id_of(rotating.seal_text("x", "")), rotating.current_key_id());
  // Passed through unsealed: no key.
  std::string key_id = "junk";
  EXPECT_EQ(keyring().open("plain", &key_id), "plain");
  EXPECT_EQ(key_id, "");
  EXPECT_EQ(keyring().seal("plain", old_only.current_key_id()), "plain");
}

// --- without a secret -------------------------------------------------------------------

TEST(Seal, DisabledKeyringPassesPlainThroughAndRefusesSealed) {
  const keyring none;
  EXPECT_FALSE(none.enabled());
  EXPECT_EQ(none.current_key_id(), "");
  EXPECT_TRUE(none.key_ids().empty());
  const std::string envelope = "funcie/1 request\n{\"id\":\"x\"}\nbody";
  EXPECT_EQ(none.seal(envelope), envelope);
  EXPECT_EQ(none.seal_text(envelope), envelope);
  EXPECT_EQ(none.open(envelope), envelope);
  const auto binary = binary_bytes(300);
  EXPECT_EQ(none.open(binary), binary);
  EXPECT_FALSE(keyring::looks_sealed(envelope));
  EXPECT_EQ(keyring::key_id_of(envelope), std::nullopt);

  const auto k = keyring::from_secrets(secret_a);
  for (const auto& frame : {k.seal("x"), k.seal_text("x")}) {
    const auto message = refusal([&] { (void)none.open(frame); });
    EXPECT_NE(message.find("this side has no secret"), std::string::npos) << message;
    EXPECT_NE(message.find("FUNCIE_SECRET"), std::string::npos) << message;
    expect_safe(message);
  }
}

TEST(Seal, KeyringWithASecretRefusesUnsealed) {
  const auto k = keyring::from_secrets(secret_a);
  for (const std::string plain :
       {"funcie/1 request\n{}\n", "", "funcie/1 sealedx 0\n", "funcie-sqs/1 offer\n{}\n"}) {
    const auto message = refusal([&] { (void)k.open(plain); });
    EXPECT_NE(message.find("not sealed"), std::string::npos) << message;
    expect_safe(message);
  }
}

TEST(Seal, LooksSealedOnlyForTheFourKinds) {
  EXPECT_TRUE(keyring::looks_sealed("funcie/1 sealed "));
  EXPECT_TRUE(keyring::looks_sealed("funcie/1 signed64\n"));
  EXPECT_TRUE(keyring::looks_sealed("funcie/1 sealed"));
  EXPECT_FALSE(keyring::looks_sealed("funcie/1 sealed6"));
  EXPECT_FALSE(keyring::looks_sealed("funcie/1 request\n"));
  EXPECT_FALSE(keyring::looks_sealed("funcie/2 sealed "));
  EXPECT_FALSE(keyring::looks_sealed(""));
  EXPECT_EQ(keyring::key_id_of("funcie/1 sealed 0123456789abcdef\n"), "0123456789abcdef");
  EXPECT_EQ(keyring::key_id_of("funcie/1 sealed 0123456789abcdef"), std::nullopt);
  EXPECT_EQ(keyring::key_id_of("funcie/1 sealed 0123456789ABCDEF\n"), std::nullopt);
  EXPECT_EQ(keyring::key_id_of("funcie/1 sealed 0123456789abcde\n"), std::nullopt);
}

// --- secret rules -----------------------------------------------------------------------

TEST(Secret, TooShortIsRefusedPointingAtFuncieSecret) {
  for (const auto& [current, previous] :
       std::vector<std::pair<std::string, std::string>>{{"SECRET-short", ""},
                                                        {secret_a, "SECRET-short"},
                                                        {"   SECRET-short15   \n", ""},
                                                        {"", ""},
                                                        {" \n\t", secret_a}}) {
    const auto message = secret_refusal([&] { (void)keyring::from_secrets(current, previous); });
    EXPECT_NE(message.find("funcie secret"), std::string::npos) << message;
    expect_safe(message);
  }
  // Exactly the minimum, after trimming, is enough.
  EXPECT_NO_THROW(
      (void)keyring::from_secrets("  " + std::string(tn::min_secret_bytes, 'k') + "\n"));
  EXPECT_THROW((void)keyring::from_secrets(std::string(tn::min_secret_bytes - 1, 'k')),
               secret_error);
}

TEST(Secret, CurrentEqualToPreviousIsRefused) {
  const auto message =
      secret_refusal([&] { (void)keyring::from_secrets(secret_a, "  " + secret_a + "\r\n"); });
  EXPECT_NE(message.find("same"), std::string::npos) << message;
  expect_safe(message);
}

TEST(Secret, WhitespaceIsTrimmed) {
  const auto plain = keyring::from_secrets(secret_a, secret_b);
  const auto padded = keyring::from_secrets("\t " + secret_a + " \r\n", "\n" + secret_b + "  ");
  EXPECT_EQ(plain.key_ids(), padded.key_ids());
  EXPECT_EQ(padded.open(plain.seal("x")), "x");
}

TEST(Secret, FileWithOneTwoOrThreeLines) {
  const auto one = keyring::from_file_contents(secret_a + "\n", "/tmp/one.secret");
  EXPECT_EQ(one.key_ids().size(), 1u);
  EXPECT_EQ(one.current_key_id(), keyring::from_secrets(secret_a).current_key_id());

  const auto two =
      keyring::from_file_contents("\n" + secret_b + "\n\n  \n" + secret_a + "\n\n", "two.secret");
  EXPECT_EQ(two.key_ids(), keyring::from_secrets(secret_b, secret_a).key_ids());

  const auto message = secret_refusal([&] {
    (void)keyring::from_file_contents(secret_a + "\n" + secret_b + "\n" + secret_c + "\n",
                                      "three.secret");
  });
  EXPECT_NE(message.find("three.secret"), std::string::npos) << message;
  expect_safe(message);

  const auto empty =
      secret_refusal([&] { (void)keyring::from_file_contents(" \n\n", "e.secret"); });
  EXPECT_NE(empty.find("e.secret"), std::string::npos) << empty;
  EXPECT_NE(empty.find("funcie secret"), std::string::npos) << empty;

  const auto short_one =
      secret_refusal([&] { (void)keyring::from_file_contents("SECRET-short\n", "s.secret"); });
  EXPECT_NE(short_one.find("s.secret"), std::string::npos) << short_one;
  EXPECT_NE(short_one.find("funcie secret"), std::string::npos) << short_one;
  expect_safe(short_one);

  const auto same = secret_refusal(
      [&] { (void)keyring::from_file_contents(secret_a + "\n" + secret_a, "same.secret"); });
  expect_safe(same);
}

TEST(Secret, FileWithCrlfLines) {
  const auto k = keyring::from_file_contents(secret_b + "\r\n" + secret_a + "\r\n", "crlf.secret");
  EXPECT_EQ(k.key_ids(), keyring::from_secrets(secret_b, secret_a).key_ids());
  const auto no_final_newline = keyring::from_file_contents(secret_a, "n.secret");
  EXPECT_EQ(no_final_newline.current_key_id(), keyring::from_secrets(secret_a).current_key_id());
}

TEST(Secret, EncryptFlagIsKept) {
  EXPECT_TRUE(keyring::from_file_contents(secret_a, "f").encrypts());
  EXPECT_FALSE(keyring::from_file_contents(secret_a, "f", false).encrypts());
  const auto signed_ = keyring::from_file_contents(secret_a, "f", false).seal("x");
  EXPECT_EQ(signed_.substr(0, 16), "funcie/1 signed ");
}

// --- replay guard -----------------------------------------------------------------------

namespace {
constexpr std::int64_t start = 1'763'900'000'000;
constexpr std::int64_t minute = 60'000;
}  // namespace

TEST(ReplayGuard, AFreshRequestRunsOnce) {
  replay_guard g(start);
  EXPECT_EQ(g.check("aaaa", start + 1000, start + 1500), std::nullopt);
  EXPECT_EQ(g.remembered(), 1u);
  const auto again = g.check("aaaa", start + 1000, start + 2000);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, "replayed: request aaaa was already run");
  // Another id is fine.
  EXPECT_EQ(g.check("bbbb", start + 1000, start + 2000), std::nullopt);
}

TEST(ReplayGuard, StaleRequestsAreRefused) {
  replay_guard g(start - 60 * minute);
  const auto now = start;
  EXPECT_EQ(g.check("ok", now - 20 * minute, now), std::nullopt);
  const auto stale = g.check("old", now - 20 * minute - 1000, now);
  ASSERT_TRUE(stale.has_value());
  EXPECT_EQ(*stale, "stale: sent 1201 s ago, more than the 20-minute window; check both clocks");
  EXPECT_EQ(g.remembered(), 1u);  // a refused request is not remembered
}

TEST(ReplayGuard, RequestsFromTheFutureAreRefused) {
  replay_guard g(start);
  EXPECT_EQ(g.check("skewed", start + 2 * minute, start), std::nullopt);
  const auto future = g.check("ahead", start + 2 * minute + 5000, start);
  ASSERT_TRUE(future.has_value());
  EXPECT_TRUE(future->starts_with("from the future")) << *future;
  EXPECT_NE(future->find("125 s"), std::string::npos) << *future;
  EXPECT_NE(future->find("check both clocks"), std::string::npos) << *future;
}

TEST(ReplayGuard, RequestsFromBeforeTheConsumerStartedAreRefused) {
  replay_guard g(start);
  EXPECT_EQ(g.check("just-before", start - 2 * minute, start + 1000), std::nullopt);
  const auto before = g.check("earlier", start - 3 * minute, start + 1000);
  ASSERT_TRUE(before.has_value());
  EXPECT_TRUE(before->starts_with("sent before this consumer started")) << *before;
  EXPECT_NE(before->find("180 s"), std::string::npos) << *before;
}

TEST(ReplayGuard, ForgetsIdsOlderThanTheWindow) {
  replay_guard g(start);
  EXPECT_EQ(g.check("first", start, start), std::nullopt);
  // 21 minutes later the id is forgotten, and the request would be stale anyway.
  EXPECT_EQ(g.check("later", start + 21 * minute, start + 21 * minute), std::nullopt);
  EXPECT_EQ(g.remembered(), 1u);
  const auto replay = g.check("first", start, start + 21 * minute);
  ASSERT_TRUE(replay.has_value());
  EXPECT_TRUE(replay->starts_with("stale")) << *replay;
}

TEST(ReplayGuard, MemoryStaysBounded) {
  replay_guard g(start);
  // Ten requests a second for two hours of simulated time.
  constexpr std::int64_t step_ms = 100;
  std::size_t most = 0;
  std::int64_t n = 0;
  for (std::int64_t t = start; t < start + 120 * minute; t += step_ms, ++n) {
    ASSERT_EQ(g.check("id-" + std::to_string(n), t - 500, t), std::nullopt);
    most = std::max(most, g.remembered());
  }
  // At most the window's worth (plus one sweep interval of a few seconds).
  const std::size_t window_worth = 20 * minute / step_ms;
  EXPECT_GE(most, window_worth - 10 * 1000 / step_ms);
  EXPECT_LE(most, window_worth + 10 * 1000 / step_ms);
  EXPECT_LT(g.remembered(), static_cast<std::size_t>(n) / 5);
}
