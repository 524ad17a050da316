#include "models/unet_config.hpp"

#include <algorithm>
#include <set>

#include "core/error.hpp"
#include "models/unet.hpp"

namespace lethe::models {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

void UNetConfig::validate(const std::string& where) const {
  check(in_channels > 0 && out_channels > 0, where, ": in_channels and out_channels must be > 0");
  check(model_channels > 0, where, ".model_channels: expected > 0, got ", model_channels);
  check(!channel_mult.empty(), where, ".channel_mult: expected at least one level");
  for (int64_t mult : channel_mult) check(mult > 0, where, ".channel_mult: entries must be > 0, got ", mult);
  check(num_res_blocks >= 1, where, ".num_res_blocks: expected >= 1, got ", num_res_blocks);
  for (int64_t level : attention_levels)
    check(level >= 0 && level < static_cast<int64_t>(channel_mult.size()), where, ".attention_levels: level ",
          level, " does not exist (", channel_mult.size(), " levels)");
  check(transformer_depth >= 1, where, ".transformer_depth: expected >= 1, got ", transformer_depth);
  if (!level_transformer_depth.empty()) {
    check(level_transformer_depth.size() == channel_mult.size(), where, ".level_transformer_depth: expected one entry per level (",
          channel_mult.size(), "), got ", level_transformer_depth.size());
    for (size_t level = 0; level < channel_mult.size(); ++level) {
      const int64_t depth = level_transformer_depth[level];
      const bool attention = has_attention(static_cast<int64_t>(level));
      check(attention ? depth >= 1 : depth == 0, where, ".level_transformer_depth[", level, "]: expected ",
            attention ? ">= 1 (an attention level)" : "0 (no attention at this level)", ", got ", depth);
    }
  }
  check(middle_res_blocks == 2 || (middle_res_blocks == 1 && !middle_attention), where,
        ".middle_res_blocks: expected 2, or 1 without middle attention, got ", middle_res_blocks,
        middle_attention ? " with middle attention" : "");
  check(adm_in_channels >= 0, where, ".adm_in_channels: expected >= 0 (0 = no y), got ", adm_in_channels);
  const bool any_attention = !attention_levels.empty() || middle_attention;
  check(!any_attention || context_dim > 0, where, ".context_dim: expected > 0 with attention, got ", context_dim);
  check(num_head_channels == -1 || num_head_channels > 0, where, ".num_head_channels: expected -1 or > 0, got ",
        num_head_channels);
  check(num_head_channels != -1 || num_heads > 0, where, ".num_heads: expected > 0, got ", num_heads);
  check(norm_groups > 0, where, ".norm_groups: expected > 0, got ", norm_groups);
  for (int64_t mult : channel_mult)
    check((mult * model_channels) % norm_groups == 0, where, ": ", mult * model_channels,
          " channels are not divisible into norm_groups = ", norm_groups);
  for (size_t level = 0; level < channel_mult.size(); ++level) {
    if (!has_attention(static_cast<int64_t>(level)) && !(middle_attention && level + 1 == channel_mult.size())) continue;
    const int64_t channels = channel_mult[level] * model_channels;
    if (num_head_channels == -1) {
      check(channels % num_heads == 0, where, ": ", channels, " channels at level ", level,
            " are not divisible into num_heads = ", num_heads);
    } else {
      check(channels % num_head_channels == 0, where, ": ", channels, " channels at level ", level,
            " are not divisible into heads of num_head_channels = ", num_head_channels);
    }
  }
}

bool UNetConfig::has_attention(int64_t level) const {
  return std::find(attention_levels.begin(), attention_levels.end(), level) != attention_levels.end();
}

int64_t UNetConfig::depth_at(int64_t level) const {
  if (!has_attention(level)) return 0;
  return level_transformer_depth.empty() ? transformer_depth : level_transformer_depth[level];
}

std::pair<int64_t, int64_t> UNetConfig::heads_for(int64_t channels) const {
  if (num_head_channels == -1) return {num_heads, channels / num_heads};
  return {channels / num_head_channels, num_head_channels};
}

UNetConfig UNetConfig::sd15() { return UNetConfig{}; }

UNetConfig UNetConfig::sd21() {
  UNetConfig config;
  config.context_dim = 1024;
  config.num_heads = -1;
  config.num_head_channels = 64;
  config.use_linear_in_transformer = true;
  return config;
}

UNetConfig UNetConfig::sdxl() {
  UNetConfig config;
  config.channel_mult = {1, 2, 4};
  config.attention_levels = {1, 2};
  config.transformer_depth = 10;
  config.level_transformer_depth = {0, 2, 10};
  config.context_dim = 2048;
  config.num_heads = -1;
  config.num_head_channels = 64;
  config.use_linear_in_transformer = true;
  config.adm_in_channels = 2816;
  return config;
}

bool operator==(const UNetConfig& a, const UNetConfig& b) { return io::to_json(a) == io::to_json(b); }

ShapeTable unet_shape_table(const UNetConfig& config) {
  UNet meta(config, at::TensorOptions().device(at::kMeta));
  ShapeTable table;
  for (const auto& item : meta->named_parameters()) table[item.key()] = item.value().sizes().vec();
  return table;
}

void check_shape_table(const ShapeTable& expected, const ShapeTable& got, const std::string& where) {
  std::vector<std::string> missing, unexpected;
  for (const auto& [key, shape] : expected) {
    auto found = got.find(key);
    if (found == got.end()) {
      missing.push_back(key);
      continue;
    }
    check(found->second == shape, where, ": key '", key, "' has shape ", shape_text(found->second), ", expected ",
          shape_text(shape));
  }
  for (const auto& [key, shape] : got)
    if (!expected.count(key)) unexpected.push_back(key);
  auto first = [](const std::vector<std::string>& keys) {
    std::vector<std::string> head(keys.begin(), keys.begin() + std::min<size_t>(keys.size(), 5));
    return join(head) + (keys.size() > 5 ? str(", ... (", keys.size(), " in all)") : "");
  };
  check(missing.empty(), where, ": missing key", missing.size() > 1 ? "s " : " ", first(missing));
  check(unexpected.empty(), where, ": unexpected key", unexpected.size() > 1 ? "s " : " ", first(unexpected));
}

namespace {

class TableReader {
 public:
  TableReader(const ShapeTable& table, std::string where) : table_(table), where_(std::move(where)) {}
  bool has(const std::string& key) const { return table_.count(key) > 0; }
  const std::vector<int64_t>& shape(const std::string& key, size_t rank) const {
    auto found = table_.find(key);
    check(found != table_.end(), where_, ": missing key '", key, "' (is this an LDM-layout UNet?)");
    check(found->second.size() == rank, where_, ": key '", key, "' has shape ", shape_text(found->second),
          ", expected rank ", rank);
    return found->second;
  }
  size_t rank(const std::string& key) const {
    auto found = table_.find(key);
    check(found != table_.end(), where_, ": missing key '", key, "'");
    return found->second.size();
  }
  int64_t count_indices(const std::string& prefix, const std::string& suffix) const {
    int64_t count = 0;
    while (has(prefix + std::to_string(count) + suffix)) ++count;
    return count;
  }
  const std::string& where() const { return where_; }

 private:
  const ShapeTable& table_;
  std::string where_;
};

}  // namespace

UNetConfig detect_unet_config(const ShapeTable& shapes, const UNetHints& hints, const std::string& where) {
  TableReader table(shapes, where);
  UNetConfig config;
  const auto& conv_in = table.shape("input_blocks.0.0.weight", 4);
  config.model_channels = conv_in[0];
  config.in_channels = conv_in[1];
  config.out_channels = table.shape("out.2.weight", 4)[0];

  std::vector<int64_t> blocks_per_level;
  std::map<int64_t, std::set<int64_t>> level_depths;  // level -> transformer depths seen there
  std::optional<bool> linear_projection;
  config.channel_mult.clear();
  config.attention_levels.clear();
  int64_t level = 0;
  for (int64_t index = 1;; ++index) {
    const std::string prefix = "input_blocks." + std::to_string(index) + ".";
    if (table.has(prefix + "0.op.weight")) {
      ++level;
      continue;
    }
    if (!table.has(prefix + "0.in_layers.2.weight")) break;
    const std::string conv_key = prefix + "0.in_layers.2.weight";
    const int64_t out = table.shape(conv_key, 4)[0];
    check(out % config.model_channels == 0, where, ": key '", conv_key, "' has ", out,
          " output channels, not a multiple of model_channels = ", config.model_channels);
    const int64_t mult = out / config.model_channels;
    if (static_cast<int64_t>(config.channel_mult.size()) == level) {
      config.channel_mult.push_back(mult);
      blocks_per_level.push_back(0);
    }
    check(config.channel_mult[level] == mult, where, ": key '", conv_key, "' has ", out,
          " output channels, but level ", level, " started with ", config.channel_mult[level] * config.model_channels);
    ++blocks_per_level[level];
    config.use_scale_shift_norm = table.shape(prefix + "0.emb_layers.1.weight", 2)[0] == 2 * out;
    if (table.has(prefix + "1.norm.weight")) {
      if (!config.has_attention(level)) config.attention_levels.push_back(level);
      level_depths[level].insert(table.count_indices(prefix + "1.transformer_blocks.", ".attn1.to_q.weight"));
      linear_projection = table.rank(prefix + "1.proj_in.weight") == 2;
    }
  }
  check(!config.channel_mult.empty(), where, ": no res blocks found under input_blocks");
  config.num_res_blocks = blocks_per_level[0];
  for (size_t l = 0; l < blocks_per_level.size(); ++l)
    check(blocks_per_level[l] == config.num_res_blocks, where, ": level ", l, " has ", blocks_per_level[l],
          " res blocks, level 0 has ", config.num_res_blocks, " (per-level counts are not supported)");

  config.middle_attention = table.has("middle_block.1.norm.weight");
  config.middle_res_blocks = config.middle_attention || table.has("middle_block.1.in_layers.0.weight") ? 2 : 1;
  std::optional<int64_t> middle_depth;
  if (config.middle_attention) {
    middle_depth = table.count_indices("middle_block.1.transformer_blocks.", ".attn1.to_q.weight");
    if (!linear_projection) linear_projection = table.rank("middle_block.1.proj_in.weight") == 2;
  }
  // One depth per level (SDXL: 2 at level 1, 10 at level 2); the middle block's is its own.
  std::set<int64_t> distinct;
  for (const auto& [l, seen] : level_depths) {
    check(seen.size() == 1, where, ": the transformers at level ", l, " have different depths (",
          join([&] {
            std::vector<std::string> items;
            for (int64_t d : seen) items.push_back(std::to_string(d));
            return items;
          }()),
          "); per-block depths within a level are not supported");
    distinct.insert(*seen.begin());
  }
  if (middle_depth) distinct.insert(*middle_depth);
  config.transformer_depth = middle_depth.value_or(distinct.empty() ? 1 : *distinct.rbegin());
  if (distinct.size() > 1) {
    config.level_transformer_depth.assign(config.channel_mult.size(), 0);
    for (const auto& [l, seen] : level_depths) config.level_transformer_depth[l] = *seen.begin();
  }
  config.use_linear_in_transformer = linear_projection.value_or(false);
  if (table.has("label_emb.0.0.weight")) config.adm_in_channels = table.shape("label_emb.0.0.weight", 2)[1];

  const bool any_attention = !config.attention_levels.empty() || config.middle_attention;
  if (any_attention) {
    std::string key = config.middle_attention ? "middle_block.1.transformer_blocks.0.attn2.to_k.weight" : "";
    if (key.empty()) {
      for (const auto& [name, shape] : shapes)
        if (name.size() > 18 && name.compare(name.size() - 18, 18, ".attn2.to_k.weight") == 0) key = name;
    }
    config.context_dim = table.shape(key, 2)[1];
  }

  config.norm_groups = hints.norm_groups.value_or(32);
  if (hints.num_heads || hints.num_head_channels) {
    config.num_heads = hints.num_heads.value_or(-1);
    config.num_head_channels = hints.num_head_channels.value_or(-1);
  } else if (config.context_dim == 768 || !any_attention) {
    config.num_heads = 8;  // SD 1.x
    config.num_head_channels = -1;
  } else if (config.context_dim == 1024 || config.context_dim == 2048 || config.context_dim == 1280) {
    config.num_heads = -1;  // SD 2.x, SDXL, SDXL refiner
    config.num_head_channels = 64;
  } else {
    throw Error(str(where, ": cannot tell the attention head count from the weights (context width ",
                    config.context_dim, " is not SD1.x's 768, SD2.x's 1024 or SDXL's 2048/1280); give num_heads or ",
                    "num_head_channels"));
  }
  config.validate(where);
  check_shape_table(unet_shape_table(config), shapes, where);
  return config;
}

}  // namespace lethe::models
