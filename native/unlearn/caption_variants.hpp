// Caption alternatives in ComfyUI's dynamic-prompt syntax: "{sneaker footwear|sneaker}"
// picks one alternative uniformly per draw (every {...} group independently).
#pragma once

#include <string>

#include <ATen/core/Generator.h>

namespace lethe::unlearn {

std::string choose_caption_variant(const std::string& caption, at::Generator& generator);

}  // namespace lethe::unlearn
