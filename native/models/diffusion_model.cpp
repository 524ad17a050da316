#include "models/diffusion_model.hpp"

#include <optional>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/allocator.hpp"
#include "core/error.hpp"
#include "core/precision.hpp"
#include "io/hash.hpp"
#include "io/json_config.hpp"
#include "models/group_norm_kernel.hpp"
#include "models/layers.hpp"
#include "models/sdxl_vector.hpp"
#include "models/state_dict.hpp"
#include "models/unet_file.hpp"
#include "models/unet_memory.hpp"

namespace lethe::models {

namespace {
constexpr const char* kTextEncoderConfigKey = "lethe.text_encoder_config";
constexpr const char* kScheduleKey = "lethe.schedule";
}  // namespace

DiffusionModel::DiffusionModel(UNet unet, TokenEncoder text_encoder, diffusion::ScheduleConfig schedule)
    : unet_(std::move(unet)), text_encoder_(std::move(text_encoder)), schedule_(schedule), noise_schedule_(schedule) {}

std::shared_ptr<DiffusionModel> DiffusionModel::load(const std::filesystem::path& path, const ModelLoadOptions& options) {
  const std::string where = str("model '", path.string(), "'");
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  const io::Metadata& metadata = file.metadata();
  const at::TensorOptions tensor_options = at::TensorOptions().dtype(options.dtype).device(options.device);

  // SD checkpoints also hold the VAE and CLIP (first_stage_model.*, cond_stage_model.*):
  // those are the host's business and are skipped; the UNet part loads strictly.
  const std::string prefix = find_unet_prefix(file);
  const UNetConfig config = detect_unet_config(file, options.hints);
  UNet unet(config, tensor_options);
  TensorMap unet_weights, encoder_weights;
  for (const std::string& name : file.names()) {
    if (name.rfind("text_encoder.", 0) == 0) {
      encoder_weights[name.substr(13)] = file.tensor(name);
    } else if (prefix.empty()) {
      unet_weights[name] = file.tensor(name);
    } else if (name.compare(0, prefix.size(), prefix) == 0) {
      unet_weights[name.substr(prefix.size())] = file.tensor(name);
    }
  }
  load_state_dict_strict(*unet, unet_weights, where);

  TokenEncoder encoder{nullptr};
  if (auto found = metadata.find(kTextEncoderConfigKey); found != metadata.end()) {
    auto config = io::read_config<TokenEncoderConfig>(io::parse_json(found->second, where),
                                                      str(where, " metadata ", kTextEncoderConfigKey));
    encoder = TokenEncoder(config, tensor_options);
    load_state_dict_strict(*encoder, encoder_weights, where + " (text_encoder)");
  } else {
    check(encoder_weights.empty(), where, ": has text_encoder.* weights but no ", kTextEncoderConfigKey, " metadata");
  }

  diffusion::ScheduleConfig schedule = diffusion::ScheduleConfig::stable_diffusion();
  if (auto found = metadata.find(kScheduleKey); found != metadata.end())
    schedule = io::read_config<diffusion::ScheduleConfig>(io::parse_json(found->second, where),
                                                          str(where, " metadata ", kScheduleKey));
  if (options.schedule) schedule = *options.schedule;

  auto model = std::make_shared<DiffusionModel>(std::move(unet), std::move(encoder), schedule);
  model->source_path = path.string();
  model->source_sha256 = io::sha256_file(path);
  model->source_metadata = metadata;
  return model;
}

std::map<std::string, at::Tensor> DiffusionModel::weights() const {
  TensorMap out = state_dict(*unet_, "diffusion_model.");
  if (has_text_encoder()) {
    TensorMap encoder = state_dict(*text_encoder_, "text_encoder.");
    out.insert(encoder.begin(), encoder.end());
  }
  return out;
}

io::Metadata DiffusionModel::format_metadata() const {
  io::Metadata out;
  out["lethe.format"] = kModelFormat;
  out[kUNetConfigMetadataKey] = io::to_json(unet_->config()).dump();
  out[kScheduleKey] = io::to_json(schedule_).dump();
  if (has_text_encoder()) out[kTextEncoderConfigKey] = io::to_json(text_encoder_->config()).dump();
  return out;
}

void DiffusionModel::save(const std::filesystem::path& path, const io::Metadata& metadata, io::WriteMode mode) const {
  io::Metadata all = metadata;
  for (const auto& [key, value] : format_metadata()) all[key] = value;
  io::save_safetensors(path, weights(), all, mode);
}

void DiffusionModel::save_with_provenance(const std::filesystem::path& path) const {
  io::Metadata metadata = source_metadata;
  for (const auto& key : {"lethe.format", "lethe.unet_config", "lethe.text_encoder_config", "lethe.schedule"})
    metadata.erase(key);
  save(path, metadata, io::WriteMode::exclusive);
}

std::string DiffusionModel::weights_sha256() const {
  io::Sha256 hash;
  for (const auto& [key, value] : format_metadata()) {
    hash.update(std::string_view(key));
    hash.update(std::string_view(value));
  }
  for (const auto& [name, tensor] : weights()) {
    hash.update(std::string_view(name));
    hash.update(tensor);
  }
  return hash.hex();
}

c10::Device DiffusionModel::device() const {
  const auto parameters = unet_->parameters();
  return parameters.empty() ? c10::Device(c10::kCPU) : parameters.front().device();
}

at::Tensor DiffusionModel::predict(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning) {
  return predict_rows(x_t, t, conditioning, 1);
}

at::Tensor DiffusionModel::predict_groups(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning,
                                          int64_t groups) {
  check(groups >= 1 && conditioning.size() == groups * x_t.size(0), "predict_groups: expected ", groups,
        " conditionings of ", x_t.size(0), " rows each, got ", conditioning.size(), " rows");
  if (unet_->config().adm_in_channels > 0) return Denoiser::predict_groups(x_t, t, conditioning, groups);
  return predict_rows(x_t, t, conditioning, groups);
}

at::Tensor DiffusionModel::predict_rows(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning,
                                        int64_t groups) {
  const c10::Device here = device();
  if (x_t.device() != here) {  // weights on a GPU, data on the CPU: the forward runs where the weights are
    return predict_rows(x_t.to(here), t.to(here), conditioning.to(here), groups).to(x_t.device());
  }
  std::optional<ForwardAutocast> autocast;
  begin_forward(autocast, here);
  // Without autograd on a CPU, a batch whose widest activation the allocator would map afresh at
  // every forward runs as chunks of rows whose memory it reuses (models/unet_memory.hpp): the
  // same numbers, faster.
  int64_t limit = 0;
  if (here.is_cpu() && c10::InferenceMode::is_enabled() && x_t.dim() == 4) {
    const int64_t element_bytes = weights_set_precision_ ? unet_->parameters().front().element_size()
                                                         : c10::elementSize(autocast->dtype());
    limit = rows_per_forward(unet_->config(), x_t.size(2), x_t.size(3), element_bytes, lethe::reused_allocation_bytes());
  }
  const int64_t images = x_t.size(0);
  if (limit == 0 || groups * images <= limit) return forward(x_t, t, conditioning, groups);
  // Chunks of images, each under every group: group g's output rows of all chunks, then g + 1's.
  std::vector<std::vector<at::Tensor>> outputs(groups);
  int64_t start = 0;
  for (const int64_t count : row_chunks(images, std::max<int64_t>(1, limit / groups))) {
    std::vector<Conditioning> parts;
    for (int64_t g = 0; g < groups; ++g) parts.push_back(conditioning.slice(g * images + start, count));
    at::Tensor out = forward(x_t.narrow(0, start, count), t.numel() == 1 ? t : t.narrow(0, start, count), cat(parts),
                             groups);  // [groups * count, C, H, W]
    for (int64_t g = 0; g < groups; ++g) outputs[g].push_back(out.narrow(0, g * count, count));
    start += count;
  }
  std::vector<at::Tensor> ordered;
  for (auto& group : outputs) ordered.insert(ordered.end(), group.begin(), group.end());
  return at::cat(ordered, 0);  // [groups * images, C, H, W]
}

std::vector<at::Tensor> DiffusionModel::predict_each(const at::Tensor& x_t, const at::Tensor& t,
                                                     const std::vector<Conditioning>& conditionings) {
  // Without autograd, predict per conditioning (predict_groups shares the work there).
  if (conditionings.size() < 2 || unet_->config().adm_in_channels > 0 || !at::GradMode::is_enabled() ||
      c10::InferenceMode::is_enabled()) {
    return Denoiser::predict_each(x_t, t, conditionings);
  }
  const c10::Device here = device();
  if (x_t.device() != here) {  // as predict: the forward runs where the weights are
    std::vector<Conditioning> moved;
    for (const Conditioning& conditioning : conditionings) moved.push_back(conditioning.to(here));
    std::vector<at::Tensor> outputs = predict_each(x_t.to(here), t.to(here), moved);
    for (at::Tensor& output : outputs) output = output.to(x_t.device());
    return outputs;
  }
  std::optional<ForwardAutocast> autocast;
  begin_forward(autocast, here);
  std::vector<at::Tensor> contexts;
  for (const Conditioning& conditioning : conditionings) {
    check(conditioning.size() == x_t.size(0), "predict_each: expected conditionings of ", x_t.size(0),
          " rows, got ", conditioning.size());
    contexts.push_back(conditioning.context);
  }
  std::vector<at::Tensor> outputs = unet_->forward_each(x_t, t, contexts);
  for (at::Tensor& output : outputs) output = output.to(x_t.scalar_type());
  return outputs;
}

void DiffusionModel::begin_forward(std::optional<ForwardAutocast>& autocast, c10::Device here) {
  if (!weights_set_precision_) {
    autocast.emplace(here);  // mixed precision when the caller's scope asks for it
    // On a CPU, activations run channels-last where oneDNN's convolutions are faster and Lethe's
    // group norm keeps the layout (models/group_norm_kernel.hpp): in bf16 (forward and backward),
    // in fp32 under inference mode (sampling and evaluation: 1.33x the NCHW sampling on an AVX2
    // CPU, docs/performance.md §Precision) and in fp32 with autograd inside a
    // ChannelsLastFp32Gradients scope (the prompt attack). Otherwise fp32 with autograd stays
    // NCHW, so fp32 training computes exactly what it always did; so does fp16 (the kernel has
    // no fp16 form).
    const bool bf16 = autocast->active() && autocast->dtype() == at::kBFloat16;
    const bool fp32_channels_last = c10::InferenceMode::is_enabled() || channels_last_fp32_gradients();
    unet_->channels_last = here.is_cpu() && (bf16 || (!autocast->active() && fp32_channels_last));
  }
}

at::Tensor DiffusionModel::forward(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning,
                                  int64_t groups) {
  const int64_t adm = unet_->config().adm_in_channels;
  if (adm == 0) return unet_->forward_groups(x_t, t, conditioning.context, groups).to(x_t.scalar_type());
  check(groups == 1, "DiffusionModel: an SDXL-layout UNet runs groups of conditionings as repeated rows");
  // SDXL: y from the prompt's pooled output and the size conditioning (ComfyUI's SDXL.encode_adm).
  check(conditioning.has_vector(), "this SDXL-layout UNet needs each prompt's pooled text embedding and size ",
        "conditioning (its ", adm, "-wide y); connect the CONDITIONING of the SDXL checkpoint's CLIP (CLIPTextEncode) ",
        "to Lethe Dataset from Latents; Lethe's token encoder and prompt lists give none");
  at::Tensor y = sdxl_vector(conditioning.pooled, conditioning.sizes);  // [B, P + 1536]
  check(y.size(1) == adm, "this SDXL-layout UNet takes a ", adm, "-wide y, but the prompts' pooled output is ",
        conditioning.pooled.size(1), " wide (y ", y.size(1), "); encode the prompts with this checkpoint's own CLIP");
  return unet_->forward(x_t, t, conditioning.context, y.to(x_t.options())).to(x_t.scalar_type());
}

std::vector<at::Tensor> DiffusionModel::trainable_parameters() {
  std::vector<at::Tensor> out;
  for (const auto& parameter : unet_->parameters())
    if (parameter.requires_grad()) out.push_back(parameter);
  if (has_text_encoder())
    for (const auto& parameter : text_encoder_->parameters())
      if (parameter.requires_grad()) out.push_back(parameter);
  return out;
}

at::Tensor DiffusionModel::context_for(const std::vector<std::string>& captions) {
  check(has_text_encoder(), "this model has no token encoder (a Stable Diffusion UNet takes its context from the "
                            "host's CLIP: pass CONDITIONING instead of captions)");
  return text_encoder_->encode(captions);
}

std::shared_ptr<DiffusionModel> DiffusionModel::frozen_copy(Weights weights) const {
  const at::Tensor reference = unet_->parameters().front();
  // Shared: the copy's modules are made on the CPU without being written (so the allocation stays
  // virtual), then take this model's tensors, wherever they live.
  const at::TensorOptions options = at::TensorOptions()
                                        .dtype(reference.scalar_type())
                                        .device(weights == Weights::shared ? c10::Device(c10::kCPU) : reference.device());
  auto transfer = [&](torch::nn::Module& copy, const torch::nn::Module& source) {
    if (weights == Weights::shared)
      share_state_dict_strict(copy, state_dict(source), "shared copy");
    else
      load_state_dict_strict(copy, state_dict(source), "frozen copy");
  };
  UNet unet(unet_->config(), options);
  transfer(*unet, *unet_);
  TokenEncoder encoder{nullptr};
  if (has_text_encoder()) {
    encoder = TokenEncoder(text_encoder_->config(), options);
    transfer(*encoder, *text_encoder_);
  }
  auto copy = std::make_shared<DiffusionModel>(std::move(unet), std::move(encoder), schedule_);
  copy->source_path = source_path;
  copy->source_sha256 = source_sha256;
  copy->source_metadata = source_metadata;
  copy->set_requires_grad(false);
  return copy;
}

namespace {

// The UNet's weights with every attached adapter folded in (low_rank_delta, computed in fp32), in
// the weights' dtype.
TensorMap weights_with_adapters(const UNet& unet) {
  TensorMap weights = state_dict(*unet);
  at::NoGradGuard no_grad;
  for (const auto& item : unet->named_modules()) {
    std::shared_ptr<LowRankAdapter> adapter;
    if (const auto* linear = dynamic_cast<const LinearLayerImpl*>(item.value().get())) adapter = linear->adapter;
    if (const auto* conv = dynamic_cast<const Conv2dLayerImpl*>(item.value().get())) adapter = conv->adapter;
    if (!adapter) continue;
    at::Tensor& weight = weights.at(item.key() + ".weight");
    const at::Tensor delta = low_rank_delta(adapter->up.to(at::kFloat), adapter->down.to(at::kFloat), adapter->scale);
    weight = weight + delta.view(weight.sizes()).to(weight.scalar_type());  // delta [out, in * k * k]
  }
  return weights;
}

}  // namespace

std::shared_ptr<Denoiser> DiffusionModel::sampling_copy(Precision precision) {
  if (precision != Precision::bf16 || !device().is_cpu() || weights_set_precision_) return nullptr;
  UNet unet(unet_->config(), at::TensorOptions().dtype(at::kBFloat16).device(device()));
  load_state_dict_strict(*unet, weights_with_adapters(unet_), "sampling copy");
  at::NoGradGuard no_grad;
  for (auto& parameter : unet->parameters()) {
    parameter.set_requires_grad(false);
    if (parameter.dim() == 4) parameter.set_data(parameter.contiguous(at::MemoryFormat::ChannelsLast));
  }
  unet->channels_last = true;
  auto copy = std::make_shared<DiffusionModel>(std::move(unet), TokenEncoder{nullptr}, schedule_);
  copy->weights_set_precision_ = true;
  return copy;
}

void DiffusionModel::set_requires_grad(bool requires_grad) {
  for (auto& parameter : unet_->parameters()) parameter.set_requires_grad(requires_grad);
  if (has_text_encoder())
    for (auto& parameter : text_encoder_->parameters()) parameter.set_requires_grad(requires_grad);
}

}  // namespace lethe::models
