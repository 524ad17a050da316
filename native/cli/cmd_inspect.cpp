// `lethe inspect FILE.safetensors`: metadata, tensors and the detected UNet config.
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "io/json_config.hpp"
#include "io/safetensors.hpp"
#include "models/unet_file.hpp"

namespace lethe::cli {

void add_inspect_command(CLI::App& app) {
  auto* command = app.add_subcommand("inspect", "Show a .safetensors file: metadata, tensors and, for a UNet, "
                                                "the configuration detected from its weights");
  auto path = std::make_shared<std::string>();
  auto show_tensors = std::make_shared<bool>(false);
  command->add_option("file", *path, "the .safetensors file")->required()->check(CLI::ExistingFile);
  command->add_flag("--tensors", *show_tensors, "list every tensor with dtype and shape");
  set_action(command, [path, show_tensors]() {
    const io::SafetensorsFile file = io::SafetensorsFile::open(*path);
    io::json out;
    out["file"] = *path;
    out["tensor_count"] = file.names().size();
    out["metadata"] = file.metadata();
    if (*show_tensors) {
      for (const std::string& name : file.names())
        out["tensors"][name] = {{"dtype", file.entry(name).dtype}, {"shape", file.entry(name).shape}};
    }
    try {
      out["unet_prefix"] = models::find_unet_prefix(file);
      out["unet_config"] = io::to_json(models::detect_unet_config(file));
    } catch (const Error& e) {
      out["unet_error"] = e.what();
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  });
}

}  // namespace lethe::cli
