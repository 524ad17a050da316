#include "unlearn/caption_variants.hpp"

#include <vector>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::unlearn {

std::string choose_caption_variant(const std::string& caption, at::Generator& generator) {
  std::string out;
  size_t cursor = 0;
  while (cursor < caption.size()) {
    const size_t open = caption.find('{', cursor);
    if (open == std::string::npos) {
      out += caption.substr(cursor);
      break;
    }
    const size_t close = caption.find('}', open);
    check(close != std::string::npos, "caption '", caption, "': '{' without a closing '}'");
    out += caption.substr(cursor, open - cursor);
    std::vector<std::string> options;
    size_t start = open + 1;
    for (size_t i = open + 1; i <= close; ++i) {
      if (caption[i] == '|' || i == close) {
        options.push_back(caption.substr(start, i - start));
        start = i + 1;
      }
    }
    const int64_t pick = at::randint(0, static_cast<int64_t>(options.size()), {1}, generator, at::kLong).item<int64_t>();
    out += options[pick];
    cursor = close + 1;
  }
  return out;
}

}  // namespace lethe::unlearn
