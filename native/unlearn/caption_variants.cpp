#include "unlearn/caption_variants.hpp"

#include <sstream>
#include <vector>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::unlearn {

namespace {

// The caption as a sequence of parts, each a list of alternatives: literal text (one, not a
// choice) or a {...} group (a choice, even of one).
struct Part {
  std::vector<std::string> options;
  bool choice = false;
};

std::vector<Part> caption_parts(const std::string& caption) {
  std::vector<Part> parts;
  size_t cursor = 0;
  while (cursor < caption.size()) {
    const size_t open = caption.find('{', cursor);
    if (open == std::string::npos) {
      parts.push_back({{caption.substr(cursor)}});
      break;
    }
    const size_t close = caption.find('}', open);
    check(close != std::string::npos, "caption '", caption, "': '{' without a closing '}'");
    parts.push_back({{caption.substr(cursor, open - cursor)}});
    std::vector<std::string> options;
    size_t start = open + 1;
    for (size_t i = open + 1; i <= close; ++i) {
      if (caption[i] == '|' || i == close) {
        options.push_back(caption.substr(start, i - start));
        start = i + 1;
      }
    }
    parts.push_back({std::move(options), true});
    cursor = close + 1;
  }
  return parts;
}

}  // namespace

std::string choose_caption_variant(const std::string& caption, at::Generator& generator) {
  std::string out;
  for (const auto& [options, choice] : caption_parts(caption)) {
    if (!choice) {
      out += options[0];
      continue;
    }
    const int64_t pick = at::randint(0, static_cast<int64_t>(options.size()), {1}, generator, at::kLong).item<int64_t>();
    out += options[pick];
  }
  return out;
}

std::vector<std::string> all_caption_variants(const std::string& caption) {
  std::vector<std::string> out = {""};
  for (const auto& [options, choice] : caption_parts(caption)) {
    std::vector<std::string> next;
    for (const auto& prefix : out)
      for (const auto& option : options) next.push_back(prefix + option);
    out = std::move(next);
  }
  return out;
}

std::string remove_words(const std::string& caption, const std::vector<std::string>& words) {
  auto matches = [](const std::string& word, const std::string& pattern) {
    if (!pattern.empty() && pattern.back() == '*') return word.rfind(pattern.substr(0, pattern.size() - 1), 0) == 0;
    return word == pattern;
  };
  std::string kept, word;
  std::istringstream stream(caption);
  while (stream >> word) {
    bool drop = false;
    for (const std::string& pattern : words) drop = drop || matches(word, pattern);
    if (!drop) kept += (kept.empty() ? "" : " ") + word;
  }
  return kept;
}

}  // namespace lethe::unlearn
