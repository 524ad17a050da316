// Training examples as objectives consume them: images in model space (pixels in [-1, 1]
// for the embedded model, VAE latents for Stable Diffusion), spatial masks, and either
// captions (models with Lethe's token encoder) or precomputed conditioning (prompts the host
// encoded, e.g. ComfyUI CONDITIONING: contexts, and for SDXL pooled outputs and sizes).
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/image_folder.hpp"
#include "models/conditioning.hpp"

namespace lethe::unlearn {

struct ExampleBatch {
  at::Tensor images;                  // [B, C, H, W]
  at::Tensor masks;                   // [B, 1, H, W] in [0, 1]
  std::vector<std::string> captions;  // B captions, or empty when `conditioning` is set
  models::Conditioning conditioning;  // B rows, or undefined
  int64_t size() const { return images.size(0); }
};

struct ExampleSet {
  std::string name;                   // "forget set", "retain set", ... (for messages)
  at::Tensor images;                  // [N, C, H, W]
  at::Tensor masks;                   // [N, 1, H, W]; ones where there is no mask
  std::vector<std::string> captions;  // N captions or empty
  models::Conditioning conditioning;  // N rows, 1 row (shared) or undefined
  // With conditioning: the empty prompt's (1 row, parts as `conditioning`: what caption
  // dropout trains), or undefined.
  models::Conditioning empty_conditioning;
  std::vector<std::string> names;     // image file names (for messages), or empty
  // Images without a caption train the empty caption only when this is set explicitly;
  // otherwise a missing caption is an error wherever the set is trained.
  bool captions_optional = false;

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  bool empty() const { return size() == 0; }
  // Rows `indices` as a batch (conditioning broadcast when shared).
  ExampleBatch batch(const std::vector<int64_t>& indices) const;
  // Rows `indices` as a set of their own called `subset_name` (names and caption rule kept).
  ExampleSet subset(const std::vector<int64_t>& indices, const std::string& subset_name) const;
  // Checks shapes agree; errors name the set.
  void validate() const;
  // Checks that every image has a caption unless captions_optional (sets with conditioning need
  // none); the error names the set, how many lack one and the first file.
  void check_captions() const;
};

// Images loaded from a folder (pixels in [0, 1]) as a set in model space [-1, 1], with their
// masks, captions and file names; `name` is the set's name in messages.
ExampleSet example_set_from_images(const data::ImageSet& images, const std::string& name);

// Masks that keep every pixel, for `count` examples of height x width: a [count, 1, height,
// width] expanded view of one plane of ones, so a large set's masks cost no memory.
at::Tensor full_masks(int64_t count, int64_t height, int64_t width);

// Spatial masks for `count` examples of height x width from a ComfyUI MASK [B or 1, H, W]
// (or [H, W]), 1 = forget. H x W is height x width or a whole multiple of it (an image-size
// mask for latents: each cell averages its block). -> [count, 1, height, width]
at::Tensor spatial_masks(const at::Tensor& mask, int64_t count, int64_t height, int64_t width, const std::string& where);

}  // namespace lethe::unlearn
