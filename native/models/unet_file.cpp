#include "models/unet_file.hpp"

#include "core/error.hpp"
#include "models/state_dict.hpp"

namespace lethe::models {

std::string find_unet_prefix(const io::SafetensorsFile& file) {
  for (const char* prefix : {"model.diffusion_model.", "diffusion_model."})
    if (file.contains(std::string(prefix) + "input_blocks.0.0.weight")) return prefix;
  if (file.contains("input_blocks.0.0.weight")) return "";
  throw Error(str("checkpoint '", file.path().string(), "': no LDM-layout UNet found (expected a key "
                  "'model.diffusion_model.input_blocks.0.0.weight', 'diffusion_model.input_blocks.0.0.weight' or "
                  "'input_blocks.0.0.weight'; diffusers-layout UNets must be converted first)"));
}

namespace {

ShapeTable unet_shapes(const io::SafetensorsFile& file, const std::string& prefix) {
  ShapeTable shapes;
  for (const std::string& name : file.names())
    if (name.compare(0, prefix.size(), prefix) == 0) shapes[name.substr(prefix.size())] = file.entry(name).shape;
  return shapes;
}

}  // namespace

UNetConfig detect_unet_config(const io::SafetensorsFile& file, UNetHints hints) {
  const std::string where = str("checkpoint '", file.path().string(), "'");
  std::optional<UNetConfig> declared;
  if (auto found = file.metadata().find(kUNetConfigMetadataKey); found != file.metadata().end()) {
    declared = io::read_config<UNetConfig>(io::parse_json(found->second, where + " metadata"),
                                           str(where, " metadata ", kUNetConfigMetadataKey));
    hints.num_heads = declared->num_heads;
    hints.num_head_channels = declared->num_head_channels;
    hints.norm_groups = declared->norm_groups;
  }
  UNetConfig config = detect_unet_config(unet_shapes(file, find_unet_prefix(file)), hints, where);
  if (declared) {
    check(io::to_json(*declared) == io::to_json(config), where, ": metadata config ",
          io::to_json(*declared).dump(), " disagrees with the weights, which give ", io::to_json(config).dump());
  }
  return config;
}

LoadedUNet load_unet(const std::filesystem::path& path, UNetHints hints, const at::TensorOptions& options) {
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  LoadedUNet loaded;
  loaded.prefix = find_unet_prefix(file);
  loaded.metadata = file.metadata();
  loaded.unet = UNet(detect_unet_config(file, hints), options);
  TensorMap tensors;
  for (const std::string& name : file.names())
    if (name.compare(0, loaded.prefix.size(), loaded.prefix) == 0) tensors[name.substr(loaded.prefix.size())] = file.tensor(name);
  load_state_dict_strict(*loaded.unet, tensors, str("checkpoint '", path.string(), "'"));
  return loaded;
}

}  // namespace lethe::models
