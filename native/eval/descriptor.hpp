// Copy-detection descriptors behind one interface: images in [0, 1] -> unit vectors.
//  - TorchScript files in the format of the official SSCD releases
//    (sscd_disc_mixup.torchscript.pt, ...), with the official preprocessing "skew_320":
//    grayscale repeated to 3 channels, bilinear (antialiased) resize to 320x320, ImageNet
//    mean/std normalisation (docs/evaluation.md §1.2);
//  - Lethe's embedded descriptor (.safetensors, see models/copy_descriptor.hpp).
// Loading checks the output on a probe batch: a wrong dimension or a non-unit output is
// rejected with the file named.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

namespace lethe::eval {

class Descriptor {
 public:
  virtual ~Descriptor() = default;
  // images [N, C, H, W] in [0, 1] (C = 1 or 3) -> [N, D] unit vectors
  virtual at::Tensor embed(const at::Tensor& images) = 0;
  virtual int64_t dim() const = 0;
  virtual std::string kind() const = 0;           // "torchscript" | "lethe-embedded"
  virtual std::string preprocessing() const = 0;  // recorded in every report
  // Why images [N, C, H, W] lie outside what the descriptor can judge, "" when they do not:
  // Lethe's embedded descriptor knows only images like its training set (small, grayscale).
  virtual std::string unsuited_to(const at::Tensor& images) const { return ""; }
  // How messages and results name it: its kind and file name, e.g. "torchscript sscd_disc_mixup.torchscript.pt".
  std::string label() const;
  std::string path;
  std::string sha256;
};

// The official SSCD preprocessing: [N, C, H, W] in [0, 1] -> [N, 3, 320, 320] normalised.
at::Tensor sscd_official_preprocess(const at::Tensor& images);

// Loads by format: Lethe's .safetensors descriptor, or a TorchScript file. expected_dim
// defaults to what the file declares (Lethe) or 512 (TorchScript; 1024 when the file
// name contains "large", like sscd_disc_large).
std::shared_ptr<Descriptor> load_descriptor(const std::filesystem::path& path,
                                            std::optional<int64_t> expected_dim = std::nullopt);

// Descriptors offered by name besides a file (the scoring nodes' "source" choices): the
// embedded bench registers "bench". The first registered is the default when none is given.
void register_named_descriptor(const std::string& name, std::function<std::shared_ptr<Descriptor>()> load);
std::vector<std::string> named_descriptor_names();
// The named descriptor; an unknown name is an error naming `where` and the known names.
std::shared_ptr<Descriptor> named_descriptor(const std::string& name, const std::string& where);
// The first named descriptor (the default when none is given); none registered is an error naming `where`.
std::shared_ptr<Descriptor> default_descriptor(const std::string& where);

// Refuses images the descriptor cannot judge (unsuited_to), naming `where`, the descriptor and
// what to load instead.
void check_suited(const Descriptor& descriptor, const at::Tensor& images, const std::string& where);

// Embeds in batches under inference mode. [N, C, H, W] -> [N, D]
at::Tensor embed_batched(Descriptor& descriptor, const at::Tensor& images, int64_t batch_size = 64);

}  // namespace lethe::eval
