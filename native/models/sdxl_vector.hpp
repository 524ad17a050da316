// SDXL's vector conditioning y, the input of the UNet's label_emb: the pooled text embedding
// followed by the sinusoidal embeddings of six sizes (LDM/sgm's "vector" conditioner, ComfyUI's
// SDXL.encode_adm, diffusers' text_embeds + add_time_proj(time_ids)).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace lethe::models {

// The sizes, in this order: original height, original width, crop top, crop left, target
// height, target width (pixels).
inline constexpr int64_t kSdxlSizeCount = 6;
inline constexpr int64_t kSdxlSizeEmbeddingDim = 256;

// sizes [B, 6] with NaN where a prompt gave no value -> [B, 6] as ComfyUI completes them for an
// image of height x width pixels (samplers' encode_model_conds, then SDXL.encode_adm): height
// and width default to the image's, crops to 0, target height and width to the (completed)
// height and width.
at::Tensor complete_sdxl_sizes(const at::Tensor& sizes, double height, double width);

// pooled [B, P], sizes [B, 6] -> y [B, P + 6 dim]: each size through
// timestep_embedding(size, dim), concatenated after the pooled embedding.
at::Tensor sdxl_vector(const at::Tensor& pooled, const at::Tensor& sizes, int64_t size_embedding_dim = kSdxlSizeEmbeddingDim);

}  // namespace lethe::models
