// Where each side's shared secret comes from (docs/security.md): a secret file, or
// FUNCIE_SECRET and FUNCIE_SECRET_PREVIOUS. Reads files and the environment; the sealing
// itself is tunnel/seal.hpp (pure).
#pragma once

#include "tunnel/seal.hpp"

#include <functional>
#include <string_view>

namespace funcie::tunnel {

using getenv_function = std::function<const char*(const char*)>;

/// The keyring of one side: from `secret_file` when it is not empty (first line current,
/// second previous), else from FUNCIE_SECRET (and FUNCIE_SECRET_PREVIOUS) through `getenv`;
/// an empty keyring when neither is set. Throws secret_error naming the file or the variable
/// and what to do, never the secret.
keyring load_keyring(std::string_view secret_file, bool encrypt, const getenv_function& getenv);

/// The one line a side logs at start about its keyring: the key id in use, or, without a
/// secret, the warning that the broker can read and forge messages. `side` names the
/// process in the line ("funcie connect", "funcie wrap"); `how_to_set` is the advice
/// ("set FUNCIE_SECRET in the function").
void log_keyring(const keyring& keys, std::string_view side, std::string_view how_to_set);

}  // namespace funcie::tunnel
