// An objective whose settings are one config struct, read strictly from the run's
// objective_config (io/json_config.hpp: defaults, unknown keys rejected, validate), and whose
// needs are fixed: the base answers name(), config_json() and needs_*(); the registration
// constructs Class(name, config).
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "io/json_config.hpp"
#include "unlearn/objective.hpp"

namespace lethe::unlearn {

// What an objective trains on besides the model: the example sets, and a frozen reference
// copy of the starting model.
struct ObjectiveNeeds {
  bool forget = false;
  bool retain = false;
  bool anchor = false;
  bool reference = false;
};

template <typename Config, ObjectiveNeeds needs>
class ConfiguredObjective : public Objective {
 public:
  ConfiguredObjective(std::string name, Config config) : name_(std::move(name)), config_(std::move(config)) {}
  std::string name() const override { return name_; }
  nlohmann::json config_json() const override { return io::to_json(config_); }
  bool needs_forget() const override { return needs.forget; }
  bool needs_retain() const override { return needs.retain; }
  bool needs_anchor() const override { return needs.anchor; }
  bool needs_reference() const override { return needs.reference; }

 protected:
  const std::string name_;
  const Config config_;
};

// Registers Class under `name`; its config starts from `defaults` and takes the keys given.
template <typename Class, typename Config>
void register_configured_objective(const std::string& name, const std::string& description, Config defaults = {}) {
  register_objective(name, description, [name, defaults](const nlohmann::json& json, const std::string& where) {
    return std::make_unique<Class>(name, io::merge_config(defaults, json, where));
  });
}

}  // namespace lethe::unlearn
