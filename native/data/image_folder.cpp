#include "data/image_folder.hpp"

#include <algorithm>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "data/image.hpp"
#include "io/atomic_file.hpp"

namespace lethe::data {
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string trim(const std::string& text) {
  const char* space = " \t\r\n";
  const auto first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

std::string size_text(const at::Tensor& image) { return str(image.size(2), "x", image.size(1)); }

}  // namespace

ImageSet load_image_folder(const fs::path& folder, const ImageFolderOptions& options) {
  const std::string where = str(options.role, " '", folder.string(), "'");
  check(options.channels == 1 || options.channels == 3, where, ": channels must be 1 or 3, got ",
        options.channels);
  check(fs::exists(folder), where, ": folder does not exist");
  check(fs::is_directory(folder), where, ": expected a folder, got a file");

  std::vector<fs::path> files;
  for (const auto& item : fs::directory_iterator(folder)) {
    if (!item.is_regular_file()) continue;
    const std::string name = item.path().filename().string();
    if (ends_with(name, ".mask.png") || !is_image_extension(item.path().extension().string())) continue;
    files.push_back(item.path());
  }
  std::sort(files.begin(), files.end());
  check(!files.empty(), where, ": no images found (expected .png, .jpg, .jpeg or .bmp files)");

  ImageSet set;
  set.source = folder.string();
  int64_t height = options.height, width = options.width;
  std::vector<at::Tensor> images, masks;
  for (const fs::path& file : files) {
    const std::string name = file.filename().string();
    at::Tensor image = read_image(file, options.channels);
    if (height == 0 || width == 0) {
      height = image.size(1);
      width = image.size(2);
    }
    if (image.size(1) != height || image.size(2) != width) {
      check(options.resize, where, ": image '", name, "' is ", size_text(image), ", expected ", width, "x",
            height, " (set resize=true to resize)");
      image = resize_image(image, height, width);
    }
    const fs::path stem = file.parent_path() / file.stem();
    fs::path caption_file = stem;
    caption_file += ".txt";
    fs::path mask_file = stem;
    mask_file += ".mask.png";
    std::string caption = fs::exists(caption_file) ? trim(io::read_file(caption_file)) : "";
    at::Tensor mask;
    const bool has_mask = fs::exists(mask_file);
    if (has_mask) {
      mask = read_image(mask_file, 1);
      if (mask.size(1) != height || mask.size(2) != width) {
        check(options.resize, where, ": mask '", mask_file.filename().string(), "' is ", size_text(mask),
              ", expected ", width, "x", height, " like its image (set resize=true to resize)");
        mask = resize_image(mask, height, width);
      }
    } else {
      mask = at::ones({1, height, width}, at::kFloat);
    }
    set.names.push_back(name);
    set.captions.push_back(caption);
    set.has_mask.push_back(has_mask);
    images.push_back(image);
    masks.push_back(mask);
  }
  set.images = at::stack(images);  // [N, C, H, W]
  set.masks = at::stack(masks);    // [N, 1, H, W]
  return set;
}

void save_image_folder(const fs::path& folder, const ImageSet& set) {
  fs::create_directories(folder);
  for (int64_t i = 0; i < set.size(); ++i) {
    const fs::path stem = folder / fs::path(set.names[i]).stem();
    fs::path image_file = stem;
    image_file += ".png";
    write_png(image_file, set.images[i]);
    if (!set.captions.empty() && !set.captions[i].empty()) {
      fs::path caption_file = stem;
      caption_file += ".txt";
      io::write_file_atomic(caption_file, set.captions[i] + "\n");
    }
    if (!set.has_mask.empty() && set.has_mask[i]) {
      fs::path mask_file = stem;
      mask_file += ".mask.png";
      write_png(mask_file, set.masks[i]);
    }
  }
}

}  // namespace lethe::data
