#pragma once

#include <exception>
#include "redis/connection.hpp"

namespace funcie::redis_backend {

/// What a refusal of AUTH or SELECT adds to its message: the URL is wrong, not the broker away.
inline constexpr const char* refused_hint =
    "; check the user, password and database number in the backend URL "
    "(redis://user:password@host:port/db)";

/// True when `e` is the server refusing AUTH or SELECT (the URL's credentials or database).
inline bool refused_by_server(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const redis::error& error) {
    return error.code() == redis::errc::auth_failed;
  } catch (...) {
  }
  return false;
}

}  // namespace funcie::redis_backend
