#include "cli/commands.hpp"

#include <functional>
#include <iostream>
#include <map>
#include <memory>

#include "core/error.hpp"
#include "io/json_config.hpp"
#include "io/safetensors.hpp"
#include "models/unet_file.hpp"

namespace lethe::cli {

namespace {

struct Registry {
  std::map<CLI::App*, std::function<int()>> actions;
};
Registry& registry() {
  static Registry instance;
  return instance;
}

void add_inspect(CLI::App& app) {
  auto* command = app.add_subcommand("inspect", "Show a .safetensors file: metadata, tensors and, for a UNet, "
                                                "the configuration detected from its weights");
  auto path = std::make_shared<std::string>();
  auto show_tensors = std::make_shared<bool>(false);
  command->add_option("file", *path, "the .safetensors file")->required()->check(CLI::ExistingFile);
  command->add_flag("--tensors", *show_tensors, "list every tensor with dtype and shape");
  registry().actions[command] = [path, show_tensors]() {
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
      const std::string prefix = models::find_unet_prefix(file);
      out["unet_prefix"] = prefix;
      out["unet_config"] = io::to_json(models::detect_unet_config(file));
    } catch (const Error& e) {
      out["unet_error"] = e.what();
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  };
}

}  // namespace

void register_commands(CLI::App& app) { add_inspect(app); }

int run_selected(CLI::App& app) {
  for (CLI::App* command : app.get_subcommands()) {
    auto found = registry().actions.find(command);
    if (found != registry().actions.end()) return found->second();
  }
  std::cout << app.help();
  return 0;
}

}  // namespace lethe::cli
