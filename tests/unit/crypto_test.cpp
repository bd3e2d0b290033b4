// The primitives of src/crypto against published vectors (FIPS 180-2, RFC 1321, RFC 4231,
// RFC 5869, the GCM specification's test case 16), the same bytes OpenSSL gives: frames
// sealed by a funcie on either library open on the other.
#include "crypto/crypto.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <string>

namespace funcie::crypto {
namespace {

std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

template <typename Bytes>
std::string hex_of(const Bytes& bytes) {
  return to_hex(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

TEST(Crypto, HashesMatchThePublishedVectors) {
  EXPECT_EQ(hex_of(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex_of(md5("abc")), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(hex_of(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Crypto, HkdfMatchesRfc5869CaseOne) {
  std::string out(42, '\0');
  hkdf_sha256(std::string(22, '\x0b'), from_hex("000102030405060708090a0b0c"),
              from_hex("f0f1f2f3f4f5f6f7f8f9"), reinterpret_cast<unsigned char*>(out.data()),
              out.size());
  EXPECT_EQ(hex_of(out),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

TEST(Crypto, AesGcmMatchesTestCase16InOneCallOrInBlocks) {
  const std::string key_text =
      from_hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
  std::array<unsigned char, 32> key{};
  std::copy(key_text.begin(), key_text.end(), key.begin());
  const std::string nonce = from_hex("cafebabefacedbaddecaf888");
  const std::string aad = from_hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  const std::string plain = from_hex(
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
      "49a6b525b16aedf5aa0de657ba637b39");
  const std::string sealed =
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10"
      "56828838c5f61e6393ba7a0abcc9f662";
  const std::string tag = "76fc6ece0f4e1768cddf8853bb2d551b";
  const auto* n = reinterpret_cast<const unsigned char*>(nonce.data());
  for (const std::size_t step : {plain.size(), std::size_t{16}, std::size_t{32}}) {
    aes_256_gcm c(key, n, true, aad);
    std::string out(plain.size(), '\0');
    for (std::size_t done = 0; done < plain.size(); done += step) {
      const std::size_t size = std::min(step, plain.size() - done);
      c.update(reinterpret_cast<const unsigned char*>(plain.data()) + done,
               reinterpret_cast<unsigned char*>(out.data()) + done, size);
    }
    std::array<unsigned char, 16> t{};
    c.seal_final(t.data());
    EXPECT_EQ(hex_of(out), sealed) << "step " << step;
    EXPECT_EQ(hex_of(t), tag) << "step " << step;
  }

  std::string data = from_hex(sealed);
  auto* d = reinterpret_cast<unsigned char*>(data.data());
  std::string good_tag = from_hex(tag);
  {
    aes_256_gcm c(key, n, false, aad);
    c.update(d, d, data.size());  // in place
    EXPECT_TRUE(c.open_final(reinterpret_cast<const unsigned char*>(good_tag.data())));
    EXPECT_EQ(data, plain);
  }
  std::string bad_tag = good_tag;
  bad_tag[15] = static_cast<char>(bad_tag[15] ^ 1);
  data = from_hex(sealed);
  d = reinterpret_cast<unsigned char*>(data.data());
  aes_256_gcm c(key, n, false, aad);
  c.update(d, d, data.size());
  EXPECT_FALSE(c.open_final(reinterpret_cast<const unsigned char*>(bad_tag.data())));
}

TEST(Crypto, RandomBytesDiffer) {
  std::array<unsigned char, 32> a{}, b{};
  random_bytes(a.data(), a.size());
  random_bytes(b.data(), b.size());
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace funcie::crypto
