#include "tunnel/secrets.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace funcie::tunnel {

namespace {

std::string variable(const getenv_function& getenv, const char* name) {
  const char* value = getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

}  // namespace

keyring load_keyring(std::string_view secret_file, bool encrypt, const getenv_function& getenv) {
  if (!secret_file.empty()) {
    const std::string path(secret_file);
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      throw secret_error(
          fmt::format("the secret file '{}' cannot be read ({}): give the file "
                      "`funcie secret` wrote, readable by this user",
                      path, std::strerror(errno)));
    }
    std::ostringstream contents;
    contents << in.rdbuf();
    if (in.bad()) {
      throw secret_error(fmt::format("the secret file '{}' cannot be read", path));
    }
    return keyring::from_file_contents(contents.str(), path, encrypt);
  }
  const std::string current = variable(getenv, "FUNCIE_SECRET");
  const std::string previous = variable(getenv, "FUNCIE_SECRET_PREVIOUS");
  if (current.empty()) {
    if (!previous.empty()) {
      throw secret_error(
          "FUNCIE_SECRET_PREVIOUS is set but FUNCIE_SECRET is not: the previous secret is "
          "only accepted next to the current one (docs/security.md, Rotation)");
    }
    return keyring();
  }
  try {
    return keyring::from_secrets(current, previous, encrypt);
  } catch (const secret_error& e) {
    throw secret_error(fmt::format("FUNCIE_SECRET: {}", e.what()));
  }
}

void log_keyring(const keyring& keys, std::string_view side, std::string_view how_to_set) {
  if (!keys.enabled()) {
    spdlog::warn(
        "{}: no shared secret, so tunnel messages are neither encrypted nor authenticated and "
        "anyone with access to the broker can read events and forge answers: {} "
        "(docs/security.md)",
        side, how_to_set);
    return;
  }
  const auto ids = keys.key_ids();
  spdlog::info("{}: tunnel messages {} with key {}{}", side,
               keys.encrypts() ? "encrypted and authenticated" : "authenticated (not encrypted)",
               ids.front(), ids.size() > 1 ? fmt::format(" (also accepting {})", ids[1]) : "");
}

}  // namespace funcie::tunnel
