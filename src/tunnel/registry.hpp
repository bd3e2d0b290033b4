// Backends by kind. The tunnel knows no concrete backend: each backend folder describes its
// kind (the URL schemes it serves, how it checks a URL, how it makes its two ends and lists
// its consumers), and src/backend/kinds.cpp lists the kinds this build carries. Adding a
// backend adds a folder and one line there.
#pragma once

#include "tunnel/backend.hpp"

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace funcie::tunnel {

struct backend_kind {
  std::string_view name;                  ///< "Redis", "SQS": for messages
  std::vector<std::string_view> schemes;  ///< Lower case, without "://"
  /// Checks the whole URL's form before any I/O; throws backend_config_error whose message
  /// never holds a password.
  void (*check_url)(std::string_view url);
  /// The URL with any password hidden; null: the generic rule (user:****@host).
  std::string (*redact_url)(std::string_view url) = nullptr;
  std::unique_ptr<forwarder_backend> (*make_forwarder)(boost::asio::any_io_executor executor,
                                                       const backend_options& options);
  std::unique_ptr<consumer_session> (*make_session)(boost::asio::any_io_executor executor,
                                                    const backend_options& options);
  boost::asio::awaitable<std::vector<consumer_info>> (*list_consumers)(
      boost::asio::any_io_executor executor, const backend_options& options);
};

/// The kinds this build carries, in the order error messages list their schemes. Defined
/// by src/backend/kinds.cpp.
std::span<const backend_kind* const> backend_kinds();

}  // namespace funcie::tunnel
