// The configuration of the LDM-layout UNet and its detection from a checkpoint's
// key/shape table (which keys exist and their shapes), as stable-diffusion.cpp does.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/json_config.hpp"

namespace lethe::models {

struct UNetConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  int64_t model_channels = 320;
  std::vector<int64_t> channel_mult = {1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  std::vector<int64_t> attention_levels = {0, 1, 2};  // levels (indices into channel_mult) with transformers
  int64_t transformer_depth = 1;  // transformer blocks in the middle block, and at each attention level by default
  // Transformer blocks per level (one entry per channel_mult entry, 0 exactly at the levels
  // without attention); empty = transformer_depth at every attention level. SDXL: {0, 2, 10}.
  std::vector<int64_t> level_transformer_depth;
  bool middle_attention = true;
  // Res blocks in the middle block: 2 (around its transformer, or back to back without one), or
  // 1 without a transformer (SSD-1B, Segmind Vega: ComfyUI's transformer_depth_middle = -1).
  int64_t middle_res_blocks = 2;
  int64_t context_dim = 768;
  int64_t num_heads = 8;           // used when num_head_channels == -1
  int64_t num_head_channels = -1;  // fixed head width (SD2: 64); -1 = use num_heads
  bool use_linear_in_transformer = false;
  bool use_scale_shift_norm = false;
  int64_t norm_groups = 32;
  // Width of the vector y that label_emb maps onto the timestep embedding (SDXL: 2816, its
  // pooled text embedding and size conditioning); 0 = no label_emb, no y.
  int64_t adm_in_channels = 0;

  template <typename Visitor>
  void visit(Visitor& v) {
    v("in_channels", in_channels);
    v("out_channels", out_channels);
    v("model_channels", model_channels);
    v("channel_mult", channel_mult);
    v("num_res_blocks", num_res_blocks);
    v("attention_levels", attention_levels);
    v("transformer_depth", transformer_depth);
    v("level_transformer_depth", level_transformer_depth);
    v("middle_attention", middle_attention);
    v("middle_res_blocks", middle_res_blocks);
    v("context_dim", context_dim);
    v("num_heads", num_heads);
    v("num_head_channels", num_head_channels);
    v("use_linear_in_transformer", use_linear_in_transformer);
    v("use_scale_shift_norm", use_scale_shift_norm);
    v("norm_groups", norm_groups);
    v("adm_in_channels", adm_in_channels);
  }
  void validate(const std::string& where) const;

  bool has_attention(int64_t level) const;
  // Transformer blocks of each transformer at `level` (0 without attention).
  int64_t depth_at(int64_t level) const;
  // (heads, head width) for a transformer over `channels` channels.
  std::pair<int64_t, int64_t> heads_for(int64_t channels) const;
  // What height and width must be multiples of: each level after the first halves them.
  int64_t size_multiple() const { return int64_t{1} << (channel_mult.size() - 1); }

  static UNetConfig sd15();
  static UNetConfig sd21();
  static UNetConfig sdxl();
};

bool operator==(const UNetConfig& a, const UNetConfig& b);

// Key -> shape, the form in which a checkpoint describes itself.
using ShapeTable = std::map<std::string, std::vector<int64_t>>;

// What weights cannot tell: the number of attention heads and the GroupNorm group count.
// Defaults follow the SD family: context width 768 -> 8 heads (SD1.x), 1024 -> 64-wide
// heads (SD2.x), 2048 and 1280 -> 64-wide heads (SDXL base, SDXL refiner); other widths
// need a hint (Lethe's own files carry the full config in their metadata).
struct UNetHints {
  std::optional<int64_t> num_heads;
  std::optional<int64_t> num_head_channels;
  std::optional<int64_t> norm_groups;
};

// Derives the config from `shapes` (UNet keys without prefix), then checks the whole table
// against the shapes that config implies. Throws lethe::Error naming the offending key
// (and both shapes) for a wrong shape, a missing or an unexpected key. `where` names the
// source (file path) in messages.
UNetConfig detect_unet_config(const ShapeTable& shapes, const UNetHints& hints, const std::string& where);

// The key/shape table a config implies (built on the meta device, nothing allocated).
ShapeTable unet_shape_table(const UNetConfig& config);

// Compares two tables; throws naming missing keys, unexpected keys and shape mismatches.
void check_shape_table(const ShapeTable& expected, const ShapeTable& got, const std::string& where);

std::string shape_text(const std::vector<int64_t>& shape);

}  // namespace lethe::models
