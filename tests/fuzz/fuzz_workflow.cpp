// libFuzzer target: the workflow parser (graph/workflow.hpp) on any bytes, for the API format
// and the UI formats 0.4 and 1, followed by the widget checks the executor applies to every
// literal input (check_widget_value) and the API printer. The schemas here stand in for
// Lethe's nodes with each kind of input the parser maps (widgets of every type, a seed with
// its control value, optional widgets, sockets, outputs). Only lethe::Error may escape.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "graph/node_registry.hpp"
#include "graph/workflow.hpp"
#include "io/json_config.hpp"

namespace lethe::graph {

namespace {

InputSpec widget(const std::string& name, const std::string& type, nlohmann::json value) {
  InputSpec spec;
  spec.name = name;
  spec.type = type;
  spec.default_value = std::move(value);
  return spec;
}

InputSpec socket(const std::string& name, const std::string& type, bool required = true) {
  InputSpec spec;
  spec.name = name;
  spec.type = type;
  spec.required = required;
  return spec;
}

}  // namespace

// Replaces the registry's built-in nodes for this target.
void register_builtin_nodes() {
  static bool done = false;
  if (done) return;
  done = true;
  auto noop = [](NodeContext&, const NodeInputs&) { return std::vector<Value>{}; };
  NodeSchema data;
  data.name = "LetheBenchData";
  data.category = "Lethe/data";
  data.inputs = {widget("task", "COMBO", "data"), widget("forget_pieces", "STRING", "all"),
                 widget("retain_limit", "INT", 0)};
  data.inputs[0].options = {"data", "concept"};
  data.inputs[2].min = 0;
  data.inputs[2].max = 1000000;
  data.outputs = {{"forget", "LETHE_DATASET", ""}, {"retain", "LETHE_DATASET", ""}};
  register_node(data, noop);
  NodeSchema unlearn;
  unlearn.name = "LetheUnlearn";
  unlearn.category = "Lethe/unlearn";
  InputSpec seed = widget("seed", "INT", 0);
  seed.seed = true;
  seed.min = 0;
  seed.max = 9.2e18;
  InputSpec steps = widget("steps", "INT", 160);
  steps.min = 1;
  steps.max = 1000000;
  InputSpec rate = widget("learning_rate", "FLOAT", 3e-5);
  rate.min = 1e-8;
  rate.max = 1.0;
  InputSpec ema = widget("ema_decay", "FLOAT", 0.0);
  ema.required = false;
  unlearn.inputs = {socket("model", "LETHE_MODEL"), socket("forget", "LETHE_DATASET", false), steps, rate, seed,
                    widget("gradient_checkpointing", "BOOLEAN", false), ema};
  unlearn.outputs = {{"model", "LETHE_MODEL", ""}};
  register_node(unlearn, noop);
  NodeSchema save;
  save.name = "LetheSaveModel";
  save.category = "Lethe/models";
  save.output_node = true;
  save.inputs = {socket("model", "LETHE_MODEL"), widget("filename_prefix", "STRING", "lethe/unlearned")};
  register_node(save, noop);
}

}  // namespace lethe::graph

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lethe;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const graph::ApiGraph parsed = graph::parse_workflow(io::parse_json(text, "fuzz.json"), "fuzz.json");
    for (const auto& [id, node] : parsed.nodes) {
      if (!graph::has_node(node.class_type)) continue;
      const graph::NodeSchema& schema = graph::node_schema(node.class_type);
      for (const graph::InputSpec& spec : schema.inputs)
        if (spec.is_widget() && node.inputs.contains(spec.name) && !graph::is_link(node.inputs[spec.name])) {
          try {
            graph::check_widget_value(spec, node.inputs[spec.name], "fuzz");
          } catch (const Error&) {
          }
        }
    }
    (void)graph::to_api_json(parsed).dump(2);
  } catch (const Error&) {
  }
  return 0;
}
