#include "graph/node_registry.hpp"

#include <cmath>
#include <mutex>

#include "core/error.hpp"
#include "graph/nodes/node_groups.hpp"

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
  check(json.is_number_integer(), where(name), ": expected an integer, got ", json.dump());
  return json.get<int64_t>();
}

double NodeInputs::number(const std::string& name) const {
  const auto& json = value(name).as<nlohmann::json>(where(name));
  check(json.is_number(), where(name), ": expected a number, got ", json.dump());
  return json.get<double>();
}

std::string NodeInputs::text(const std::string& name) const {
  const auto& json = value(name).as<nlohmann::json>(where(name));
  check(json.is_string(), where(name), ": expected a string, got ", json.dump());
  return json.get<std::string>();
}

bool NodeInputs::flag(const std::string& name) const {
  const auto& json = value(name).as<nlohmann::json>(where(name));
  check(json.is_boolean(), where(name), ": expected true or false, got ", json.dump());
  return json.get<bool>();
}

nlohmann::json check_widget_value(const InputSpec& input, const nlohmann::json& value, const std::string& where) {
  if (input.type == "INT") {
    // ComfyUI coerces "3" and 3.0 to int; do the same for integral values.
    nlohmann::json v = value;
    if (v.is_string()) {
      try {
        v = std::stoll(v.get<std::string>());
      } catch (const std::exception&) {
      }
    }
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) v = static_cast<int64_t>(v.get<double>());
    check(v.is_number_integer(), where, ": expected an integer, got ", value.dump());
    const double x = static_cast<double>(v.get<int64_t>());
    check(!input.min || x >= *input.min, where, ": value ", v.get<int64_t>(), " is below the minimum ", *input.min);
    check(!input.max || x <= *input.max, where, ": value ", v.get<int64_t>(), " is above the maximum ", *input.max);
    return v;
  }
  if (input.type == "FLOAT") {
    nlohmann::json v = value;
    if (v.is_string()) {
      try {
        v = std::stod(v.get<std::string>());
      } catch (const std::exception&) {
      }
    }
    check(v.is_number(), where, ": expected a number, got ", value.dump());
    const double x = v.get<double>();
    check(!input.min || x >= *input.min, where, ": value ", x, " is below the minimum ", *input.min);
    check(!input.max || x <= *input.max, where, ": value ", x, " is above the maximum ", *input.max);
    return x;
  }
  if (input.type == "BOOLEAN") {
    check(value.is_boolean(), where, ": expected true or false, got ", value.dump());
    return value;
  }
  if (input.type == "STRING") {
    check(value.is_string(), where, ": expected a string, got ", value.dump());
    return value;
  }
  if (input.type == "COMBO") {
    check(value.is_string(), where, ": expected one of ", join(input.options), ", got ", value.dump());
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

void register_builtin_nodes() {
  static std::once_flag once;
  std::call_once(once, [] {
    nodes::register_data_nodes();
    nodes::register_selection_nodes();
    nodes::register_objective_nodes();
    nodes::register_unlearn_nodes();
    nodes::register_sampling_nodes();
    nodes::register_scoring_nodes();
    nodes::register_host_nodes();
    nodes::register_output_nodes();
  });
}

}  // namespace lethe::graph
