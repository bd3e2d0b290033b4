// What a user can fix: a flag, a project file, a variable, a secret file, a backend URL.
// Each module's error of that sort derives from this one type, so that a command catches it
// once, prints its message on one line and exits 2 (docs/errors.md, rule 6).
#pragma once

#include <stdexcept>

namespace funcie::util {

class user_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace funcie::util
