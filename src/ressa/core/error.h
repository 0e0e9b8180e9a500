// Error helpers: the library never exits or prints; it throws with "[where] what" messages.
// std::invalid_argument = bad options/shapes (usage, exit 2 in the CLI);
// std::runtime_error    = I/O, corrupt files, numerical failure (exit 1 in the CLI).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace ressa {

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// Thrown for corrupt or unreadable input files and runtime failures.
template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw std::runtime_error(detail::concat(std::forward<Args>(args)...));
}

// Thrown for invalid options, flags and shapes given by the caller.
template <typename... Args>
[[noreturn]] void fail_arg(Args&&... args) {
  throw std::invalid_argument(detail::concat(std::forward<Args>(args)...));
}

}  // namespace ressa

// RESSA_CHECK(cond, "[fn] message ", value, ...) -> std::runtime_error when cond is false.
#define RESSA_CHECK(cond, ...)           \
  do {                                   \
    if (!(cond)) ::ressa::fail(__VA_ARGS__); \
  } while (0)
// RESSA_CHECK_ARG(cond, ...) -> std::invalid_argument when cond is false.
#define RESSA_CHECK_ARG(cond, ...)           \
  do {                                       \
    if (!(cond)) ::ressa::fail_arg(__VA_ARGS__); \
  } while (0)
