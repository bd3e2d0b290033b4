// funcie secret: makes a shared secret for sealing the tunnel (docs/security.md), or shows the
// key ids of the secret a side holds, so that two sides can be compared without showing it.
#include "cli/command.hpp"
#include "crypto/crypto.hpp"
#include "tunnel/secrets.hpp"
#include "util/base64.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

namespace funcie::cli {

namespace {

/// Bytes of randomness in a secret `funcie secret` makes (44 characters of base64).
constexpr std::size_t new_secret_bytes = 32;

int print_new_secret() {
  std::array<unsigned char, new_secret_bytes> bytes{};
  try {
    crypto::random_bytes(bytes.data(), bytes.size());
  } catch (const crypto::crypto_error& e) {
    fmt::print(stderr, "funcie secret: {}\n", e.what());
    return exit_failure;
  }
  std::string text =
      util::to_base64(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  crypto::wipe(bytes.data(), bytes.size());
  text.push_back('\n');
  const bool written =
      std::fwrite(text.data(), 1, text.size(), stdout) == text.size() && std::fflush(stdout) == 0;
  crypto::wipe(text.data(), text.size());
  if (!written) {
    fmt::print(stderr, "funcie secret: could not write the secret to standard output\n");
    return exit_failure;
  }
  return exit_ok;
}

int print_key_ids(const std::string& secret_file) {
  tunnel::keyring keys;
  try {
    keys =
        tunnel::load_keyring(secret_file, true, [](const char* name) { return std::getenv(name); });
  } catch (const tunnel::secret_error& e) {
    fmt::print(stderr, "funcie secret: {}\n", e.what());
    return exit_failure;
  }
  if (!keys.enabled()) {
    fmt::print(stderr,
               "funcie secret: no secret to show the key id of: give --secret-file PATH or set "
               "FUNCIE_SECRET\n");
    return exit_usage;
  }
  for (const auto& id : keys.key_ids()) fmt::print("{}\n", id);
  return exit_ok;
}

}  // namespace

command add_secret(CLI::App& app) {
  struct options {
    bool key_id = false;
    std::string secret_file;
  };
  auto o = std::make_shared<options>();
  auto* sub = app.add_subcommand(
      "secret",
      "Prints a new shared secret (32 random bytes, base64) for FUNCIE_SECRET and --secret-file; "
      "with --key-id, the key ids of the secret held instead (never the secret)");
  sub->add_flag("--key-id", o->key_id,
                "Print the key id of the secret (--secret-file, else FUNCIE_SECRET), then that of "
                "the previous one (second line of the file, or FUNCIE_SECRET_PREVIOUS) if any: one "
                "per line, to compare two sides");
  sub->add_option("--secret-file", o->secret_file,
                  "With --key-id: the secret file (first line current, second previous)");

  return {sub, [o]() -> int {
            return run_guarded("secret", [&]() -> int {
              if (!o->key_id) {
                if (!o->secret_file.empty()) {
                  fmt::print(stderr,
                             "funcie secret: --secret-file goes with --key-id (funcie secret "
                             "--key-id --secret-file PATH); `funcie secret` alone makes a new "
                             "secret\n");
                  return exit_usage;
                }
                return print_new_secret();
              }
              return print_key_ids(o->secret_file);
            });
          }};
}

}  // namespace funcie::cli
