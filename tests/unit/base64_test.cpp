// util/base64: RFC 4648's vectors, every length and byte value against OpenSSL's encoder as
// the reference, and what the decoder refuses.
#include "util/base64.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <random>
#include <string>

namespace funcie::util {
namespace {

std::string openssl_base64(const std::string& bytes) {
  std::string out(base64_size(bytes.size()) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(to_base64(plain), encoded);
    EXPECT_EQ(from_base64(encoded, true), std::string(plain));
  }
}

TEST(Base64, MatchesOpenSslForEveryLengthAndByte) {
  std::mt19937 random(17);
  for (std::size_t size = 0; size < 300; ++size) {
    std::string bytes(size, '\0');
    for (auto& b : bytes) b = static_cast<char>(random() & 0xFF);
    const std::string encoded = to_base64(bytes);
    ASSERT_EQ(encoded, openssl_base64(bytes)) << "size " << size;
    ASSERT_EQ(from_base64(encoded, true), bytes) << "size " << size;
  }
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(from_base64(to_base64(all)), all);
}

TEST(Base64, AppendsAfterWhatIsThere) {
  std::string out = "x:";
  append_base64(out, "foo");
  EXPECT_EQ(out, "x:Zm9v");
  EXPECT_TRUE(append_from_base64(out, "YmFy"));
  EXPECT_EQ(out, "x:Zm9vbar");
}

TEST(Base64, RefusesWhatIsNotBase64AndLeavesTheOutputAlone) {
  for (const char* bad : {"Zg=", "Zm9v\n", "Zm 9", "Z===", "====", "Zm=v", "Zg==Zg==", "Zm9*"}) {
    std::string out = "kept";
    EXPECT_FALSE(append_from_base64(out, bad)) << bad;
    EXPECT_EQ(out, "kept") << bad;
  }
}

TEST(Base64, CanonicalRefusesNonZeroUnusedBits) {
  EXPECT_EQ(from_base64("Zh=="), std::string("f"));  // the unused bits are not all zero
  EXPECT_EQ(from_base64("Zh==", true), std::nullopt);
  EXPECT_EQ(from_base64("Zm9=", true), std::nullopt);
  EXPECT_EQ(from_base64("Zm8=", true), std::string("fo"));
}

}  // namespace
}  // namespace funcie::util
