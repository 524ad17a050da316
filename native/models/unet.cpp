#include "models/unet.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/generated/variable_factories.h>

#include "core/error.hpp"
#include "models/activation_checkpointing.hpp"
#include "models/attention_kernel.hpp"

namespace lethe::models {

namespace {
constexpr double kGroupNormEps = 1e-5;         // LDM normalization()
constexpr double kTransformerNormEps = 1e-6;   // SpatialTransformer.norm
constexpr double kLayerNormEps = 1e-5;

}  // namespace

at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double max_period) {
  const int64_t half = dim / 2;
  at::Tensor frequencies =
      at::exp(-std::log(max_period) * at::arange(half, at::TensorOptions().dtype(at::kFloat).device(t.device())) /
              static_cast<double>(half));                              // [half]
  at::Tensor arguments = t.to(at::kFloat).unsqueeze(1) * frequencies.unsqueeze(0);  // [B, half]
  at::Tensor embedding = at::cat({at::cos(arguments), at::sin(arguments)}, 1);      // [B, 2 half]
  if (dim % 2 == 1) embedding = at::cat({embedding, at::zeros_like(embedding.narrow(1, 0, 1))}, 1);
  return embedding;
}

// ---------------------------------------------------------------------------- ResBlock
ResBlockImpl::ResBlockImpl(int64_t channels, int64_t emb_channels, int64_t out_channels, const UNetConfig& config,
                           const at::TensorOptions& options)
    : scale_shift(config.use_scale_shift_norm) {
  auto in_layers = register_module("in_layers", Slots());
  in_norm = GroupNormLayer(config.norm_groups, channels, kGroupNormEps, options);
  in_conv = Conv2dLayer(channels, out_channels, 3, 1, 1, options);
  in_layers->put("0", in_norm);
  in_layers->put("2", in_conv);
  auto emb_layers = register_module("emb_layers", Slots());
  emb_linear = LinearLayer(emb_channels, scale_shift ? 2 * out_channels : out_channels, true, options);
  emb_layers->put("1", emb_linear);
  auto out_layers = register_module("out_layers", Slots());
  out_norm = GroupNormLayer(config.norm_groups, out_channels, kGroupNormEps, options);
  out_conv = Conv2dLayer(out_channels, out_channels, 3, 1, 1, options);
  out_layers->put("0", out_norm);
  out_layers->put("3", out_conv);
  if (channels != out_channels) skip = register_module("skip_connection", Conv2dLayer(channels, out_channels, 1, 1, 0, options));
}

at::Tensor ResBlockImpl::forward(const at::Tensor& x, const at::Tensor& emb, const at::Tensor&) {
  at::Tensor h = in_conv(in_norm->forward_silu(x));                              // [B, out, H, W]
  at::Tensor emb_out = emb_linear(at::silu(emb)).unsqueeze(-1).unsqueeze(-1);  // [B, out or 2 out, 1, 1]
  if (scale_shift) {
    auto parts = emb_out.chunk(2, 1);
    h = out_norm(h) * (1 + parts[0]) + parts[1];
    h = out_conv(at::silu(h));
  } else {
    h = out_conv(out_norm->forward_silu(h, emb_out));  // norm of h + emb_out
  }
  return (skip ? skip(x) : x) + h;
}

// ---------------------------------------------------------------------------- attention
CrossAttentionImpl::CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads_, int64_t head_dim_,
                                       const at::TensorOptions& options)
    : heads(heads_), head_dim(head_dim_) {
  const int64_t inner = heads * head_dim;
  to_q = register_module("to_q", LinearLayer(query_dim, inner, false, options));
  to_k = register_module("to_k", LinearLayer(context_dim, inner, false, options));
  to_v = register_module("to_v", LinearLayer(context_dim, inner, false, options));
  auto out = register_module("to_out", Slots());
  to_out = LinearLayer(inner, query_dim, true, options);
  out->put("0", to_out);
}

at::Tensor CrossAttentionImpl::forward(const at::Tensor& x, const at::Tensor& context) {
  const at::Tensor& source = context.defined() ? context : x;
  const int64_t batch = x.size(0);
  // [B, N, h d] -> [B, h, N, d]
  auto split_heads = [&](const at::Tensor& t) { return t.view({batch, -1, heads, head_dim}).transpose(1, 2); };
  at::Tensor q = split_heads(to_q(x));
  at::Tensor k = split_heads(to_k(source));
  at::Tensor v = split_heads(to_v(source));
  // bf16 inference on a CPU over few keys: Lethe's kernel, already [B, N, h d].
  if (small_attention_applies(q, k, v)) return to_out(small_attention(q, k, v));
  at::Tensor attended;                                                     // [B, h, N, d]
  if (q.is_cpu() && q.scalar_type() == at::kBFloat16 && q.requires_grad()) {
    // bf16 autocast on a CPU, training: attention in fp32. libtorch's CPU flash-attention
    // backward in bf16 took 113 ms of a 625 ms bench step (fp32: under 10 ms); the projections
    // stay bf16. Without a backward (sampling) bf16 attention is the faster one.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);
    attended = at::scaled_dot_product_attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat)).to(q.scalar_type());
  } else {
    attended = at::scaled_dot_product_attention(q, k, v);
  }
  attended = attended.transpose(1, 2).reshape({batch, -1, heads * head_dim});  // [B, N, h d]
  return to_out(attended);
}

TransformerBlockImpl::TransformerBlockImpl(int64_t dim, int64_t context_dim, int64_t heads, int64_t head_dim,
                                           const at::TensorOptions& options) {
  attn1 = register_module("attn1", CrossAttention(dim, dim, heads, head_dim, options));
  auto ff = register_module("ff", Slots());
  auto net = Slots();
  ff->put("net", net);
  auto geglu = Slots();
  net->put("0", geglu);
  ff_in = LinearLayer(dim, 2 * 4 * dim, true, options);
  geglu->put("proj", ff_in);
  ff_out = LinearLayer(4 * dim, dim, true, options);
  net->put("2", ff_out);
  attn2 = register_module("attn2", CrossAttention(dim, context_dim, heads, head_dim, options));
  norm1 = register_module("norm1", LayerNormLayer(dim, kLayerNormEps, options));
  norm2 = register_module("norm2", LayerNormLayer(dim, kLayerNormEps, options));
  norm3 = register_module("norm3", LayerNormLayer(dim, kLayerNormEps, options));
}

at::Tensor TransformerBlockImpl::forward(const at::Tensor& x, const at::Tensor& context) {
  at::Tensor h = attn1(norm1(x), at::Tensor()) + x;
  h = attn2(norm2(h), context) + h;
  auto parts = ff_in(norm3(h)).chunk(2, -1);  // GEGLU: [B, N, 4 dim] x 2
  return ff_out(parts[0] * at::gelu(parts[1])) + h;
}

SpatialTransformerImpl::SpatialTransformerImpl(int64_t channels, int64_t depth, const UNetConfig& config,
                                               const at::TensorOptions& options)
    : linear_projection(config.use_linear_in_transformer) {
  auto [heads, head_dim] = config.heads_for(channels);
  const int64_t inner = heads * head_dim;
  norm = register_module("norm", GroupNormLayer(config.norm_groups, channels, kTransformerNormEps, options));
  if (linear_projection) {
    proj_in = register_module("proj_in", LinearLayer(channels, inner, true, options).ptr());
  } else {
    proj_in = register_module("proj_in", Conv2dLayer(channels, inner, 1, 1, 0, options).ptr());
  }
  auto list = register_module("transformer_blocks", Slots());
  for (int64_t d = 0; d < depth; ++d) {
    blocks.push_back(TransformerBlock(inner, config.context_dim, heads, head_dim, options));
    list->put(std::to_string(d), blocks.back());
  }
  if (linear_projection) {
    proj_out = register_module("proj_out", LinearLayer(inner, channels, true, options).ptr());
  } else {
    proj_out = register_module("proj_out", Conv2dLayer(inner, channels, 1, 1, 0, options).ptr());
  }
}

at::Tensor SpatialTransformerImpl::forward(const at::Tensor& x, const at::Tensor&, const at::Tensor& context) {
  const int64_t batch = x.size(0), height = x.size(2), width = x.size(3);
  at::Tensor h = norm(x);
  if (linear_projection) {
    h = h.flatten(2).transpose(1, 2);                                       // [B, HW, C]
    h = static_cast<LinearLayerImpl&>(*proj_in).forward(h);                  // [B, HW, inner]
  } else {
    h = static_cast<Conv2dLayerImpl&>(*proj_in).forward(h);                  // [B, inner, H, W]
    h = h.flatten(2).transpose(1, 2);                                       // [B, HW, inner]
  }
  for (auto& block : blocks) h = block(h, context);
  if (linear_projection) {
    h = static_cast<LinearLayerImpl&>(*proj_out).forward(h);                 // [B, HW, C]
    h = h.transpose(1, 2).reshape({batch, -1, height, width});              // [B, C, H, W]
  } else {
    h = h.transpose(1, 2).reshape({batch, -1, height, width});              // [B, inner, H, W]
    h = static_cast<Conv2dLayerImpl&>(*proj_out).forward(h);                 // [B, C, H, W]
  }
  return h + x;
}

// ---------------------------------------------------------------------------- resampling
DownsampleImpl::DownsampleImpl(int64_t channels, const at::TensorOptions& options) {
  op = register_module("op", Conv2dLayer(channels, channels, 3, 2, 1, options));
}
at::Tensor DownsampleImpl::forward(const at::Tensor& x, const at::Tensor&, const at::Tensor&) { return op(x); }

UpsampleImpl::UpsampleImpl(int64_t channels, const at::TensorOptions& options) {
  conv = register_module("conv", Conv2dLayer(channels, channels, 3, 1, 1, options));
}
at::Tensor UpsampleImpl::forward(const at::Tensor& x, const at::Tensor&, const at::Tensor&) {
  return conv(at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2}));  // [B, C, 2H, 2W]
}

InputConvImpl::InputConvImpl(int64_t in_channels, int64_t out_channels, const at::TensorOptions& options) {
  // Registered as the parent's child "0" directly: its weight is input_blocks.0.0.weight.
  conv = Conv2dLayer(in_channels, out_channels, 3, 1, 1, options);
}
at::Tensor InputConvImpl::forward(const at::Tensor& x, const at::Tensor&, const at::Tensor&) {
  // A one-channel input in a bf16 channels-last run on a CPU: oneDNN's bf16 kernels for one input
  // channel took about twice the time of the same conv with a zero second channel
  // (docs/performance.md §Precision, "One input channel"), whose values and gradients are the
  // same bit for bit. fp32 keeps the plain conv and its numbers (the zero channel's differ at
  // rounding at batch 1).
  // the dtype the conv computes in: autocast's when it is on, else the weight's (Conv2dLayer casts x to it)
  const bool autocast = at::autocast::is_autocast_enabled(at::kCPU);
  const bool bf16 = (autocast ? at::autocast::get_autocast_dtype(at::kCPU) : conv->weight.scalar_type()) == at::kBFloat16;
  if (channels_last && bf16 && conv->in_channels == 1 && x.is_cpu() && !conv->adapter)
    return conv->forward_one_channel(x);
  return conv(x);
}

void TimestepSequentialImpl::append(std::shared_ptr<UNetLayer> layer) {
  const std::string name = std::to_string(layers.size());
  if (auto* input = dynamic_cast<InputConvImpl*>(layer.get())) {
    register_module(name, input->conv);  // the conv's own parameters sit at "<block>.0"
  } else {
    register_module(name, layer);
  }
  layers.push_back(std::move(layer));
}

at::Tensor TimestepSequentialImpl::forward(const at::Tensor& x, const at::Tensor& emb, const at::Tensor& context) {
  at::Tensor h = x;
  for (auto& layer : layers) h = layer->forward(h, emb, context);
  return h;
}

// ---------------------------------------------------------------------------- UNet
UNetImpl::UNetImpl(const UNetConfig& config, const at::TensorOptions& options) : config_(config) {
  config_.validate("UNet config");
  const int64_t mc = config.model_channels;
  const int64_t emb_channels = 4 * mc;
  auto time_embed = register_module("time_embed", Slots());
  time_embed_in = LinearLayer(mc, emb_channels, true, options);
  time_embed_out = LinearLayer(emb_channels, emb_channels, true, options);
  time_embed->put("0", time_embed_in);
  time_embed->put("2", time_embed_out);
  if (config.adm_in_channels > 0) {  // LDM's label_emb = Sequential(Sequential(linear, SiLU, linear))
    auto label_emb = register_module("label_emb", Slots());
    auto inner = Slots();
    label_emb->put("0", inner);
    label_embed_in = LinearLayer(config.adm_in_channels, emb_channels, true, options);
    label_embed_out = LinearLayer(emb_channels, emb_channels, true, options);
    inner->put("0", label_embed_in);
    inner->put("2", label_embed_out);
  }

  auto inputs = register_module("input_blocks", Slots());
  auto add_input = [&](TimestepSequential block) {
    inputs->put(std::to_string(input_blocks.size()), block);
    input_blocks.push_back(block);
  };
  TimestepSequential first;
  input_conv_ = std::make_shared<InputConvImpl>(config.in_channels, mc, options);
  first->append(input_conv_);
  add_input(first);
  std::vector<int64_t> skip_channels = {mc};
  int64_t ch = mc;
  const int64_t levels = static_cast<int64_t>(config.channel_mult.size());
  for (int64_t level = 0; level < levels; ++level) {
    for (int64_t r = 0; r < config.num_res_blocks; ++r) {
      TimestepSequential block;
      const int64_t out = config.channel_mult[level] * mc;
      block->append(ResBlock(ch, emb_channels, out, config, options).ptr());
      ch = out;
      if (config.has_attention(level)) block->append(SpatialTransformer(ch, config.depth_at(level), config, options).ptr());
      add_input(block);
      skip_channels.push_back(ch);
    }
    if (level != levels - 1) {
      TimestepSequential block;
      block->append(Downsample(ch, options).ptr());
      add_input(block);
      skip_channels.push_back(ch);
    }
  }

  middle_block = register_module("middle_block", TimestepSequential());
  middle_block->append(ResBlock(ch, emb_channels, ch, config, options).ptr());
  if (config.middle_attention)
    middle_block->append(SpatialTransformer(ch, config.transformer_depth, config, options).ptr());
  if (config.middle_res_blocks == 2) middle_block->append(ResBlock(ch, emb_channels, ch, config, options).ptr());

  auto outputs = register_module("output_blocks", Slots());
  for (int64_t level = levels - 1; level >= 0; --level) {
    for (int64_t r = 0; r <= config.num_res_blocks; ++r) {
      TimestepSequential block;
      const int64_t skip = skip_channels.back();
      skip_channels.pop_back();
      const int64_t out = config.channel_mult[level] * mc;
      block->append(ResBlock(ch + skip, emb_channels, out, config, options).ptr());
      ch = out;
      if (config.has_attention(level)) block->append(SpatialTransformer(ch, config.depth_at(level), config, options).ptr());
      if (level > 0 && r == config.num_res_blocks) block->append(Upsample(ch, options).ptr());
      outputs->put(std::to_string(output_blocks.size()), block);
      output_blocks.push_back(block);
    }
  }

  auto out = register_module("out", Slots());
  out_norm = GroupNormLayer(config.norm_groups, ch, kGroupNormEps, options);
  out_conv = Conv2dLayer(mc, config.out_channels, 3, 1, 1, options);
  out->put("0", out_norm);
  out->put("2", out_conv);
}

void UNetImpl::initialize(uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  reset_all_parameters(*this, generator);
  // LDM zero-initialises the last conv of every ResBlock, every proj_out and the output conv.
  at::NoGradGuard no_grad;
  for (const auto& module : modules(true)) {
    if (auto* res = dynamic_cast<ResBlockImpl*>(module.get())) {
      res->out_conv->weight.zero_();
      res->out_conv->bias.zero_();
    }
    if (auto* transformer = dynamic_cast<SpatialTransformerImpl*>(module.get())) {
      for (auto& parameter : transformer->proj_out->parameters()) parameter.zero_();
    }
  }
  out_conv->weight.zero_();
  out_conv->bias.zero_();
}

at::Tensor UNetImpl::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& context, const at::Tensor& y) {
  return run(x, t, context, y, 1);
}

at::Tensor UNetImpl::forward_groups(const at::Tensor& x, const at::Tensor& t, const at::Tensor& context,
                                    int64_t groups) {
  check(groups >= 1, "UNet: expected at least one group of conditionings, got ", groups);
  check(config_.adm_in_channels == 0, "UNet: forward_groups needs a UNet without label_emb (y differs per group)");
  return run(x, t, context, {}, groups);
}

std::vector<at::Tensor> UNetImpl::forward_each(const at::Tensor& x, const at::Tensor& t,
                                               const std::vector<at::Tensor>& contexts) {
  check(!contexts.empty(), "UNet: forward_each expected at least one context, got none");
  check(config_.adm_in_channels == 0, "UNet: forward_each needs a UNet without label_emb (y differs per context)");
  check_input(x, t);
  for (size_t k = 0; k < contexts.size(); ++k) check_context(contexts[k], x.size(0), str("context ", k));
  const at::Tensor emb = embed(t, {});  // [B, 4 mc]
  Progress shared{begin(x)};
  if (!checkpointing()) run_context_free(shared, emb);
  std::vector<at::Tensor> outputs;
  for (const at::Tensor& context : contexts) outputs.push_back(run_rest(shared, emb, context));
  return outputs;
}

void UNetImpl::check_input(const at::Tensor& x, const at::Tensor& t) const {
  check(x.dim() == 4 && x.size(1) == config_.in_channels, "UNet: expected x_t [B, ", config_.in_channels,
        ", H, W], got ", x.sizes());
  const int64_t factor = config_.size_multiple();
  check(x.size(2) % factor == 0 && x.size(3) % factor == 0, "UNet: height and width must be divisible by ", factor,
        ", got ", x.size(2), "x", x.size(3));
  check(t.dim() == 1 && t.size(0) == x.size(0), "UNet: expected timesteps [", x.size(0), "], got ", t.sizes());
}

void UNetImpl::check_context(const at::Tensor& context, int64_t rows, const std::string& name) const {
  check(context.dim() == 3 && context.size(0) == rows && context.size(2) == config_.context_dim, "UNet: expected ",
        name, " [", rows, ", L, ", config_.context_dim, "], got ", context.sizes());
}

at::Tensor UNetImpl::embed(const at::Tensor& t, const at::Tensor& y) {
  at::Tensor emb = timestep_embedding(t, config_.model_channels);  // [R, mc]
  emb = time_embed_out(at::silu(time_embed_in(emb)));              // [R, 4 mc]
  if (config_.adm_in_channels > 0) {
    check(y.defined() && y.dim() == 2 && y.size(0) == t.size(0) && y.size(1) == config_.adm_in_channels,
          "UNet: this UNet has a label_emb and expects y [", t.size(0), ", ", config_.adm_in_channels,
          "] (SDXL: the pooled text embedding and the size conditioning), got ",
          y.defined() ? str(y.sizes()) : std::string("none"));
    emb = emb + label_embed_out(at::silu(label_embed_in(y)));  // [R, 4 mc]
  } else {
    check(!y.defined(), "UNet: got a vector y [", y.defined() ? str(y.sizes()) : "", "] but this UNet has no label_emb");
  }
  return emb;
}

bool UNetImpl::checkpointing() const { return gradient_checkpointing && at::GradMode::is_enabled(); }

at::Tensor UNetImpl::layout(const at::Tensor& h) const {
  return channels_last ? h.contiguous(at::MemoryFormat::ChannelsLast) : h;
}

at::Tensor UNetImpl::begin(const at::Tensor& x) {
  input_conv_->channels_last = channels_last;
  return layout(x);
}

at::Tensor UNetImpl::run_block(TimestepSequential& block, const at::Tensor& h, const at::Tensor& emb,
                               const at::Tensor& context) {
  if (!checkpointing()) return block->forward(h, emb, context);
  return checkpointed([&block](const std::vector<at::Tensor>& in) { return block->forward(in[0], in[1], in[2]); },
                      {h, emb, context});
}

void UNetImpl::run_context_free(Progress& progress, const at::Tensor& emb) {
  for (; progress.block < input_blocks.size(); ++progress.block, progress.layer = 0) {
    const auto& layers = input_blocks[progress.block]->layers;
    for (; progress.layer < layers.size(); ++progress.layer) {
      if (layers[progress.layer]->reads_context()) return;
      progress.h = layers[progress.layer]->forward(progress.h, emb, {});
    }
    progress.h = layout(progress.h);
    progress.skips.push_back(progress.h);
  }
}

at::Tensor UNetImpl::run_rest(Progress progress, const at::Tensor& emb, const at::Tensor& context) {
  at::Tensor& h = progress.h;
  std::vector<at::Tensor>& skips = progress.skips;
  if (progress.layer > 0) {  // a block run_context_free began
    const auto& layers = input_blocks[progress.block]->layers;
    for (size_t layer = progress.layer; layer < layers.size(); ++layer) h = layers[layer]->forward(h, emb, context);
    h = layout(h);
    skips.push_back(h);
    ++progress.block;
  }
  for (size_t block = progress.block; block < input_blocks.size(); ++block) {
    h = layout(run_block(input_blocks[block], h, emb, context));
    skips.push_back(h);
  }
  h = layout(run_block(middle_block, h, emb, context));
  for (auto& block : output_blocks) {
    h = layout(at::cat({h, skips.back()}, 1));  // [rows, ch + skip, H, W]
    skips.pop_back();
    h = layout(run_block(block, h, emb, context));
  }
  at::Tensor out = out_conv(out_norm->forward_silu(h));  // [rows, out, H, W]
  return channels_last ? out.contiguous() : out;
}

at::Tensor UNetImpl::run(const at::Tensor& x, const at::Tensor& t, const at::Tensor& context, const at::Tensor& y,
                         int64_t groups) {
  check_input(x, t);
  const int64_t images = x.size(0);
  check_context(context, groups * images, "context");
  // The embedding of every row, as forward(x and t repeated) computes it.
  const at::Tensor emb = embed(groups > 1 ? t.repeat({groups}) : t, y);  // [rows, 4 mc]
  Progress progress{begin(x)};  // [images, C, H, W]
  if (groups > 1) {
    // Until the first layer that reads the context, every group computes the same activations:
    // they run once per image on the first `images` rows of emb (the same values as every
    // group's). Then each image's activation and skips are repeated for every group; cat keeps
    // the inputs' layout (repeat would write NCHW, and channels-last runs would copy it again).
    if (!checkpointing()) run_context_free(progress, emb.narrow(0, 0, images));
    auto repeated = [&](const at::Tensor& h) { return layout(at::cat(std::vector<at::Tensor>(groups, h), 0)); };
    progress.h = repeated(progress.h);  // [rows, C, H, W]
    for (at::Tensor& skip : progress.skips) skip = repeated(skip);
  }
  return run_rest(std::move(progress), emb, context);
}

bool is_cross_attention_key(const std::string& name) { return name.ends_with("attn2.to_k.weight"); }
bool is_cross_attention_value(const std::string& name) { return name.ends_with("attn2.to_v.weight"); }

}  // namespace lethe::models
