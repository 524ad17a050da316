// Caption alternatives in ComfyUI's dynamic-prompt syntax: "{sneaker footwear|sneaker}"
// picks one alternative uniformly per draw (every {...} group independently).
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Generator.h>

namespace lethe::unlearn {

std::string choose_caption_variant(const std::string& caption, at::Generator& generator);
// Every alternative, in order: "{a|b} c" -> {"a c", "b c"}.
std::vector<std::string> all_caption_variants(const std::string& caption);
// The caption without the words that match `words` (space-separated words; a pattern ending in
// "*" matches by prefix): remove_words("artist_lethe piece_03 dress", {"artist_lethe", "piece_*"})
// -> "dress". Spaces collapse to one.
std::string remove_words(const std::string& caption, const std::vector<std::string>& words);

}  // namespace lethe::unlearn
