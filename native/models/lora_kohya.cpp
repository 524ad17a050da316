#include "models/lora_kohya.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "models/lora.hpp"

namespace lethe::models {

namespace {

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::string join_from(const std::vector<std::string>& parts, size_t from) {
  std::string out;
  for (size_t i = from; i < parts.size(); ++i) out += (out.empty() ? "" : ".") + parts[i];
  return out;
}

int64_t number(const std::string& text, const std::string& path) {
  check(!text.empty() && std::all_of(text.begin(), text.end(), ::isdigit), "LoRA key mapping: '", path,
        "' is not an LDM UNet module path (expected a block index, got '", text, "')");
  return std::stoll(text);
}

// Inside a ResBlock: LDM layer names -> diffusers'.
std::string resnet_inner(const std::string& rest, const std::string& path) {
  static const std::map<std::string, std::string> names = {
      {"in_layers.0", "norm1"},  {"in_layers.2", "conv1"},  {"emb_layers.1", "time_emb_proj"},
      {"out_layers.0", "norm2"}, {"out_layers.3", "conv2"}, {"skip_connection", "conv_shortcut"}};
  auto found = names.find(rest);
  check(found != names.end(), "LoRA key mapping: '", path, "': unknown ResBlock layer '", rest, "'");
  return found->second;
}

std::string with_rest(const std::string& prefix, const std::string& rest) { return rest.empty() ? prefix : prefix + "." + rest; }

}  // namespace

std::string diffusers_module_path(const std::string& ldm_path, const UNetConfig& config) {
  const std::vector<std::string> p = split(ldm_path);
  const int64_t levels = static_cast<int64_t>(config.channel_mult.size());
  const int64_t per_level = config.num_res_blocks + 1;
  if (ldm_path == "time_embed.0") return "time_embedding.linear_1";
  if (ldm_path == "time_embed.2") return "time_embedding.linear_2";
  if (config.adm_in_channels > 0 && ldm_path == "label_emb.0.0") return "add_embedding.linear_1";  // SDXL
  if (config.adm_in_channels > 0 && ldm_path == "label_emb.0.2") return "add_embedding.linear_2";
  if (ldm_path == "out.0") return "conv_norm_out";
  if (ldm_path == "out.2") return "conv_out";
  check(p.size() >= 3, "LoRA key mapping: '", ldm_path, "' is not an LDM UNet module path");
  const std::string rest = join_from(p, 3);
  if (p[0] == "input_blocks") {
    const int64_t i = number(p[1], ldm_path);
    if (i == 0) return "conv_in";
    const int64_t level = (i - 1) / per_level, j = (i - 1) % per_level;
    check(level < levels, "LoRA key mapping: '", ldm_path, "': input block ", i, " is beyond this UNet's ", levels, " levels");
    const std::string block = "down_blocks." + std::to_string(level);
    if (j == config.num_res_blocks) return block + ".downsamplers.0.conv";  // input_blocks.i.0.op
    if (p[2] == "0") return block + ".resnets." + std::to_string(j) + "." + resnet_inner(rest, ldm_path);
    check(p[2] == "1" && config.has_attention(level), "LoRA key mapping: '", ldm_path, "': no transformer there");
    return with_rest(block + ".attentions." + std::to_string(j), rest);
  }
  if (p[0] == "middle_block") {
    if (p[1] == "0" || p[1] == "2")
      return "mid_block.resnets." + std::string(p[1] == "0" ? "0" : "1") + "." + resnet_inner(join_from(p, 2), ldm_path);
    check(p[1] == "1" && config.middle_attention, "LoRA key mapping: '", ldm_path, "': no middle transformer");
    return with_rest("mid_block.attentions.0", join_from(p, 2));
  }
  if (p[0] == "output_blocks") {
    const int64_t i = number(p[1], ldm_path);
    const int64_t up = i / per_level, a = i % per_level;
    check(up < levels, "LoRA key mapping: '", ldm_path, "': output block ", i, " is beyond this UNet's levels");
    const int64_t level = levels - 1 - up;
    const std::string block = "up_blocks." + std::to_string(up);
    const int64_t sub = number(p[2], ldm_path);
    if (sub == 0) return block + ".resnets." + std::to_string(a) + "." + resnet_inner(rest, ldm_path);
    if (sub == 1 && config.has_attention(level)) return with_rest(block + ".attentions." + std::to_string(a), rest);
    // The upsampler: output_blocks.i.1.conv (no transformer at this level) or .2.conv.
    check(a == config.num_res_blocks && level > 0 && rest == "conv", "LoRA key mapping: '", ldm_path,
          "': not a layer of this UNet");
    return block + ".upsamplers.0.conv";
  }
  throw Error(str("LoRA key mapping: '", ldm_path, "' is not an LDM UNet module path (input_blocks, middle_block, ",
                  "output_blocks, time_embed or out)"));
}

std::string kohya_module_name(const std::string& ldm_path, const UNetConfig& config) {
  std::string name = diffusers_module_path(ldm_path, config);
  std::replace(name.begin(), name.end(), '.', '_');
  return "lora_unet_" + name;
}

namespace {

const char* const kSuffixes[] = {".lora_down.weight", ".lora_up.weight", ".alpha"};

// Splits "<module>.<suffix>" for the LoRA suffixes; returns false otherwise.
bool split_suffix(const std::string& key, std::string& module, std::string& suffix) {
  for (const char* s : kSuffixes) {
    const std::string text = s;
    if (key.size() > text.size() && key.compare(key.size() - text.size(), text.size(), text) == 0) {
      module = key.substr(0, key.size() - text.size());
      suffix = text;
      return true;
    }
  }
  return false;
}

}  // namespace

std::map<std::string, at::Tensor> to_kohya(const std::map<std::string, at::Tensor>& tensors, const UNetConfig& config) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [key, tensor] : tensors) {
    std::string module, suffix;
    check(split_suffix(key, module, suffix), "LoRA export: '", key, "' is not an adapter tensor (expected a name ending in ",
          ".lora_down.weight, .lora_up.weight or .alpha)");
    out[kohya_module_name(module, config) + suffix] = tensor;
  }
  return out;
}

std::map<std::string, at::Tensor> from_kohya(const std::map<std::string, at::Tensor>& tensors, const UNetConfig& config,
                                             const std::vector<std::string>& ldm_paths, const std::string& where) {
  std::map<std::string, std::string> by_kohya;
  for (const auto& path : ldm_paths) by_kohya[kohya_module_name(path, config)] = path;
  std::map<std::string, at::Tensor> out;
  std::vector<std::string> unknown;
  for (const auto& [key, tensor] : tensors) {
    std::string module, suffix;
    auto found = split_suffix(key, module, suffix) ? by_kohya.find(module) : by_kohya.end();
    if (found == by_kohya.end()) {
      unknown.push_back(key);
      continue;
    }
    out[found->second + suffix] = tensor;
  }
  if (!unknown.empty()) {
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", " : "") + unknown[i];
    throw Error(str(where, ": ", unknown.size(), " LoRA key(s) match no adapted layer of this UNet (e.g. ", list,
                    "); the LoRA was made for another model or other target modules"));
  }
  return out;
}

std::map<std::string, at::Tensor> kohya_file_weight_deltas(const std::filesystem::path& file, const UNetConfig& config,
                                                           const std::string& where) {
  const ShapeTable shapes = unet_shape_table(config);
  std::vector<std::string> paths;
  for (const auto& [key, shape] : shapes)
    if (shape.size() >= 2 && key.size() > 7 && key.compare(key.size() - 7, 7, ".weight") == 0)
      paths.push_back(key.substr(0, key.size() - 7));
  io::SafetensorsFile tensors = io::SafetensorsFile::open(file);
  std::map<std::string, at::Tensor> deltas;
  for (auto& [key, delta] : lora_weight_deltas(from_kohya(tensors.tensors(), config, paths, where), where))
    deltas["diffusion_model." + key] = delta.reshape(shapes.at(key));  // [out, in, ...]
  return deltas;
}

}  // namespace lethe::models
