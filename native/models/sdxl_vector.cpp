#include "models/sdxl_vector.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "models/unet.hpp"

namespace lethe::models {

at::Tensor complete_sdxl_sizes(const at::Tensor& sizes, double height, double width) {
  check(sizes.defined() && sizes.dim() == 2 && sizes.size(1) == kSdxlSizeCount, "SDXL sizes: expected [B, ",
        kSdxlSizeCount, "], got ", sizes.defined() ? str(sizes.sizes()) : std::string("none"));
  at::Tensor out = sizes.to(at::kDouble).clone();  // [B, 6]
  auto fill = [&](int64_t column, const at::Tensor& value) {
    at::Tensor col = out.select(1, column);
    col.copy_(at::where(col.isnan(), value, col));
  };
  fill(0, at::full_like(out.select(1, 0), height));
  fill(1, at::full_like(out.select(1, 1), width));
  fill(2, at::zeros_like(out.select(1, 2)));
  fill(3, at::zeros_like(out.select(1, 3)));
  fill(4, out.select(1, 0).clone());
  fill(5, out.select(1, 1).clone());
  return out.to(at::kFloat);
}

at::Tensor sdxl_vector(const at::Tensor& pooled, const at::Tensor& sizes, int64_t size_embedding_dim) {
  check(pooled.defined() && pooled.dim() == 2, "SDXL vector: expected the pooled text embedding [B, P], got ",
        pooled.defined() ? str(pooled.sizes()) : std::string("none"));
  check(sizes.defined() && sizes.dim() == 2 && sizes.size(0) == pooled.size(0) && sizes.size(1) == kSdxlSizeCount,
        "SDXL vector: expected sizes [", pooled.size(0), ", ", kSdxlSizeCount,
        "] (height, width, crop top, crop left, target height, target width), got ",
        sizes.defined() ? str(sizes.sizes()) : std::string("none"));
  check(size_embedding_dim > 0 && size_embedding_dim % 2 == 0, "SDXL vector: the size embedding width must be even and > 0, got ",
        size_embedding_dim);
  const int64_t batch = pooled.size(0);
  at::Tensor embedded = timestep_embedding(sizes.reshape({-1}), size_embedding_dim);  // [6 B, dim]
  embedded = embedded.reshape({batch, kSdxlSizeCount * size_embedding_dim});          // [B, 6 dim]
  return at::cat({pooled.to(at::kFloat), embedded.to(pooled.device())}, 1);          // [B, P + 6 dim]
}

}  // namespace lethe::models
