// `--set KEY=VALUE`, as `lethe unlearn` (trainer.steps=50, a config key) and `lethe run`
// (7.steps=50, NODE_ID.INPUT) take it: the value is parsed as JSON (50, 0.5, true, [1, 2],
// "text") or, when it is not JSON, taken as the plain text.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace lethe::io {

struct SetOverride {
  std::string assignment;  // as given, for messages
  std::string key;         // before the first '=': "trainer.steps", "7.steps"
  std::string text;        // after it, as written
  nlohmann::json value;    // `text` parsed as JSON, else `text` as a string
};

// Splits KEY=VALUE; `form` is what the flag expects, for the error ("key=value").
SetOverride parse_set_override(const std::string& assignment, const std::string& form);

// Applies "a.b.c=value" to a JSON config: config["a"]["b"]["c"] = value (objects made on the way).
void apply_config_override(nlohmann::json& config, const std::string& assignment);

}  // namespace lethe::io
