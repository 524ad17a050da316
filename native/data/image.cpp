#include "data/image.hpp"

#include <algorithm>
#include <cctype>

#include <ATen/ATen.h>
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace lethe::data {

namespace {

// stb_image's reason in words: its own are terse codes ("outofdata", "bad png sig").
std::string decode_problem(const std::string& reason) {
  if (reason == "outofdata" || reason == "bad zlib header" || reason == "bad huffman code" || reason == "bad codelengths" ||
      reason == "no IDAT" || reason == "bad IDAT len" || reason == "premature eof")
    return str("the file is truncated or damaged (", reason, ")");
  if (reason == "unknown image type" || reason == "bad png sig" || reason == "not BMP")
    return str("it is not an image in a format Lethe reads (", reason, ")");
  return str("the decoder said '", reason, "'");
}

}  // namespace

at::Tensor read_image(const std::filesystem::path& path, int channels) {
  check(channels == 1 || channels == 3, "read_image('", path.string(), "'): channels must be 1 or 3, got ",
        channels);
  const std::string bytes = io::read_file(path);
  int width = 0, height = 0, file_channels = 0;
  unsigned char* pixels =
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()),
                            &width, &height, &file_channels, channels);
  if (pixels == nullptr) {  // stb's reason is null until a decode fails
    const char* reason = stbi_failure_reason();
    throw Error(str("image '", path.string(), "' cannot be decoded: ", decode_problem(reason ? reason : "unknown"),
                    "; expected a png, jpg or bmp file"));
  }
  // [H, W, C] uint8 -> [C, H, W] float in [0, 1]
  at::Tensor image = bytes_to_pixels(at::from_blob(pixels, {height, width, channels}, at::kByte).permute({2, 0, 1}))
                         .contiguous();
  stbi_image_free(pixels);
  return image;
}

at::Tensor resize_image(const at::Tensor& image, int64_t height, int64_t width) {
  check(image.dim() == 3 || image.dim() == 4, "resize_image: expected [C,H,W] or [N,C,H,W], got ",
        image.sizes());
  const bool batched = image.dim() == 4;
  at::Tensor batch = batched ? image : image.unsqueeze(0);
  if (batch.size(2) == height && batch.size(3) == width) return image;
  at::Tensor resized = at::_upsample_bilinear2d_aa(batch.to(at::kFloat), {height, width},
                                                   /*align_corners=*/false)
                           .clamp_(0.0, 1.0);
  return batched ? resized : resized.squeeze(0);
}

std::string encode_png(const at::Tensor& image) {
  check(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3 || image.size(0) == 4),
        "encode_png: expected [C,H,W] with C in {1,3,4}, got ", image.sizes());
  // [C, H, W] float -> [H, W, C] uint8
  at::Tensor pixels = image.detach()
                          .to(at::kCPU, at::kFloat)
                          .clamp(0.0, 1.0)
                          .mul(255.0)
                          .round()
                          .to(at::kByte)
                          .permute({1, 2, 0})
                          .contiguous();
  std::string out;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size);
  };
  const int height = static_cast<int>(pixels.size(0)), width = static_cast<int>(pixels.size(1));
  const int channels = static_cast<int>(pixels.size(2));
  int ok = stbi_write_png_to_func(append, &out, width, height, channels, pixels.data_ptr<uint8_t>(),
                                  width * channels);
  check(ok != 0, "encode_png: stb failed to encode a ", width, "x", height, " image");
  return out;
}

void write_png(const std::filesystem::path& path, const at::Tensor& image, io::WriteMode mode) {
  io::write_file_atomic(path, encode_png(image), mode);
}

bool is_image_extension(const std::string& extension) {
  std::string lower = extension;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower == ".png" || lower == ".jpg" || lower == ".jpeg" || lower == ".bmp";
}

at::Tensor bytes_to_pixels(const at::Tensor& bytes) { return bytes.to(at::kFloat).div_(255.0); }

// In place on the product: one full-size result, no second temporary (a 60 000-image set is 188 MiB).
at::Tensor to_model_space(const at::Tensor& pixels) { return (pixels * 2.0).sub_(1.0); }
at::Tensor to_model_space_(at::Tensor pixels) { return pixels.mul_(2.0).sub_(1.0); }
at::Tensor to_pixels(const at::Tensor& model_space) { return ((model_space + 1.0) * 0.5).clamp(0.0, 1.0); }

}  // namespace lethe::data
