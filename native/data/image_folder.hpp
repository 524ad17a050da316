// A folder of images as a dataset: `name.png` (or .jpg/.jpeg/.bmp), an optional caption
// `name.txt` beside it and an optional mask `name.mask.png` (white = the region that
// counts). Used for forget sets, retain sets and reference sets.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lethe::data {

struct ImageFolderOptions {
  int channels = 1;      // 1 (grayscale) or 3 (RGB)
  int64_t height = 0;    // expected size; 0 = take it from the first image
  int64_t width = 0;
  bool resize = false;   // resize mismatching images instead of failing
  std::string role = "image folder";  // how errors name the set: "forget set", "retain set"
};

struct ImageSet {
  std::string source;                 // folder path (or a description for generated sets)
  std::vector<std::string> names;     // file names, sorted
  at::Tensor images;                  // [N, C, H, W] float32 in [0, 1]
  std::vector<std::string> captions;  // one per image; "" when there is no caption file
  at::Tensor masks;                   // [N, 1, H, W] float32 in [0, 1]; ones when no mask file
  std::vector<bool> has_mask;

  int64_t size() const { return static_cast<int64_t>(names.size()); }
};

// Loads a folder. Errors name the role, the folder and the file: a missing folder, an
// empty folder, a corrupt image, a size mismatch without resize, a mask of the wrong size.
ImageSet load_image_folder(const std::filesystem::path& folder, const ImageFolderOptions& options);

// Writes a set back as name.png / name.txt / name.mask.png (used by tests and exports).
void save_image_folder(const std::filesystem::path& folder, const ImageSet& set);

}  // namespace lethe::data
