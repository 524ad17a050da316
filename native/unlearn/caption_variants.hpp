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

}  // namespace lethe::unlearn
