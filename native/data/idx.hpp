// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed, and the
// Fashion-MNIST files of Debian's dataset-fashion-mnist package.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lethe::data {

// Reads an IDX file (magic 0x0000 <type> <ndim>, big-endian dims, then data). Supports the
// unsigned byte type (0x08), which MNIST-family files use. Returns a uint8 tensor with the
// file's shape. Errors name the file: bad magic, unsupported type, truncated data.
at::Tensor read_idx(const std::filesystem::path& path);

// Where Debian's dataset-fashion-mnist installs its files; $LETHE_FASHION_MNIST overrides.
std::filesystem::path fashion_mnist_dir();

struct LabelledImages {
  at::Tensor images;  // [N, 1, 28, 28] uint8
  at::Tensor labels;  // [N] int64 in 0..9
};

// split is "train" (60000) or "test" (10000). The error for missing files says which
// package provides them.
LabelledImages load_fashion_mnist(const std::string& split);

// The ten Fashion-MNIST class names, by label.
const std::vector<std::string>& fashion_mnist_classes();

}  // namespace lethe::data
