// Named sources of a run's inputs that the core does not know itself. A run config's
// data.preset picks a data preset: the core registers "folders" (image folders with captions
// and masks); the embedded bench (native/bench) registers "bench". A run config without a
// model starts from the default model, which the bench registers (its base model). Unknown
// names are errors listing the known ones.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "unlearn/run.hpp"

namespace lethe::unlearn {

using DataPreset = std::function<TaskData(const DataConfig& config, const models::DiffusionModel& model)>;

void register_data_preset(const std::string& name, DataPreset preset);
std::vector<std::string> data_preset_names();
const DataPreset& data_preset(const std::string& name, const std::string& where);

// The model file a run starts from when its config names none; empty when none is registered.
void set_default_model(std::function<std::filesystem::path()> provider);
std::filesystem::path default_model_path();

}  // namespace lethe::unlearn
