// Sets or unsets one variable of the test process for a scope and puts back what was there:
// runtimes the tests start inherit some variables (the developer's AWS settings), so none
// may leak from one test into another.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace funcie::test {

class scoped_env {
 public:
  /// `value` nullptr: the variable is unset for the scope.
  scoped_env(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~scoped_env() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace funcie::test
