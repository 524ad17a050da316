#include "models/sdxl_vector.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "models/unet.hpp"

namespace lethe::models {

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
