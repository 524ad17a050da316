#include "models/copy_descriptor.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"
#include "data/image.hpp"
#include "models/state_dict.hpp"

namespace lethe::models {

namespace {
constexpr const char* kDescriptorFormat = "lethe-descriptor/1";
constexpr const char* kDescriptorConfigKey = "lethe.descriptor_config";
}  // namespace

at::Tensor gem_pool(const at::Tensor& x, double p, double eps) {
  return x.clamp_min(eps).pow(p).mean({2, 3}).pow(1.0 / p);  // [B, C]
}

at::Tensor l2_normalize(const at::Tensor& x) {
  return x / x.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);  // F.normalize(x, dim=1)
}

CopyDescriptorImpl::CopyDescriptorImpl(const CopyDescriptorConfig& config, const at::TensorOptions& options)
    : config_(config) {
  trunk_ = register_module("trunk", ConvTrunk(config.trunk, options));
  projection_ = register_module("projection", LinearLayer(config.trunk.widths.back(), config.embedding_dim, true, options));
}

void CopyDescriptorImpl::initialize(uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  reset_all_parameters(*this, generator);
}

at::Tensor CopyDescriptorImpl::forward(const at::Tensor& x) {
  at::Tensor features = gem_pool(trunk_(x), config_.gem_p);  // [B, C]
  return l2_normalize(projection_(features));                // [B, D], unit norm
}

at::Tensor CopyDescriptorImpl::embed(const at::Tensor& images) {
  check(images.dim() == 4, "copy descriptor: expected images [B, C, H, W] in [0, 1], got ", images.sizes());
  at::Tensor x = images.to(at::kFloat);
  const int64_t channels = config_.trunk.in_channels;
  if (x.size(1) == 3 && channels == 1) x = (0.299 * x.select(1, 0) + 0.587 * x.select(1, 1) + 0.114 * x.select(1, 2)).unsqueeze(1);
  if (x.size(1) == 1 && channels == 3) x = x.expand({-1, 3, -1, -1});
  check(x.size(1) == channels, "copy descriptor: images have ", images.size(1), " channels, expected 1 or 3");
  x = data::resize_image(x, config_.input_size, config_.input_size);
  return forward((x - 0.5) / 0.5);
}

std::shared_ptr<CopyDescriptorImpl> CopyDescriptorImpl::load(const std::filesystem::path& path) {
  const std::string where = str("descriptor '", path.string(), "'");
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  auto format = file.metadata().find("lethe.format");
  check(format != file.metadata().end() && format->second == kDescriptorFormat, where, ": expected lethe.format '", kDescriptorFormat,
        "', got '", format == file.metadata().end() ? "(none)" : format->second,
        "' (official SSCD releases load as TorchScript files instead)");
  auto config = io::read_config<CopyDescriptorConfig>(io::parse_json(file.metadata_value(kDescriptorConfigKey, "a Lethe descriptor file"), where), where);
  auto descriptor = std::make_shared<CopyDescriptorImpl>(config);
  load_state_dict_strict(*descriptor, file.tensors(), where);
  return descriptor;
}

void CopyDescriptorImpl::save(const std::filesystem::path& path, const io::Metadata& metadata) const {
  io::Metadata all = metadata;
  all["lethe.format"] = kDescriptorFormat;
  all[kDescriptorConfigKey] = io::to_json(config_).dump();
  all["preprocessing"] = "grayscale [0,1], bilinear-antialiased resize to input_size, (x - 0.5) / 0.5";
  io::save_safetensors(path, state_dict(*this), all);
}

}  // namespace lethe::models
