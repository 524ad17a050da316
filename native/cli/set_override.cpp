#include "cli/set_override.hpp"

#include "core/error.hpp"

namespace lethe::cli {

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

}  // namespace lethe::cli
