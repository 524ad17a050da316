#include "unlearn/presets.hpp"

#include <map>
#include <mutex>

#include "core/error.hpp"

namespace lethe::unlearn {

namespace {

std::mutex& registry_mutex() {
  static std::mutex mutex;
  return mutex;
}

std::map<std::string, DataPreset>& presets() {
  static std::map<std::string, DataPreset> entries = {{"folders", folder_task_data}};  // the core's own
  return entries;
}

std::function<std::filesystem::path()>& default_model() {
  static std::function<std::filesystem::path()> provider;
  return provider;
}

}  // namespace

void register_data_preset(const std::string& name, DataPreset preset) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  check(!presets().count(name), "data preset '", name, "' is registered twice");
  presets().emplace(name, std::move(preset));
}

std::vector<std::string> data_preset_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (const auto& [name, preset] : presets()) names.push_back(name);
  return names;
}

const DataPreset& data_preset(const std::string& name, const std::string& where) {
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto found = presets().find(name);
    if (found != presets().end()) return found->second;
  }
  throw Error(str(where, ": unknown data preset '", name, "'; known: ", join(data_preset_names())));
}

void set_default_model(std::function<std::filesystem::path()> provider) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  default_model() = std::move(provider);
}

std::filesystem::path default_model_path() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  return default_model() ? default_model()() : std::filesystem::path();
}

}  // namespace lethe::unlearn
