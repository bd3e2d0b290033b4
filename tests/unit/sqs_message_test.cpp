#include "backend/sqs/message.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace sq = funcie::sqs_backend;
using sq::message_kind;

namespace funcie::sqs_backend {
// What a failed comparison prints: the fields, and the data's size rather than its bytes.
void PrintTo(const message& m, std::ostream* os) {
  *os << to_string(m.kind) << " app=" << m.app << " id=" << m.id << " session=" << m.session
      << " part=" << m.part << "/" << m.count << " claim_by_ms=" << m.claim_by_ms
      << " expires_ms=" << m.expires_ms << " sent_ms=" << m.sent_ms << " data=" << m.data.size()
      << " bytes";
}
}  // namespace funcie::sqs_backend

namespace {

const std::string id = "0123456789abcdef0123456789abcdef";
const std::string session = "fedcba9876543210fedcba9876543210";

sq::message make(message_kind kind) {
  sq::message m;
  m.kind = kind;
  m.app = "orders-api";
  m.id = id;
  switch (kind) {
    case message_kind::offer:
      m.count = 3;
      m.claim_by_ms = 1763900002000;
      m.expires_ms = 1763900030000;
      m.data = R"({"body":"first piece"})";
      break;
    case message_kind::part:
      m.part = 2;
      m.count = 3;
      m.expires_ms = 1763900030000;
      m.data = "last piece";
      break;
    case message_kind::ff:
      m.part = 1;
      m.count = 2;
      m.sent_ms = 1763900000000;
      m.expires_ms = 1763900030000;
      m.data = "ff piece";
      break;
    case message_kind::claim:
    case message_kind::commit:
      m.session = session;
      m.expires_ms = 1763900004500;
      break;
    case message_kind::alive:
      m.session = session;
      m.expires_ms = 1763900004500;
      m.sent = 7;
      break;
    case message_kind::piece:
      m.session = session;
      m.piece = 41;
      m.part = 1;
      m.count = 2;
      m.expires_ms = 1763900030000;
      m.data = "streamed bytes";
      break;
    case message_kind::response:
      m.session = session;
      m.count = 1;
      m.expires_ms = 1763900030000;
      m.data = std::string("\0\xff binary", 9);
      break;
    case message_kind::ping:
      m.expires_ms = 1763900005000;
      break;
    case message_kind::pong:
      m.session = session;
      m.expires_ms = 1763900005000;
      m.data = R"({"version":"0.1.0","host":"laptop"})";
      break;
  }
  return m;
}

constexpr message_kind all_kinds[] = {
    message_kind::offer,  message_kind::part,  message_kind::ff,       message_kind::claim,
    message_kind::commit, message_kind::alive, message_kind::response, message_kind::piece,
    message_kind::ping,   message_kind::pong};

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(size, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xFF);
  return s;
}

// JSON text of `size` bytes with multibyte characters (2, 3 and 4 bytes) all through it.
std::string json_text(std::size_t size) {
  std::string s = "{\"Records\":[";
  int i = 0;
  while (s.size() + 80 < size) {
    s += "{\"n\":" + std::to_string(i++) + ",\"text\":\"héllo wörld € 😀 \\n\\t\"},\n";
  }
  s += "{}]}";
  s.append(size - s.size(), ' ');
  return s;
}

std::string body_of(std::string_view kind, std::string_view header, std::string_view data = "") {
  return "funcie-sqs/1 " + std::string(kind) + "\n" + std::string(header) + "\n" +
         std::string(data);
}

std::string decode_error(const std::string& body) {
  try {
    (void)sq::decode(body);
  } catch (const sq::message_error& e) {
    return e.what();
  }
  return "(decoded)";
}

// Splits, checks every encoded body against the limit, decodes them, and reassembles them in
// a shuffled order with duplicates.
std::string split_and_reassemble(const sq::message& proto, const std::string& envelope,
                                 std::size_t limit, unsigned seed,
                                 std::size_t* pieces_out = nullptr) {
  const auto pieces = sq::split(proto, envelope, limit);
  std::vector<sq::message> received;
  for (const auto& p : pieces) {
    const auto body = sq::encode(p);
    EXPECT_LE(body.size(), limit);
    received.push_back(sq::decode(body));
    EXPECT_EQ(received.back(), p);
  }
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < pieces.size(); i += 3) received.push_back(received[i]);
  std::shuffle(received.begin(), received.end(), rng);
  sq::reassembly r;
  std::optional<std::string> whole;
  for (const auto& m : received) {
    auto out = r.add(m, 7 * 1024 * 1024);
    if (out) {
      EXPECT_FALSE(whole) << "the envelope came out twice";
      whole = std::move(out);
    }
  }
  if (pieces_out != nullptr) *pieces_out = pieces.size();
  EXPECT_TRUE(whole);
  return whole.value_or("(incomplete)");
}

}  // namespace

// --- encode and decode -------------------------------------------------------------------

TEST(SqsMessage, EveryKindRoundTrips) {
  for (const auto kind : all_kinds) {
    const auto m = make(kind);
    const auto body = sq::encode(m);
    EXPECT_TRUE(body.starts_with("funcie-sqs/1 " + std::string(sq::to_string(kind)) + "\n{"))
        << body;
    EXPECT_TRUE(sq::is_sqs_text(body)) << sq::to_string(kind);
    EXPECT_EQ(sq::decode(body), m) << sq::to_string(kind);
  }
}

TEST(SqsMessage, EncodesOnlyTheFieldsTheKindUses) {
  auto m = make(message_kind::claim);
  m.claim_by_ms = 5;  // not a claim's field
  m.data = "ignored";
  const auto body = sq::encode(m);
  EXPECT_EQ(body, "funcie-sqs/1 claim\n{\"app\":\"orders-api\",\"id\":\"" + id +
                      "\",\"session\":\"" + session + "\",\"expires_ms\":1763900004500}\n");
  const auto offer = sq::encode(make(message_kind::offer));
  EXPECT_EQ(offer, "funcie-sqs/1 offer\n{\"app\":\"orders-api\",\"id\":\"" + id +
                       "\",\"part\":0,\"count\":3,\"claim_by_ms\":1763900002000,"
                       "\"expires_ms\":1763900030000,\"enc\":\"raw\"}\n{\"body\":\"first piece\"}");
}

TEST(SqsMessage, ChoosesRawOrBase64) {
  auto m = make(message_kind::offer);
  m.data = R"({"Records":[{"body":"héllo € 😀\n\ttab"}]})";
  EXPECT_NE(sq::encode(m).find("\"enc\":\"raw\""), std::string::npos);
  EXPECT_TRUE(sq::encode(m).ends_with(m.data));

  const std::vector<std::string> not_text{
      std::string("\x00\x01\x02\xff", 4),  // binary
      "\xED\xA0\x80",                      // a lone surrogate in CESU-8
      "text \xEF\xBF\xBE",                 // U+FFFE
      "\xEF\xBF\xBF",                      // U+FFFF
      "\xC0\xAF",                          // an overlong '/'
      "\xF4\x90\x80\x80",                  // above U+10FFFF
      "\x1b[0m",                           // a control character
      "cut \xE2\x82",                      // a truncated character
  };
  for (const auto& data : not_text) {
    EXPECT_FALSE(sq::is_sqs_text(data));
    m.data = data;
    const auto body = sq::encode(m);
    EXPECT_NE(body.find("\"enc\":\"b64\""), std::string::npos);
    EXPECT_TRUE(sq::is_sqs_text(body));
    EXPECT_EQ(sq::decode(body).data, data);
  }
  for (const std::string text : {"", "\t\n\r", "\xED\x9F\xBF", "\xEE\x80\x80", "\xEF\xBF\xBD",
                                 "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF", "\x7f"}) {
    EXPECT_TRUE(sq::is_sqs_text(text)) << text;
  }
}

TEST(SqsMessage, Base64RoundTripsEveryLength) {
  auto m = make(message_kind::response);
  for (std::size_t n = 0; n < 70; ++n) {
    m.data = random_bytes(n, static_cast<unsigned>(n));
    m.data.insert(0, 1, '\0');  // never text
    EXPECT_EQ(sq::decode(sq::encode(m)), m) << n;
  }
}

TEST(SqsMessage, UnknownHeaderFieldsAreIgnored) {
  const auto m = sq::decode(body_of(
      "claim",
      R"({"app":"a","id":")" + id + R"(","session":")" + session +
          R"(","future":{"x":[1,2]},"expires_ms":9,"claim_by_ms":"other kinds' fields are not read"})"));
  EXPECT_EQ(m.kind, message_kind::claim);
  EXPECT_EQ(m.session, session);
  EXPECT_EQ(m.expires_ms, 9);
}

TEST(SqsMessage, DecodeRefusesWhatBreaksTheRules) {
  const std::string app_id = R"("app":"a","id":")" + id + "\"";
  const std::string ping = "{" + app_id + R"(,"expires_ms":1})";
  const std::string piece = "{" + app_id + R"(,"expires_ms":1)";
  const std::string big_header =
      "{" + app_id + R"(,"expires_ms":1,"pad":")" + std::string(4096, 'x') + "\"}";
  const std::vector<std::pair<std::string, std::string>> cases{
      {"", "not a funcie SQS message"},
      {"funcie/1 request\n{}\n", "not a funcie SQS message"},
      {"funcie-sqs/1 ping", "not a funcie SQS message"},
      {"funcie-sqs/2 ping\n{}\n", "run the same funcie release on both sides"},
      {"funcie-sqs/x ping\n{}\n", "version is not a number"},
      {"funcie-sqs/1\n{}\n", "no version and kind"},
      {"funcie-sqs/1 bogus\n{}\n", "kind is unknown"},
      {"funcie-sqs/1 ping\n" + ping, "not terminated by a newline"},
      {body_of("ping", big_header), "longer than 4 KiB"},
      {body_of("ping", "{"), "not valid JSON"},
      {body_of("ping", "[]"), "not a JSON object"},
      {body_of("ping", R"({"id":")" + id + R"(","expires_ms":1})"), "has no \"app\""},
      {body_of("ping", R"({"app":"a b","id":")" + id + R"(","expires_ms":1})"),
       "app name is not valid"},
      {body_of("ping", R"({"app":7,"id":")" + id + R"(","expires_ms":1})"), "not a string"},
      {body_of("ping", R"({"app":"a","id":"0123456789ABCDEF0123456789ABCDEF","expires_ms":1})"),
       "\"id\" in the message header is not 32 lowercase hex digits"},
      {body_of("ping", "{" + app_id + "}"), "has no \"expires_ms\""},
      {body_of("ping", "{" + app_id + R"(,"expires_ms":-1})"), "out of range"},
      {body_of("ping", "{" + app_id + R"(,"expires_ms":0})"), "out of range"},
      {body_of("ping", "{" + app_id + R"(,"expires_ms":1.5})"), "not an integer"},
      {body_of("ping", "{" + app_id + R"(,"expires_ms":"1"})"), "not an integer"},
      {body_of("ping", "{" + app_id + R"(,"expires_ms":18446744073709551615})"), "out of range"},
      {body_of("ping", ping, "data"), "a ping message carries no data"},
      {body_of("claim", "{" + app_id + "}"), "has no \"session\""},
      // The issue's claim without an expiry, and the other kinds that once had none.
      {body_of("claim", "{" + app_id + R"(,"session":")" + session + "\"}"),
       "has no \"expires_ms\""},
      {body_of("commit", "{" + app_id + R"(,"session":")" + session + "\"}"),
       "has no \"expires_ms\""},
      {body_of("alive", "{" + app_id + R"(,"session":")" + session + "\"}"),
       "has no \"expires_ms\""},
      {body_of("pong", "{" + app_id + R"(,"session":")" + session + "\"}", "{}"),
       "has no \"expires_ms\""},
      {body_of("alive", "{" + app_id + R"(,"session":"x","expires_ms":1})"),
       "\"session\" in the message"},
      {body_of("claim", "{" + app_id + R"(,"session":")" + session + R"(","expires_ms":1})", "x"),
       "carries no data"},
      {body_of("part", piece + R"(,"part":1})"), "has no \"count\""},
      {body_of("part", piece + R"(,"count":2})"), "has no \"part\""},
      {body_of("part", piece + R"(,"part":2,"count":2})"), "\"part\" in the message header is out"},
      {body_of("part", piece + R"(,"part":0,"count":0})"),
       "\"count\" in the message header is out"},
      {body_of("part", piece + R"(,"part":0,"count":16385})"), "\"count\" in the message"},
      {body_of("part", piece + R"(,"part":0,"count":2})"), "a part is the envelope's first piece"},
      {body_of("offer", piece + R"(,"part":1,"count":2,"claim_by_ms":1})"),
       "an offer is not the envelope's first piece"},
      {body_of("offer", piece + R"(,"part":0,"count":1})"), "has no \"claim_by_ms\""},
      {body_of("ff", piece + R"(,"part":0,"count":1})"), "has no \"sent_ms\""},
      {body_of("response", piece + R"(,"part":0,"count":1})"), "has no \"session\""},
      {body_of("part", piece + R"(,"part":1,"count":2,"enc":"hex"})", "aa"), "neither"},
      {body_of("part", piece + R"(,"part":1,"count":2,"enc":1})", "aa"), "neither"},
      {body_of("part", piece + R"(,"part":1,"count":2,"enc":"b64"})", "QUJD\n"), "malformed"},
      {body_of("part", piece + R"(,"part":1,"count":2,"enc":"b64"})", "QUJ"), "malformed"},
      {body_of("part", piece + R"(,"part":1,"count":2,"enc":"b64"})", "Q=JD"), "malformed"},
      {body_of("part", piece + R"(,"part":1,"count":2,"enc":"b64"})", "Q==="), "malformed"},
      {body_of("part", piece + R"(,"part":1,"count":2,"enc":"b64"})", "QU D"), "malformed"},
      {body_of("part", piece + R"(,"part":1,"count":2,"enc":"b64"})", "QU-D"), "malformed"},
  };
  for (const auto& [body, expected] : cases) {
    const auto error = decode_error(body);
    EXPECT_NE(error.find(expected), std::string::npos)
        << "body: " << body.substr(0, 120) << "\nerror: " << error;
  }
  // Padding is read right.
  const auto padded =
      sq::decode(body_of("part", piece + R"(,"part":1,"count":2,"enc":"b64"})", "QQ=="));
  EXPECT_EQ(padded.data, "A");
  EXPECT_EQ(sq::decode(body_of("part", piece + R"(,"part":1,"count":2,"enc":"b64"})", "QUI=")).data,
            "AB");
  EXPECT_EQ(sq::decode(body_of("part", piece + R"(,"part":1,"count":2})", "no enc: raw")).data,
            "no enc: raw");
}

// --- split and reassembly ----------------------------------------------------------------

TEST(SqsMessage, AnEmptyEnvelopeIsOnePiece) {
  auto proto = make(message_kind::offer);
  const auto pieces = sq::split(proto, "", 1024);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].kind, message_kind::offer);
  EXPECT_EQ(pieces[0].count, 1u);
  EXPECT_EQ(pieces[0].data, "");
  sq::reassembly r;
  EXPECT_EQ(r.add(sq::decode(sq::encode(pieces[0])), 10), "");
}

TEST(SqsMessage, LaterPiecesOfAnOfferAreParts) {
  auto proto = make(message_kind::offer);
  const auto pieces = sq::split(proto, std::string(3000, 'a'), 1024);
  ASSERT_GE(pieces.size(), 4u);
  EXPECT_EQ(pieces[0].kind, message_kind::offer);
  for (std::size_t i = 1; i < pieces.size(); ++i) {
    EXPECT_EQ(pieces[i].kind, message_kind::part);
    EXPECT_EQ(pieces[i].part, i);
    EXPECT_EQ(pieces[i].count, pieces.size());
    EXPECT_EQ(pieces[i].expires_ms, proto.expires_ms);
  }
  auto ff = make(message_kind::ff);
  for (const auto& p : sq::split(ff, std::string(3000, 'a'), 1024)) {
    EXPECT_EQ(p.kind, message_kind::ff);
  }
  auto response = make(message_kind::response);
  for (const auto& p : sq::split(response, std::string(3000, 'a'), 1024)) {
    EXPECT_EQ(p.kind, message_kind::response);
    EXPECT_EQ(p.session, session);
  }
  // A piece of a streamed response: every part says which piece it belongs to and fits.
  auto piece = make(message_kind::piece);
  piece.piece = sq::max_stream_piece;
  const auto parts = sq::split(piece, std::string(3000, 'a'), 1024);
  ASSERT_GE(parts.size(), 4u);
  for (const auto& p : parts) {
    EXPECT_EQ(p.kind, message_kind::piece);
    EXPECT_EQ(p.piece, sq::max_stream_piece);
    EXPECT_LE(sq::encode(p).size(), 1024u);
  }
}

TEST(SqsMessage, AStreamPieceAndTheAliveThatCountsThem) {
  const auto piece = sq::encode(make(message_kind::piece));
  EXPECT_EQ(piece, "funcie-sqs/1 piece\n{\"app\":\"orders-api\",\"id\":\"" + id +
                       "\",\"session\":\"" + session +
                       "\",\"part\":1,\"count\":2,\"piece\":41,\"expires_ms\":1763900030000,"
                       "\"enc\":\"raw\"}\nstreamed bytes");
  // `sent` is optional: absent is 0, and 0 is not written.
  auto alive = make(message_kind::alive);
  EXPECT_NE(sq::encode(alive).find("\"sent\":7"), std::string::npos);
  alive.sent = 0;
  EXPECT_EQ(sq::encode(alive).find("sent"), std::string::npos);
  EXPECT_EQ(sq::decode(sq::encode(alive)).sent, 0u);
  // A piece without its number, or with one out of range, is refused.
  const std::string head = "{\"app\":\"a\",\"id\":\"" + id + "\",\"session\":\"" + session +
                           "\",\"part\":0,\"count\":1,\"expires_ms\":5";
  EXPECT_THROW(sq::decode(body_of("piece", head + "}", "x")), sq::message_error);
  EXPECT_THROW(sq::decode(body_of("piece", head + ",\"piece\":-1}", "x")), sq::message_error);
  EXPECT_THROW(sq::decode(body_of("piece", head + ",\"piece\":2147483648}", "x")),
               sq::message_error);
  EXPECT_THROW(sq::decode(body_of("alive", "{\"app\":\"a\",\"id\":\"" + id + "\",\"session\":\"" +
                                               session + "\",\"expires_ms\":5,\"sent\":\"3\"}")),
               sq::message_error);
}

TEST(SqsMessage, SplitsAtEveryLimitAndReassemblesInAnyOrder) {
  const auto text = json_text(300 * 1024);
  const auto binary = random_bytes(300 * 1024, 1);
  const auto mixed = json_text(100 * 1024) + random_bytes(50 * 1024, 2) + json_text(100 * 1024);
  const auto proto = make(message_kind::offer);
  unsigned seed = 0;
  for (const std::size_t limit :
       {std::size_t{1024}, std::size_t{1500}, std::size_t{256 * 1024}, std::size_t{1024 * 1024}}) {
    for (const auto* envelope : {&text, &binary, &mixed}) {
      EXPECT_EQ(split_and_reassemble(proto, *envelope, limit, ++seed), *envelope)
          << "limit " << limit;
    }
  }
}

TEST(SqsMessage, TextGoesRawAndBinaryAsBase64) {
  const auto proto = make(message_kind::offer);
  const auto text_pieces = sq::split(proto, json_text(100 * 1024), 1024);
  for (const auto& p : text_pieces) EXPECT_TRUE(sq::is_sqs_text(p.data)) << p.part;
  const auto binary_pieces = sq::split(proto, random_bytes(100 * 1024, 3), 1024);
  // Raw text carries about a third more per message than base64.
  EXPECT_GT(binary_pieces.size(), text_pieces.size() * 5 / 4);
}

TEST(SqsMessage, ACharacterStraddlingACutStaysWhole) {
  const auto proto = make(message_kind::offer);
  const auto header = sq::encode(sq::split(proto, "", 1024)[0]).size();
  // Put a 4-byte character across every plausible cut: each piece is still valid text.
  for (std::size_t shift = 0; shift < 8; ++shift) {
    std::string envelope(shift, 'a');
    while (envelope.size() < 5000) envelope += "\xF0\x9F\x98\x80 abc é";
    const auto pieces = sq::split(proto, envelope, 1024);
    std::string whole;
    for (const auto& p : pieces) {
      EXPECT_TRUE(sq::is_sqs_text(p.data)) << "shift " << shift << " part " << p.part;
      EXPECT_LE(sq::encode(p).size(), 1024u);
      if (p.part + 1 < pieces.size()) {
        EXPECT_GE(p.data.size() + header + 12, 1024u) << "pieces are filled";
      }
      whole += p.data;
    }
    EXPECT_EQ(whole, envelope);
  }
}

TEST(SqsMessage, SixMebibytesOfTextOrBinary) {
  const auto proto = make(message_kind::offer);
  const auto text = json_text(6 * 1024 * 1024);
  const auto binary = random_bytes(6 * 1024 * 1024, 4);
  std::size_t pieces = 0;
  EXPECT_EQ(split_and_reassemble(proto, text, 1024 * 1024, 5, &pieces), text);
  EXPECT_EQ(pieces, 7u);  // docs/sqs.md: 7 messages on 1 MiB queues
  EXPECT_EQ(split_and_reassemble(proto, text, 256 * 1024, 6, &pieces), text);
  EXPECT_EQ(pieces, 25u);
  EXPECT_EQ(split_and_reassemble(proto, binary, 1024 * 1024, 7, &pieces), binary);
  EXPECT_EQ(pieces, 9u);
  EXPECT_EQ(split_and_reassemble(proto, binary, 256 * 1024, 8, &pieces), binary);
  EXPECT_EQ(pieces, 33u);
}

TEST(SqsMessage, SplitRefusesWhatCannotBeSent) {
  const auto proto = make(message_kind::offer);
  EXPECT_THROW((void)sq::split(proto, "x", 1023), sq::message_error);
  EXPECT_THROW((void)sq::split(make(message_kind::claim), "x", 1024), sq::message_error);
  EXPECT_THROW((void)sq::split(make(message_kind::part), "x", 1024), sq::message_error);
  // 16385 pieces of at most 1024 bytes: more than max_pieces.
  EXPECT_THROW((void)sq::split(proto, std::string(sq::max_pieces * 1024 + 1, 'a'), 1024),
               sq::message_error);
}

TEST(SqsMessage, ReassemblyRefusesContradictions) {
  const auto proto = make(message_kind::offer);
  const auto pieces = sq::split(proto, std::string(3000, 'a'), 1024);
  ASSERT_GE(pieces.size(), 3u);

  sq::reassembly r;
  EXPECT_FALSE(r.add(pieces[0], 1 << 20));
  EXPECT_EQ(r.count(), pieces.size());
  EXPECT_EQ(r.received(), 1u);
  auto other_id = pieces[1];
  other_id.id = session;
  EXPECT_THROW((void)r.add(other_id, 1 << 20), sq::message_error);
  auto other_count = pieces[1];
  other_count.count += 1;
  EXPECT_THROW((void)r.add(other_count, 1 << 20), sq::message_error);
  auto changed = pieces[0];
  changed.data[0] = 'b';
  EXPECT_THROW((void)r.add(changed, 1 << 20), sq::message_error);
  auto out_of_range = pieces[1];
  out_of_range.part = out_of_range.count;
  EXPECT_THROW((void)r.add(out_of_range, 1 << 20), sq::message_error);
  EXPECT_FALSE(r.add(pieces[0], 1 << 20));  // a duplicate is nothing new
  EXPECT_EQ(r.received(), 1u);

  sq::reassembly limited;
  EXPECT_FALSE(limited.add(pieces[0], 2999));
  EXPECT_FALSE(limited.add(pieces[1], 2999));
  try {
    for (std::size_t i = 2; i < pieces.size(); ++i) (void)limited.add(pieces[i], 2999);
    FAIL() << "no message_error";
  } catch (const sq::message_error& e) {
    EXPECT_NE(std::string(e.what()).find("larger than 2999 bytes"), std::string::npos);
  }
}

TEST(SqsMessage, ADuplicateAfterTheEnvelopeIsNothingNew) {
  const auto pieces = sq::split(make(message_kind::offer), std::string(2000, 'a'), 1024);
  sq::reassembly r;
  std::optional<std::string> whole;
  for (const auto& p : pieces) whole = r.add(p, 1 << 20);
  ASSERT_TRUE(whole);
  EXPECT_EQ(*whole, std::string(2000, 'a'));
  EXPECT_FALSE(r.add(pieces[0], 1 << 20));
}

// --- presence tags ---------------------------------------------------------------------

TEST(SqsPresence, TheLatestLiveTagOfTheAppCounts) {
  const std::int64_t now = 1763900000000;
  const std::map<std::string, std::string> tags{
      {sq::presence_tag_key("orders-api", session), std::to_string(now + 60000)},
      {sq::presence_tag_key("orders-api", id), std::to_string(now + 30000)},
      {sq::presence_tag_key("orders-api-2", id), std::to_string(now + 90000)},  // another app
      {"funcie:orders-api:dead0000", std::to_string(now - 1)},                  // killed
      {"funcie:orders-api:garbage0", "soon"},
      {"team", "payments"},
  };
  EXPECT_EQ(sq::presence_tag_key("orders-api", session), "funcie:orders-api:fedcba98");
  const auto p = sq::read_presence(tags, "orders-api", now);
  EXPECT_EQ(p.until_ms, now + 60000);
  EXPECT_EQ(p.stale_keys, std::vector<std::string>{"funcie:orders-api:dead0000"});
  // A refresh changes the signature, so a forwarder that saw an offer go unclaimed offers
  // again; the same tags do not.
  auto refreshed = tags;
  refreshed[sq::presence_tag_key("orders-api", session)] = std::to_string(now + 80000);
  EXPECT_NE(sq::read_presence(refreshed, "orders-api", now).signature, p.signature);
  EXPECT_EQ(sq::read_presence(tags, "orders-api", now + 1).signature, p.signature);
  EXPECT_EQ(sq::read_presence(tags, "orders-api", now + 60000).until_ms, 0);
  EXPECT_EQ(sq::read_presence({}, "orders-api", now).until_ms, 0);
}

TEST(SqsPresence, WithASecretOnlyATagSealedForItsOwnKeyCounts) {
  const std::int64_t now = 1763900000000;
  const auto keys = funcie::tunnel::keyring::from_secrets("correct horse battery staple 42");
  const auto other = funcie::tunnel::keyring::from_secrets("another team's secret, 32 bytes");
  const std::string mine = sq::presence_tag_key("orders-api", session);
  const std::string theirs = sq::presence_tag_key("orders-api", id);
  const std::string value = sq::presence_tag_value(mine, now + 30000, keys);
  // What AWS allows in a tag value: letters, digits, blanks and _ . : / = + - @; at most 256.
  EXPECT_LE(value.size(), 256u);
  EXPECT_TRUE(std::all_of(value.begin(), value.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("_.:/=+-@ ").find(c) != std::string_view::npos;
  })) << value;
  EXPECT_EQ(sq::presence_tag_until(mine, value, keys), now + 30000);
  // Forged without the secret: a plain number, a value sealed with another key, a valid
  // value copied onto another session's key, a value with a bit changed.
  EXPECT_FALSE(sq::presence_tag_until(mine, std::to_string(now + 30000), keys));
  EXPECT_FALSE(
      sq::presence_tag_until(mine, sq::presence_tag_value(mine, now + 30000, other), keys));
  EXPECT_FALSE(sq::presence_tag_until(theirs, value, keys));
  std::string flipped = value;
  flipped[flipped.size() - 5] = flipped[flipped.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(sq::presence_tag_until(mine, flipped, keys));
  EXPECT_FALSE(sq::presence_tag_until(mine, "sealed64:0011223344556677", keys));
  EXPECT_FALSE(sq::presence_tag_until(mine, "", keys));
  // Without a secret the sealed value is not a number either.
  EXPECT_FALSE(sq::presence_tag_until(mine, value, {}));

  const std::map<std::string, std::string> tags{
      {mine, value}, {theirs, std::to_string(now + 90000)},  // forged: no seal
  };
  const auto p = sq::read_presence(tags, "orders-api", now, keys);
  EXPECT_EQ(p.until_ms, now + 30000);
  EXPECT_EQ(
      sq::read_presence({{theirs, std::to_string(now + 90000)}}, "orders-api", now, keys).until_ms,
      0)
      << "a tag forged without the secret must not make forwarders offer";
  // The longest app name still fits a tag value.
  const std::string long_app(64, 'a');
  EXPECT_LE(sq::presence_tag_value(sq::presence_tag_key(long_app, session), now, keys).size(),
            256u);
}

// --- routes in the tags (docs/sqs.md, "Routes") -----------------------------------------

TEST(SqsRoutes, ASessionsRoutesTravelInItsTagsAndComeBackAsWritten) {
  const std::int64_t now = 1763900000000;
  const std::vector<std::string> routes{"context:/custom/dev=ada",
                                        R"(/headers/x-team="ops and infra" sample=0.5)"};
  for (const auto& keys : {funcie::tunnel::keyring{}, funcie::tunnel::keyring::from_secrets(
                                                          "correct horse battery staple 42")}) {
    const std::string key = sq::presence_tag_key("orders-api", session);
    auto tags = sq::route_tags("orders-api", session, routes, keys);
    ASSERT_EQ(tags.size(), 1u);
    EXPECT_EQ(tags.begin()->first, "funcie:orders-api:fedcba98:1");
    tags[key] = sq::presence_tag_value(key, now + 30000, keys, session, 1);
    // Another session without routes, and an older funcie's tag (no id: nobody can address it).
    const std::string other = sq::presence_tag_key("orders-api", id);
    tags[other] = sq::presence_tag_value(other, now + 30000, keys, id, 0);
    const std::string old_key = "funcie:orders-api:0ld00000";
    tags[old_key] = sq::presence_tag_value(old_key, now + 30000, keys);
    for (const auto& [k, v] : tags) {
      EXPECT_LE(v.size(), sq::max_tag_value_chars) << k;
      EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view("_.:/=+-@ ").find(c) != std::string_view::npos;
      })) << v;
    }
    const auto p = sq::read_presence(tags, "orders-api", now, keys);
    ASSERT_EQ(p.sessions.size(), 2u);
    EXPECT_EQ(p.sessions[0].id, id);
    EXPECT_TRUE(p.sessions[0].routes.empty());
    EXPECT_EQ(p.sessions[1].id, session);
    EXPECT_EQ(p.sessions[1].routes, routes);
    EXPECT_EQ(p.until_ms, now + 30000);
    EXPECT_TRUE(p.ignored.empty());
    EXPECT_TRUE(p.stale_keys.empty());
    // Expired: the session and its route tags are stale, for the next session to remove.
    const auto later = sq::read_presence(tags, "orders-api", now + 30000, keys);
    EXPECT_TRUE(later.sessions.empty());
    EXPECT_NE(
        std::find(later.stale_keys.begin(), later.stale_keys.end(), "funcie:orders-api:fedcba98:1"),
        later.stale_keys.end());
    // A route tag whose session's tag is gone is stale too; a missing route tag leaves its
    // session out (its routes are unknown), never taking everything.
    auto orphan = tags;
    orphan.erase(key);
    EXPECT_NE(std::find(sq::read_presence(orphan, "orders-api", now, keys).stale_keys.begin(),
                        sq::read_presence(orphan, "orders-api", now, keys).stale_keys.end(),
                        "funcie:orders-api:fedcba98:1"),
              sq::read_presence(orphan, "orders-api", now, keys).stale_keys.end());
    auto cut = tags;
    cut.erase("funcie:orders-api:fedcba98:1");
    const auto without = sq::read_presence(cut, "orders-api", now, keys);
    ASSERT_EQ(without.sessions.size(), 1u);
    EXPECT_EQ(without.sessions[0].id, id);
    EXPECT_EQ(without.ignored.size(), 1u);
  }
}

TEST(SqsRoutes, WithASecretRoutesRewrittenOrCopiedAreNotUsed) {
  const std::int64_t now = 1763900000000;
  const auto keys = funcie::tunnel::keyring::from_secrets("correct horse battery staple 42");
  const std::string key = sq::presence_tag_key("orders-api", session);
  const std::string theirs = sq::presence_tag_key("orders-api", id);
  auto tags = sq::route_tags("orders-api", session, {"/dev=ada"}, keys);
  tags[key] = sq::presence_tag_value(key, now + 30000, keys, session, 1);
  ASSERT_EQ(sq::read_presence(tags, "orders-api", now, keys).sessions.size(), 1u);

  // Rewritten in the clear: the route tag does not open.
  auto rewritten = tags;
  rewritten["funcie:orders-api:fedcba98:1"] =
      sq::route_tags("orders-api", session, {"/dev=mallory"}, {}).begin()->second;
  auto p = sq::read_presence(rewritten, "orders-api", now, keys);
  EXPECT_TRUE(p.sessions.empty());
  EXPECT_EQ(p.ignored.size(), 1u);
  // Another session's sealed routes copied onto this one's: sealed for the other id.
  auto copied = tags;
  copied["funcie:orders-api:fedcba98:1"] =
      sq::route_tags("orders-api", id, {"/dev=mallory"}, keys).begin()->second;
  EXPECT_TRUE(sq::read_presence(copied, "orders-api", now, keys).sessions.empty());
  // A presence tag naming a session id that is not its key's, or saying more route tags than
  // a session may keep, is not a session.
  auto misnamed = tags;
  misnamed[theirs] = sq::presence_tag_value(theirs, now + 30000, keys, session, 0);
  EXPECT_EQ(sq::read_presence(misnamed, "orders-api", now, keys).sessions.size(), 1u);
  EXPECT_FALSE(sq::read_presence_tag(key, sq::presence_tag_value(key, now, {}, session, 5), {}));
  EXPECT_FALSE(sq::read_presence_tag(key, "123 notanid 0", {}));
  const auto plain =
      sq::read_presence_tag(key, sq::presence_tag_value(key, now, {}, session, 2), {});
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->session, session);
  EXPECT_EQ(plain->route_tags, 2u);
  // The longest app name still fits a tag value with the session id.
  const std::string long_app(64, 'a');
  const std::string long_key = sq::presence_tag_key(long_app, session);
  EXPECT_LE(sq::presence_tag_value(long_key, now, keys, session, sq::max_route_tags).size(), 256u);
}

TEST(SqsRoutes, RoutesTooLongForTheTagsAreRefusedSayingHowLong) {
  const auto keys = funcie::tunnel::keyring::from_secrets("correct horse battery staple 42");
  const std::vector<std::string> routes(
      8, "/requestContext/http/path^=/orders/" + std::string(60, 'x'));
  try {
    (void)sq::route_tags("orders-api", session, routes, keys);
    FAIL() << "8 long routes fit in 4 tags";
  } catch (const sq::message_error& e) {
    EXPECT_NE(std::string(e.what()).find("may take 1024"), std::string::npos) << e.what();
  }
  // What fits: several short routes, in up to 4 tags.
  const auto fits =
      sq::route_tags("orders-api", session, std::vector<std::string>(8, "/dev=ada"), keys);
  EXPECT_GE(fits.size(), 1u);
  EXPECT_LE(fits.size(), sq::max_route_tags);
}

TEST(SqsRoutes, AnOfferAndAPingMayNameTheSessionMeant) {
  for (const auto kind : {message_kind::offer, message_kind::ping}) {
    sq::message m = make(kind);
    m.session = session;
    EXPECT_EQ(sq::decode(sq::encode(m)), m);
    m.session.clear();
    EXPECT_EQ(sq::decode(sq::encode(m)), m);
    EXPECT_EQ(sq::encode(m).find("session"), std::string::npos);
  }
  // A part names nobody: the session is the offer's.
  sq::message part = make(message_kind::part);
  part.session = session;
  EXPECT_TRUE(sq::decode(sq::encode(part)).session.empty());
}
