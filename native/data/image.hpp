// Single images in and out: decoding (png, jpg, bmp through stb_image), PNG encoding,
// and explicit resizing. Images are float32 [C, H, W] tensors with values in [0, 1].
#pragma once

#include "io/atomic_file.hpp"

#include <filesystem>
#include <string>

#include <ATen/core/Tensor.h>

namespace lethe::data {

// Decodes an image file into [channels, H, W] float32 in [0, 1]. channels is 1 (luma) or
// 3 (RGB); stb converts between them. Throws lethe::Error naming the file when the file
// is missing, corrupt or of an unsupported format.
at::Tensor read_image(const std::filesystem::path& path, int channels);

// Resizes [C, H, W] or [N, C, H, W] to height x width with antialiased bilinear filtering.
at::Tensor resize_image(const at::Tensor& image, int64_t height, int64_t width);

// Encodes [C, H, W] (C = 1, 3 or 4) float in [0, 1] (values are clamped) as PNG bytes.
std::string encode_png(const at::Tensor& image);
// Writes a PNG atomically.
void write_png(const std::filesystem::path& path, const at::Tensor& image, io::WriteMode mode = io::WriteMode::replace);

// Stored 8-bit values [0, 255] (any shape) -> float pixels [0, 1]: byte / 255.
at::Tensor bytes_to_pixels(const at::Tensor& bytes);

// Pixels [0, 1] <-> model space [-1, 1] (the native models' image range); to_pixels clamps.
at::Tensor to_model_space(const at::Tensor& pixels);
at::Tensor to_model_space_(at::Tensor pixels);  // in place: `pixels` becomes model space, returned
at::Tensor to_pixels(const at::Tensor& model_space);

// Extensions read as images (lower case, with the dot).
bool is_image_extension(const std::string& extension);

}  // namespace lethe::data
