// Strict state-dict transfer between modules and tensor maps: a missing key, an extra key
// or a shape mismatch is an error that names the key (and both shapes). Nothing loads
// "mostly".
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

namespace lethe::models {

using TensorMap = std::map<std::string, at::Tensor>;

// Parameters and buffers of `module` by checkpoint key (detached views, not copies).
TensorMap state_dict(const torch::nn::Module& module, const std::string& prefix = "");

// Copies `tensors` into `module` (converting dtype and device to the module's). Every
// parameter and buffer must be present with the same shape, and no other key may be.
// `where` names the source in error messages.
void load_state_dict_strict(torch::nn::Module& module, const TensorMap& tensors, const std::string& where);

// Makes every parameter and buffer of `module` use the storage of the one in `tensors` under its
// key (no copy: both see later in-place changes; dtype and device become the source's), with
// load_state_dict_strict's key and shape checks. What `module` held before is released.
void share_state_dict_strict(torch::nn::Module& module, const TensorMap& tensors, const std::string& where);

// The entries of `tensors` whose key starts with `prefix`, with the prefix removed.
TensorMap strip_prefix(const TensorMap& tensors, const std::string& prefix);

}  // namespace lethe::models
