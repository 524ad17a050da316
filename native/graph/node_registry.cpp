#include "graph/node_registry.hpp"

#include <charconv>
#include <climits>
#include <cmath>
#include <optional>

#include "core/error.hpp"
#include "io/json_config.hpp"

namespace lethe::graph {

bool is_widget_type(const std::string& type) {
  return type == "INT" || type == "FLOAT" || type == "STRING" || type == "BOOLEAN" || type == "COMBO";
}

const InputSpec* NodeSchema::input(const std::string& input_name) const {
  for (const auto& spec : inputs)
    if (spec.name == input_name) return &spec;
  return nullptr;
}

namespace {

struct Entry {
  NodeSchema schema;
  NodeFunction function;
};

std::map<std::string, Entry>& registry() {
  static std::map<std::string, Entry> entries;
  return entries;
}

std::vector<std::string> registered_names(bool include_headless_only) {
  std::vector<std::string> names;
  for (const auto& [name, entry] : registry())
    if (include_headless_only || !entry.schema.headless_only) names.push_back(name);
  return names;
}

}  // namespace

void register_node(NodeSchema schema, NodeFunction function) {
  check(!registry().count(schema.name), "node '", schema.name, "' is registered twice; known nodes: ",
        join(registered_names(true)));
  check(!schema.category.empty(), "node '", schema.name, "' has no category");
  const std::string name = schema.name;
  registry().emplace(name, Entry{std::move(schema), std::move(function)});
}

bool has_node(const std::string& name) {
  register_builtin_nodes();
  return registry().count(name) > 0;
}

const NodeSchema& node_schema(const std::string& name) {
  register_builtin_nodes();
  auto found = registry().find(name);
  check(found != registry().end(), "unknown node type '", name, "'; known node types: ", join(node_names()));
  return found->second.schema;
}

std::vector<std::string> node_names(bool include_headless_only) {
  register_builtin_nodes();
  return registered_names(include_headless_only);
}

NodeInputs::NodeInputs(const NodeSchema& schema, std::map<std::string, Value> values, std::string node_id)
    : schema_(schema), values_(std::move(values)), node_id_(std::move(node_id)) {}

std::string NodeInputs::where(const std::string& name) const {
  return str("node ", node_id_, " (", schema_.name, ") input '", name, "'");
}

bool NodeInputs::has(const std::string& name) const {
  auto found = values_.find(name);
  return found != values_.end() && !found->second.empty();
}

const Value& NodeInputs::value(const std::string& name) const {
  auto found = values_.find(name);
  check(found != values_.end() && !found->second.empty(), where(name), ": missing (required input not connected)");
  return found->second;
}

int64_t NodeInputs::integer(const std::string& name) const {
  const auto& json = value(name).as<nlohmann::json>(where(name));
  check(json.is_number_integer(), where(name), ": expected an integer, got ", io::json_excerpt(json));
  return json.get<int64_t>();
}

double NodeInputs::number(const std::string& name) const {
  const auto& json = value(name).as<nlohmann::json>(where(name));
  check(json.is_number(), where(name), ": expected a number, got ", io::json_excerpt(json));
  return json.get<double>();
}

std::string NodeInputs::text(const std::string& name) const {
  const auto& json = value(name).as<nlohmann::json>(where(name));
  check(json.is_string(), where(name), ": expected a string, got ", io::json_excerpt(json));
  return json.get<std::string>();
}

bool NodeInputs::flag(const std::string& name) const {
  const auto& json = value(name).as<nlohmann::json>(where(name));
  check(json.is_boolean(), where(name), ": expected true or false, got ", io::json_excerpt(json));
  return json.get<bool>();
}

namespace {

// A whole string as a number ("250" yes, "250abc" and "" no); std::nullopt otherwise.
std::optional<nlohmann::json> number_from_text(const std::string& text) {
  const char* first = text.data();
  const char* last = text.data() + text.size();
  while (first < last && *first == ' ') ++first;
  while (last > first && last[-1] == ' ') --last;
  if (first == last) return std::nullopt;
  int64_t whole = 0;
  auto [end, error] = std::from_chars(first, last, whole);
  if (error == std::errc() && end == last) return nlohmann::json(whole);
  double real = 0.0;
  auto [real_end, real_error] = std::from_chars(first, last, real);
  if (real_error == std::errc() && real_end == last) return nlohmann::json(real);
  return std::nullopt;
}

}  // namespace

nlohmann::json check_widget_value(const InputSpec& input, const nlohmann::json& value, const std::string& where) {
  if (input.type == "INT" || input.type == "FLOAT") {
    // ComfyUI coerces "3" and 3.0 to numbers; so does Lethe, for whole strings only.
    nlohmann::json v = value;
    if (v.is_string()) {
      auto parsed = number_from_text(v.get<std::string>());
      check(parsed.has_value(), where, ": expected ", input.type == "INT" ? "an integer" : "a number", ", got ", io::json_excerpt(value));
      v = *parsed;
    }
    check(v.is_number(), where, ": expected ", input.type == "INT" ? "an integer" : "a number", ", got ", io::json_excerpt(value));
    // Range first, as a double (exact enough for the bounds), so no value is cast out of range.
    const double x = v.get<double>();
    check(std::isfinite(x), where, ": expected a finite number, got ", io::json_excerpt(value));
    auto shown = [&] { return v.is_number_float() ? str(x) : io::json_excerpt(v); };
    check(!input.min || x >= *input.min, where, ": value ", shown(), " is below the minimum ", *input.min);
    check(!input.max || x <= *input.max, where, ": value ", shown(), " is above the maximum ", *input.max);
    if (input.type == "FLOAT") return x;
    if (v.is_number_integer()) {
      check(!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), where, ": value ",
            io::json_excerpt(v), " is above the largest integer ", INT64_MAX);
      return v.get<int64_t>();
    }
    check(std::floor(x) == x && std::fabs(x) < 9.2e18, where, ": expected an integer, got ", io::json_excerpt(value));
    return static_cast<int64_t>(x);
  }
  if (input.type == "BOOLEAN") {
    check(value.is_boolean(), where, ": expected true or false, got ", io::json_excerpt(value));
    return value;
  }
  if (input.type == "STRING") {
    check(value.is_string(), where, ": expected a string, got ", io::json_excerpt(value));
    return value;
  }
  if (input.type == "COMBO") {
    check(value.is_string(), where, ": expected one of ", join(input.options), ", got ", io::json_excerpt(value));
    bool known = false;
    for (const auto& option : input.options) known = known || option == value.get<std::string>();
    check(known, where, ": value '", value.get<std::string>(), "' is not one of ", join(input.options));
    return value;
  }
  throw Error(str(where, ": input of type ", input.type, " has no widget value"));
}

std::vector<Value> run_node(const std::string& name, NodeContext& context, const NodeInputs& inputs) {
  register_builtin_nodes();
  const Entry& entry = registry().at(node_schema(name).name);
  std::vector<Value> outputs = entry.function(context, inputs);
  check(outputs.size() == entry.schema.outputs.size(), "node ", context.node_id, " (", name, ") returned ",
        outputs.size(), " outputs, its schema declares ", entry.schema.outputs.size());
  return outputs;
}

nlohmann::json widgets_values_layout(const nlohmann::json& schema) {
  nlohmann::json layout = nlohmann::json::array();
  for (const char* group : {"required", "optional"}) {
    for (const auto& name : schema.at("input_order").value(group, nlohmann::json::array())) {
      const nlohmann::json& spec = schema.at("input").at(group).at(name.get<std::string>());
      const nlohmann::json& kind = spec.at(0);
      const nlohmann::json options = spec.size() > 1 ? spec.at(1) : nlohmann::json::object();
      const bool widget = (kind.is_array() || (kind.is_string() && is_widget_type(kind.get<std::string>()))) &&
                          !options.value("forceInput", false);
      if (!widget) continue;
      layout.push_back(name);
      const bool named_seed = name == "seed" || name == "noise_seed";
      if (kind == "INT" && options.value("control_after_generate", named_seed)) layout.push_back(nullptr);
    }
  }
  return layout;
}

nlohmann::json schema_json(const NodeSchema& schema) {
  nlohmann::json input = {{"required", nlohmann::json::object()}, {"optional", nlohmann::json::object()}};
  nlohmann::json order = {{"required", nlohmann::json::array()}, {"optional", nlohmann::json::array()}};
  for (const InputSpec& spec : schema.inputs) {
    nlohmann::json options = nlohmann::json::object();
    if (!spec.tooltip.empty()) options["tooltip"] = spec.tooltip;
    if (spec.is_widget() && !spec.default_value.is_null()) options["default"] = spec.default_value;
    if (spec.min) options["min"] = *spec.min;
    if (spec.max) options["max"] = *spec.max;
    if (spec.step) options["step"] = *spec.step;
    if (spec.type == "FLOAT") options["round"] = false;
    if (spec.multiline) options["multiline"] = true;
    if (spec.seed) options["control_after_generate"] = true;
    if (spec.type == "INT" && !spec.seed && (spec.name == "seed" || spec.name == "noise_seed"))
      options["control_after_generate"] = false;
    if (spec.force_input) options["forceInput"] = true;
    nlohmann::json type = spec.type == "COMBO" ? nlohmann::json(spec.options) : nlohmann::json(spec.type);
    const char* group = spec.required ? "required" : "optional";
    input[group][spec.name] = nlohmann::json::array({type, options});
    order[group].push_back(spec.name);
  }
  nlohmann::json out;
  out["input"] = input;
  out["input_order"] = order;
  out["output"] = nlohmann::json::array();
  out["output_name"] = nlohmann::json::array();
  out["output_tooltips"] = nlohmann::json::array();
  for (const OutputSpec& spec : schema.outputs) {
    out["output"].push_back(spec.type);
    out["output_name"].push_back(spec.name);
    out["output_tooltips"].push_back(spec.tooltip);
  }
  out["output_is_list"] = std::vector<bool>(schema.outputs.size(), false);
  out["name"] = schema.name;
  out["display_name"] = schema.display_name;
  out["description"] = schema.description;
  out["category"] = schema.category;
  out["output_node"] = schema.output_node;
  out["python_module"] = "custom_nodes.lethe";
  return out;
}

nlohmann::json schemas_json(bool include_headless_only) {
  register_builtin_nodes();
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, entry] : registry())
    if (include_headless_only || !entry.schema.headless_only) out[name] = schema_json(entry.schema);
  return out;
}

}  // namespace lethe::graph
