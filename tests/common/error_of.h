// The message of the std::runtime_error that f() throws, or "<no error>" when it returns: the
// tests' way to check what a parser or loader says about bad input.
#pragma once
#include <stdexcept>
#include <string>

namespace ressa::test {

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace ressa::test
