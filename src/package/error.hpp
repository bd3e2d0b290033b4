// What goes wrong while packaging: one message for the person who ran `funcie package`.
#pragma once

#include <stdexcept>

namespace funcie::package {

class package_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace funcie::package
