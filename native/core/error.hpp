// lethe::Error and the helpers that build its messages.
//
// Every user-facing failure in the core is a lethe::Error whose message says what was
// wrong, where (file, node, field), what was expected and what was got, e.g.
//   forget set 'art/': image 'b.png' is 64x48, expected 32x32 (set resize=true to resize)
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace lethe {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Raised when a progress callback asks the running job to stop (user cancel).
class Cancelled : public Error {
 public:
  explicit Cancelled(const std::string& message) : Error(message) {}
};

// Concatenates any streamable values: str("step ", 3, " of ", 10).
template <typename... Parts>
std::string str(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

// Throws lethe::Error(str(parts...)) when `condition` is false.
template <typename... Parts>
inline void check(bool condition, Parts&&... parts) {
  if (!condition) throw Error(str(std::forward<Parts>(parts)...));
}

// Joins a sequence of strings with a separator ("a, b, c").
template <typename Range>
std::string join(const Range& items, const std::string& separator = ", ") {
  std::string out;
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += separator;
    out += item;
    first = false;
  }
  return out;
}

}  // namespace lethe
