// The native UNet in the Stable Diffusion (LDM, openaimodel.py) layout. Module names are
// the checkpoint's state-dict keys: time_embed.{0,2}, input_blocks.N.M...,
// middle_block.{0,1,2}, output_blocks.N.M..., out.{0,2}; so reading this file and reading
// the weights file are the same act.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "models/layers.hpp"
#include "models/unet_config.hpp"

namespace lethe::models {

// A layer of a TimestepEmbedSequential: sees the feature map, the timestep embedding and
// the text context; each kind uses what it needs.
class UNetLayer : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x, const at::Tensor& emb, const at::Tensor& context) = 0;
  // Whether its output depends on the context (cross-attention). Layers before the first that
  // does compute the same for every conditioning of an image (UNetImpl::forward's groups).
  virtual bool reads_context() const { return false; }
};

class ResBlockImpl : public UNetLayer {
 public:
  ResBlockImpl(int64_t channels, int64_t emb_channels, int64_t out_channels, const UNetConfig& config,
               const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& emb, const at::Tensor& context) override;

  GroupNormLayer in_norm{nullptr};     // in_layers.0
  Conv2dLayer in_conv{nullptr};        // in_layers.2
  LinearLayer emb_linear{nullptr};     // emb_layers.1
  GroupNormLayer out_norm{nullptr};    // out_layers.0
  Conv2dLayer out_conv{nullptr};       // out_layers.3 (zero-initialised)
  Conv2dLayer skip{nullptr};           // skip_connection (1x1) when channels change
  bool scale_shift;
};
TORCH_MODULE(ResBlock);

class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim,
                     const at::TensorOptions& options);
  // x [B, N, query_dim], context [B, L, context_dim] (undefined = self-attention)
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context);

  int64_t heads, head_dim;
  LinearLayer to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  LinearLayer to_out{nullptr};  // to_out.0
};
TORCH_MODULE(CrossAttention);

class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(int64_t dim, int64_t context_dim, int64_t heads, int64_t head_dim,
                       const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context);  // [B, N, dim]

  CrossAttention attn1{nullptr}, attn2{nullptr};
  LinearLayer ff_in{nullptr};   // ff.net.0.proj (GEGLU: dim -> 2 * 4 dim)
  LinearLayer ff_out{nullptr};  // ff.net.2 (4 dim -> dim)
  LayerNormLayer norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
};
TORCH_MODULE(TransformerBlock);

class SpatialTransformerImpl : public UNetLayer {
 public:
  SpatialTransformerImpl(int64_t channels, int64_t depth, const UNetConfig& config, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& emb, const at::Tensor& context) override;
  bool reads_context() const override { return true; }

  bool linear_projection;
  GroupNormLayer norm{nullptr};
  std::shared_ptr<torch::nn::Module> proj_in, proj_out;  // Conv2dLayer (1x1) or LinearLayer
  std::vector<TransformerBlock> blocks;                  // transformer_blocks.K
};
TORCH_MODULE(SpatialTransformer);

class DownsampleImpl : public UNetLayer {
 public:
  DownsampleImpl(int64_t channels, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& emb, const at::Tensor& context) override;
  Conv2dLayer op{nullptr};  // 3x3, stride 2
};
TORCH_MODULE(Downsample);

class UpsampleImpl : public UNetLayer {
 public:
  UpsampleImpl(int64_t channels, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& emb, const at::Tensor& context) override;
  Conv2dLayer conv{nullptr};  // nearest x2, then 3x3
};
TORCH_MODULE(Upsample);

class InputConvImpl : public UNetLayer {
 public:
  InputConvImpl(int64_t in_channels, int64_t out_channels, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& emb, const at::Tensor& context) override;
  Conv2dLayer conv{nullptr};
  bool channels_last = false;  // the UNet's, set at the start of each of its forwards
};

// LDM's TimestepEmbedSequential: layers named "0", "1", ...
class TimestepSequentialImpl : public torch::nn::Module {
 public:
  void append(std::shared_ptr<UNetLayer> layer);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& emb, const at::Tensor& context);
  std::vector<std::shared_ptr<UNetLayer>> layers;
};
TORCH_MODULE(TimestepSequential);

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetConfig& config, const at::TensorOptions& options = {});
  // x_t [B, in, H, W] (H, W divisible by 2^(levels-1)), t [B] (int or float timesteps),
  // context [B, L, context_dim], y [B, adm_in_channels] (only with label_emb, else
  // undefined) -> [B, out, H, W]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& context, const at::Tensor& y = {});
  // Each image under `groups` conditionings at once (classifier-free guidance: unconditional and
  // conditional): x_t [B, in, H, W], t [B], context [groups * B, L, context_dim] (group g's rows
  // g B .. g B + B - 1) -> [groups * B, out, H, W], the same as forward(x_t and t repeated
  // groups times, context). Without y only: the layers before the first cross-attention see
  // neither the context nor y, so with no y they run once per image instead of once per row
  // (docs/performance.md §Precision, "Guidance rows").
  at::Tensor forward_groups(const at::Tensor& x, const at::Tensor& t, const at::Tensor& context, int64_t groups);
  // x_t under each of several contexts, each output with a graph of its own: x [B, in, H, W],
  // t [B], contexts[k] [B, L, context_dim] -> one [B, out, H, W] per context, what forward(x, t,
  // contexts[k]) gives. Without y only. The layers before the first cross-attention run once for
  // all contexts, the rest once per context, so a backward from one output runs through that
  // output's own layers and the shared ones only (SISS's retain and forget terms; without
  // activation checkpointing: with it, every context runs the whole UNet).
  std::vector<at::Tensor> forward_each(const at::Tensor& x, const at::Tensor& t, const std::vector<at::Tensor>& contexts);
  // Re-initialises all weights from a seed (PyTorch defaults; zero-initialised output convs).
  void initialize(uint64_t seed);
  const UNetConfig& config() const { return config_; }

  // Runs each input/middle/output block under activation checkpointing while grad mode is
  // on: activations are recomputed in backward instead of stored.
  bool gradient_checkpointing = false;
  bool channels_last = false;  // runs its activations channels-last (bf16 on a CPU, sampling copies); returns NCHW

 private:
  // How far the input blocks have run: the activation, the skips so far, the next block and
  // the next layer in it.
  struct Progress {
    at::Tensor h;
    std::vector<at::Tensor> skips;
    size_t block = 0, layer = 0;
  };
  at::Tensor run(const at::Tensor& x, const at::Tensor& t, const at::Tensor& context, const at::Tensor& y,
                 int64_t groups);
  void check_input(const at::Tensor& x, const at::Tensor& t) const;
  // context [rows, L, context_dim]; errors call it `name`.
  void check_context(const at::Tensor& context, int64_t rows, const std::string& name) const;
  // The timestep (and, with label_emb, y) embedding of every row: t [R] -> [R, 4 mc].
  at::Tensor embed(const at::Tensor& t, const at::Tensor& y);
  bool checkpointing() const;
  // Channels-last runs restate the layout after each block and concatenation: a 1-channel input
  // (or a conv of it) is NCHW and channels-last at once, and ops on it return NCHW.
  at::Tensor layout(const at::Tensor& h) const;
  // x in the layout of this forward, the input conv told that layout.
  at::Tensor begin(const at::Tensor& x);
  at::Tensor run_block(TimestepSequential& block, const at::Tensor& h, const at::Tensor& emb, const at::Tensor& context);
  // Runs the input layers from `progress` on until the first that reads the context (or to the
  // end of the input blocks): they compute the same for every context.
  void run_context_free(Progress& progress, const at::Tensor& emb);
  // The rest from `progress`: the remaining input layers, the middle and output blocks and the
  // output layers -> [rows, out, H, W], NCHW.
  at::Tensor run_rest(Progress progress, const at::Tensor& emb, const at::Tensor& context);
  UNetConfig config_;
  LinearLayer time_embed_in{nullptr}, time_embed_out{nullptr};  // time_embed.0, time_embed.2
  LinearLayer label_embed_in{nullptr}, label_embed_out{nullptr};  // label_emb.0.0, label_emb.0.2 (adm_in_channels > 0)
  std::vector<TimestepSequential> input_blocks, output_blocks;
  TimestepSequential middle_block{nullptr};
  GroupNormLayer out_norm{nullptr};  // out.0
  Conv2dLayer out_conv{nullptr};     // out.2
  std::shared_ptr<InputConvImpl> input_conv_;  // input_blocks.0.0 (registered there)
};
TORCH_MODULE(UNet);

// Whether a UNet parameter name ("<LDM path>.attn2.to_k.weight", "...to_v.weight") is a
// cross-attention key or value projection: the weights that read the text condition (what
// ESD-x and the f-divergence paper train, and what UCE edits).
bool is_cross_attention_key(const std::string& name);
bool is_cross_attention_value(const std::string& name);

// Sinusoidal timestep embedding as in LDM: [cos(t f), sin(t f)], f_i = 10000^(-i/half).
at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double max_period = 10000.0);  // [B] -> [B, dim]

}  // namespace lethe::models
