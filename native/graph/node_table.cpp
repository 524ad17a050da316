#include "graph/node_table.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>

#include "core/error.hpp"
#include "io/json_config.hpp"

namespace lethe::graph {

namespace {

void check_keys(const nlohmann::json& object, const std::set<std::string>& allowed, const std::string& where) {
  check(object.is_object(), where, ": expected a JSON object, got ", io::json_excerpt(object));
  for (const auto& [key, value] : object.items())
    check(allowed.count(key), where, ": unknown key '", key, "'; known keys: ", join(allowed));
}

template <typename T>
T get_or(const nlohmann::json& object, const std::string& key, T fallback, const std::string& where) {
  if (!object.contains(key)) return fallback;
  try {
    return object.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(str(where, ".", key, ": expected ", std::is_same_v<T, bool> ? "true or false"
                                                  : std::is_same_v<T, std::string> ? "a string" : "a number",
                    ", got ", io::json_excerpt(object.at(key))));
  }
}

std::vector<std::string> option_list(const nlohmann::json& input, const NodeTableValues& values, const std::string& where) {
  if (input.contains("options_from")) {
    const std::string name = get_or<std::string>(input, "options_from", "", where);
    auto found = values.option_lists.find(name);
    check(found != values.option_lists.end(), where, ".options_from: no option list named '", name, "'");
    return found->second;
  }
  check(input.contains("options") && input.at("options").is_array() && !input.at("options").empty(), where,
        ": a COMBO needs \"options\" (a non-empty list) or \"options_from\"");
  std::vector<std::string> options;
  for (const auto& option : input.at("options")) {
    check(option.is_string(), where, ".options: expected strings, got ", io::json_excerpt(option));
    options.push_back(option.get<std::string>());
  }
  return options;
}

nlohmann::json default_value(const nlohmann::json& input, const NodeTableValues& values, const std::string& where) {
  if (input.contains("default_from")) {
    check(!input.contains("default"), where, ": give \"default\" or \"default_from\", not both");
    const std::string pointer = get_or<std::string>(input, "default_from", "", where);
    nlohmann::json::json_pointer path;
    try {
      path = nlohmann::json::json_pointer(pointer);
    } catch (const nlohmann::json::exception&) {
      throw Error(str(where, ".default_from: expected a JSON pointer like \"/trainer/steps\", got '", pointer, "'"));
    }
    check(values.defaults.contains(path), where, ".default_from: the code's defaults have no '", pointer, "'");
    return values.defaults.at(path);
  }
  return input.value("default", nlohmann::json());
}

InputSpec read_input(const nlohmann::json& input, const NodeTableValues& values, const std::string& where) {
  check_keys(input, {"name", "type", "tooltip", "required", "default", "default_from", "min", "max", "step", "options",
                     "options_from", "multiline", "seed", "force_input", "reads_path"},
             where);
  InputSpec spec;
  spec.name = get_or<std::string>(input, "name", "", where);
  spec.type = get_or<std::string>(input, "type", "", where);
  const std::string at = str(where, " ('", spec.name, "')");
  check(!spec.name.empty() && !spec.type.empty(), at, ": every input needs a \"name\" and a \"type\"");
  spec.tooltip = get_or<std::string>(input, "tooltip", "", at);
  spec.required = get_or<bool>(input, "required", true, at);
  spec.multiline = get_or<bool>(input, "multiline", false, at);
  spec.seed = get_or<bool>(input, "seed", false, at);
  spec.force_input = get_or<bool>(input, "force_input", false, at);
  spec.reads_path = get_or<bool>(input, "reads_path", false, at);
  spec.default_value = default_value(input, values, at);
  if (spec.type == "INT" || spec.type == "FLOAT") {
    if (spec.seed) {  // ComfyUI's seed widget: 0 .. 2^63 - 1 with control_after_generate
      spec.min = 0.0;
      spec.max = static_cast<double>(std::numeric_limits<int64_t>::max());
      if (spec.default_value.is_null()) spec.default_value = 0;
    }
    if (input.contains("min")) spec.min = get_or<double>(input, "min", 0.0, at);
    if (input.contains("max")) spec.max = get_or<double>(input, "max", 0.0, at);
    spec.step = spec.type == "INT" ? get_or<double>(input, "step", 1.0, at) : get_or<double>(input, "step", 0.0, at);
    check(spec.min && spec.max && *spec.step > 0, at, ": a number widget needs \"min\", \"max\" and (FLOAT) \"step\"");
    const bool numeric = spec.default_value.is_number_integer() || (spec.type == "FLOAT" && spec.default_value.is_number());
    check(numeric, at, ": expected ", spec.type == "INT" ? "a whole number" : "a number", " default, got ",
          io::json_excerpt(spec.default_value));
    const double value = spec.default_value.get<double>();
    check(*spec.min <= value && value <= *spec.max, at, ": the default ", value, " is outside [", *spec.min, ", ",
          *spec.max, "]");
  } else if (spec.type == "COMBO") {
    spec.options = option_list(input, values, at);
    if (spec.default_value.is_null()) spec.default_value = spec.options.front();
    check(spec.default_value.is_string() &&
              std::find(spec.options.begin(), spec.options.end(), spec.default_value.get<std::string>()) != spec.options.end(),
          at, ": the default ", io::json_excerpt(spec.default_value), " is not one of the options: ", join(spec.options));
  } else if (spec.type == "STRING") {
    if (spec.default_value.is_null()) spec.default_value = "";
    check(spec.default_value.is_string(), at, ": expected a string default, got ", io::json_excerpt(spec.default_value));
  } else if (spec.type == "BOOLEAN") {
    check(spec.default_value.is_boolean(), at, ": expected a true or false default, got ",
          io::json_excerpt(spec.default_value));
  } else {
    check(spec.default_value.is_null(), at, ": a socket of type ", spec.type, " has no default");
  }
  return spec;
}

NodeSchema read_node(const std::string& name, const nlohmann::json& node, const NodeTableValues& values,
                     const std::string& where) {
  check_keys(node, {"display_name", "category", "description", "inputs", "outputs", "output_node", "headless_only"}, where);
  NodeSchema schema{.name = name,
                    .display_name = get_or<std::string>(node, "display_name", name, where),
                    .category = get_or<std::string>(node, "category", "", where),
                    .description = get_or<std::string>(node, "description", "", where),
                    .inputs = {},
                    .outputs = {},
                    .output_node = get_or<bool>(node, "output_node", false, where),
                    .headless_only = get_or<bool>(node, "headless_only", false, where)};
  check(schema.category.rfind("Lethe/", 0) == 0, where, ".category: expected \"Lethe/...\", got '", schema.category, "'");
  const nlohmann::json inputs = node.value("inputs", nlohmann::json::array());
  check(inputs.is_array(), where, ".inputs: expected a list, got ", io::json_excerpt(inputs));
  std::set<std::string> seen;
  for (size_t i = 0; i < inputs.size(); ++i) {
    schema.inputs.push_back(read_input(inputs[i], values, str(where, ".inputs[", i, "]")));
    check(seen.insert(schema.inputs.back().name).second, where, ".inputs[", i, "]: input '", schema.inputs.back().name,
          "' is declared twice");
  }
  const nlohmann::json outputs = node.value("outputs", nlohmann::json::array());
  check(outputs.is_array(), where, ".outputs: expected a list, got ", io::json_excerpt(outputs));
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string at = str(where, ".outputs[", i, "]");
    check_keys(outputs[i], {"name", "type", "tooltip"}, at);
    schema.outputs.push_back({get_or<std::string>(outputs[i], "name", "", at), get_or<std::string>(outputs[i], "type", "", at),
                              get_or<std::string>(outputs[i], "tooltip", "", at)});
    check(!schema.outputs.back().name.empty() && !schema.outputs.back().type.empty(), at,
          ": every output needs a \"name\" and a \"type\"");
  }
  return schema;
}

}  // namespace

NodeTable::NodeTable(std::string_view text, const std::string& source, const NodeTableValues& values) : source_(source) {
  nlohmann::json table;
  try {
    table = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::parse_error& error) {
    throw Error(str(source, ": expected a JSON table of node schemas; it does not parse at byte ", error.byte));
  }
  check(table.is_object() && !table.empty(), source, ": expected a JSON object of node schemas keyed by node name");
  for (const auto& [name, node] : table.items()) schemas_.emplace(name, read_node(name, node, values, str(source, ": ", name)));
}

const NodeSchema& NodeTable::schema(const std::string& name) const {
  auto found = schemas_.find(name);
  check(found != schemas_.end(), source_, ": no node '", name, "'; the table has ", join(names()));
  return found->second;
}

std::vector<std::string> NodeTable::names() const {
  std::vector<std::string> names;
  for (const auto& [name, schema] : schemas_) names.push_back(name);
  return names;
}

}  // namespace lethe::graph
