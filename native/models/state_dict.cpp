#include "models/state_dict.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "models/unet_config.hpp"

namespace lethe::models {

TensorMap state_dict(const torch::nn::Module& module, const std::string& prefix) {
  TensorMap out;
  for (const auto& item : module.named_parameters()) out[prefix + item.key()] = item.value().detach();
  for (const auto& item : module.named_buffers()) out[prefix + item.key()] = item.value().detach();
  return out;
}

void load_state_dict_strict(torch::nn::Module& module, const TensorMap& tensors, const std::string& where) {
  ShapeTable expected, got;
  TensorMap targets = state_dict(module);
  for (const auto& [key, tensor] : targets) expected[key] = tensor.sizes().vec();
  for (const auto& [key, tensor] : tensors) got[key] = tensor.sizes().vec();
  check_shape_table(expected, got, where);
  at::NoGradGuard no_grad;
  for (auto& [key, target] : targets) target.copy_(tensors.at(key));
}

void share_state_dict_strict(torch::nn::Module& module, const TensorMap& tensors, const std::string& where) {
  ShapeTable expected, got;
  for (const auto& [key, tensor] : state_dict(module)) expected[key] = tensor.sizes().vec();
  for (const auto& [key, tensor] : tensors) got[key] = tensor.sizes().vec();
  check_shape_table(expected, got, where);
  at::NoGradGuard no_grad;
  // The module's own handles (state_dict gives detached views, whose set_data would not reach it).
  for (auto& item : module.named_parameters(/*recurse=*/true)) item.value().set_data(tensors.at(item.key()));
  for (auto& item : module.named_buffers(/*recurse=*/true)) item.value().set_data(tensors.at(item.key()));
}

TensorMap strip_prefix(const TensorMap& tensors, const std::string& prefix) {
  TensorMap out;
  for (const auto& [key, tensor] : tensors)
    if (key.compare(0, prefix.size(), prefix) == 0) out[key.substr(prefix.size())] = tensor;
  return out;
}

}  // namespace lethe::models
