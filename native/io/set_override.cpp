#include "io/set_override.hpp"

#include "core/error.hpp"

namespace lethe::io {

SetOverride parse_set_override(const std::string& assignment, const std::string& form) {
  const auto equals = assignment.find('=');
  check(equals != std::string::npos, "--set expects ", form, ", got '", assignment, "'");
  SetOverride parsed{assignment, assignment.substr(0, equals), assignment.substr(equals + 1), {}};
  try {
    parsed.value = nlohmann::json::parse(parsed.text);
  } catch (const nlohmann::json::exception&) {
    parsed.value = parsed.text;
  }
  return parsed;
}

void apply_config_override(nlohmann::json& config, const std::string& assignment) {
  const SetOverride given = parse_set_override(assignment, "key=value");
  nlohmann::json* node = &config;
  size_t start = 0;
  while (true) {
    const size_t dot = given.key.find('.', start);
    const std::string key = given.key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (dot == std::string::npos) {
      (*node)[key] = given.value;
      break;
    }
    node = &(*node)[key];
    start = dot + 1;
  }
}

}  // namespace lethe::io
