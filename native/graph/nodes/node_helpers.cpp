#include "graph/nodes/node_helpers.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "models/sdxl_vector.hpp"

namespace lethe::graph::nodes {

at::Tensor to_comfy_image(const at::Tensor& pixels) {
  check(pixels.dim() == 4 && (pixels.size(1) == 1 || pixels.size(1) == 3), "expected pixels [B, 1 or 3, H, W], got ",
        pixels.sizes());
  return pixels.detach().to(at::kCPU, at::kFloat).clamp(0, 1).expand({-1, 3, -1, -1}).permute({0, 2, 3, 1}).contiguous();
}

at::Tensor from_comfy_image(const at::Tensor& image, int64_t channels, const std::string& where) {
  check(image.dim() == 4 && (image.size(3) == 1 || image.size(3) == 3 || image.size(3) == 4), where,
        ": expected an IMAGE [B, H, W, C] with C in {1, 3, 4}, got ", image.sizes());
  at::Tensor x = image.to(at::kFloat).narrow(3, 0, std::min<int64_t>(image.size(3), 3)).permute({0, 3, 1, 2});  // [B, C, H, W]
  if (channels == 1 && x.size(1) == 3)
    x = (0.299 * x.select(1, 0) + 0.587 * x.select(1, 1) + 0.114 * x.select(1, 2)).unsqueeze(1);
  if (channels == 3 && x.size(1) == 1) x = x.expand({-1, 3, -1, -1});
  return x.contiguous();
}

Value dataset_value(unlearn::ExampleSet set) {
  return Value(graph::types::kDataset, std::make_shared<unlearn::ExampleSet>(std::move(set)));
}

Value image_value(const at::Tensor& pixels) { return Value::tensor(graph::types::kImage, to_comfy_image(pixels)); }

Value json_value(const std::string& type, nlohmann::json value) { return Value::json(type, std::move(value)); }

models::Conditioning host_conditioning(const NodeInputs& in, const std::string& name, double height, double width) {
  models::Conditioning conditioning = in.object<models::Conditioning>(name).to_float();
  conditioning.validate(in.where(name));
  if (conditioning.has_vector()) conditioning.sizes = models::complete_sdxl_sizes(conditioning.sizes, height, width);
  return conditioning;
}

}  // namespace lethe::graph::nodes
