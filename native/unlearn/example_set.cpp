#include "unlearn/example_set.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "data/image.hpp"

namespace lethe::unlearn {

void ExampleSet::validate() const {
  check(images.defined() && images.dim() == 4 && images.size(0) > 0, name, ": expected images [N, C, H, W] with N > 0, got ",
        images.defined() ? images.sizes() : at::IntArrayRef{});
  const int64_t n = images.size(0);
  check(masks.defined() && masks.dim() == 4 && masks.size(0) == n && masks.size(1) == 1 &&
            masks.size(2) == images.size(2) && masks.size(3) == images.size(3),
        name, ": masks must be [", n, ", 1, ", images.size(2), ", ", images.size(3), "], got ",
        masks.defined() ? masks.sizes() : at::IntArrayRef{});
  check(captions.empty() || static_cast<int64_t>(captions.size()) == n, name, ": ", captions.size(),
        " captions for ", n, " images");
  check(!captions.empty() || conditioning.defined(), name, ": needs captions or conditioning");
  if (conditioning.defined()) {
    conditioning.validate(name);
    const at::Tensor& contexts = conditioning.context;
    check(contexts.size(0) == n || contexts.size(0) == 1, name, ": contexts must be [", n, ", L, D] or [1, L, D], got ",
          contexts.sizes());
  }
  if (!empty_conditioning.defined()) return;
  check(conditioning.defined(), name, ": has the empty prompt's conditioning but no conditioning");
  empty_conditioning.validate(name + " (empty prompt)");
  const at::Tensor& contexts = conditioning.context;
  const at::Tensor& empty = empty_conditioning.context;
  check(empty.size(0) == 1 && empty.size(1) == contexts.size(1) && empty.size(2) == contexts.size(2), name,
        ": the empty prompt's context must be [1, ", contexts.size(1), ", ", contexts.size(2), "] like the contexts, got ",
        empty.sizes());
  check(empty_conditioning.has_vector() == conditioning.has_vector() &&
            (!conditioning.has_vector() || empty_conditioning.pooled.size(1) == conditioning.pooled.size(1)),
        name, ": the empty prompt's pooled output must be like the prompts' (",
        conditioning.has_vector() ? str(conditioning.pooled.size(1), " wide") : std::string("none"), "), got ",
        empty_conditioning.has_vector() ? str(empty_conditioning.pooled.size(1), " wide") : std::string("none"));
}

void ExampleSet::check_captions() const {
  if (conditioning.defined() || captions_optional) return;
  int64_t missing = 0;
  int64_t first = -1;
  for (size_t i = 0; i < captions.size(); ++i)
    if (captions[i].empty()) {
      ++missing;
      if (first < 0) first = static_cast<int64_t>(i);
    }
  if (missing == 0) return;
  const std::string file = first < static_cast<int64_t>(names.size()) ? names[first] : str("image ", first);
  const std::string stem = first < static_cast<int64_t>(names.size()) ? file.substr(0, file.rfind('.')) : "";
  throw Error(str(name, ": ", missing, " of ", size(), " images have no caption (e.g. '", file, "'",
                  stem.empty() ? "" : str(": put it in '", stem, ".txt'"),
                  "); expected one caption per image, or set captions to optional to train those on the empty caption"));
}

ExampleSet ExampleSet::subset(const std::vector<int64_t>& indices, const std::string& subset_name) const {
  ExampleBatch rows = batch(indices);
  ExampleSet out;
  out.name = subset_name;
  out.images = rows.images;
  out.masks = rows.masks;
  out.captions = rows.captions;
  out.conditioning = rows.conditioning;
  out.empty_conditioning = empty_conditioning;
  out.captions_optional = captions_optional;
  for (int64_t i : indices)
    if (i < static_cast<int64_t>(names.size())) out.names.push_back(names[i]);
  return out;
}

ExampleBatch ExampleSet::batch(const std::vector<int64_t>& indices) const {
  at::Tensor index = at::tensor(indices, at::kLong).to(images.device());
  ExampleBatch out;
  out.images = images.index_select(0, index);
  out.masks = masks.index_select(0, index);
  for (int64_t i : indices)
    if (!captions.empty()) out.captions.push_back(captions[i]);
  if (conditioning.defined()) out.conditioning = conditioning.rows(index);
  return out;
}

ExampleSet example_set_from_images(const data::ImageSet& images, const std::string& name) {
  ExampleSet set;
  set.name = name;
  set.images = data::to_model_space(images.images);  // [N, C, H, W]
  set.masks = images.masks;
  set.captions = images.captions;
  set.names = images.names;
  return set;
}

at::Tensor full_masks(int64_t count, int64_t height, int64_t width) {
  return at::ones({1, 1, height, width}).expand({count, 1, height, width});
}

at::Tensor spatial_masks(const at::Tensor& mask, int64_t count, int64_t height, int64_t width, const std::string& where) {
  at::Tensor masks = mask.to(at::kFloat);
  if (masks.dim() == 2) masks = masks.unsqueeze(0);  // [H, W] -> [1, H, W]
  check(masks.dim() == 3 && (masks.size(0) == count || masks.size(0) == 1) && masks.size(1) % height == 0 &&
            masks.size(2) % width == 0 && masks.size(1) / height == masks.size(2) / width,
        where, ": expected MASK [", count, " or 1, H, W] with H x W = ", height, "x", width,
        " or a whole multiple of it, got ", mask.sizes());
  masks = at::adaptive_avg_pool2d(masks.unsqueeze(1), {height, width});  // [B, 1, H, W] -> [B, 1, height, width]
  return masks.expand({count, 1, height, width}).contiguous();
}

}  // namespace lethe::unlearn
