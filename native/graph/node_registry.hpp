// The native node registry: the single source of truth for every Lethe node. A node is a
// native function with a declared schema (inputs with types, widgets with defaults,
// ranges and tooltips; outputs with names). The ComfyUI classes (nodes/), the
// `lethe nodes --json` listing and the headless runner are all generated from it.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/progress.hpp"
#include "dist/group.hpp"
#include "graph/value.hpp"

namespace lethe::graph {

struct InputSpec {
  std::string name;
  std::string type;                   // INT FLOAT STRING BOOLEAN COMBO, or a socket type
  bool required = true;
  nlohmann::json default_value;       // widgets
  std::optional<double> min, max, step;
  std::vector<std::string> options;   // COMBO
  std::string tooltip;
  bool multiline = false;             // STRING
  bool seed = false;                  // INT with ComfyUI's control_after_generate widget
  bool force_input = false;           // a value type shown as a socket only (no widget)
  bool reads_path = false;            // STRING naming a file or folder the node reads (its contents
                                      // count in the node's identity when a run is resumed)

  bool is_widget() const { return is_widget_type(type) && !force_input; }
};

struct OutputSpec {
  std::string name;
  std::string type;
  std::string tooltip;
};

struct NodeSchema {
  std::string name;           // class_type, prefixed "Lethe"
  std::string display_name;
  std::string category;       // "Lethe/..."
  std::string description;
  std::vector<InputSpec> inputs;   // required first, then optional (ComfyUI's INPUT_TYPES order)
  std::vector<OutputSpec> outputs;
  bool output_node = false;
  bool headless_only = false;      // a native stand-in for a ComfyUI core node (not exported to ComfyUI)

  const InputSpec* input(const std::string& name) const;
};

// What a node sees while it runs.
struct NodeContext {
  std::string node_id;
  std::filesystem::path run_directory;   // headless: the run folder; in ComfyUI: output/lethe
  ProgressCallback progress;
  // Images the node wants shown (ComfyUI preview / saved by the headless runner), [B, H, W, C].
  std::vector<std::pair<std::string, at::Tensor>> previews;
  std::vector<std::string> texts;        // short text shown under the node
  std::vector<std::filesystem::path> files;  // files the node wrote
  // Model folders by ComfyUI's folder_paths name ("loras", ...); headless: under run_directory.
  std::map<std::string, std::filesystem::path> folders;
  // `lethe run` under torchrun: the ranks, each running the whole graph (docs/distributed.md);
  // null in ComfyUI and in one process. The unlearn and evaluate nodes split their work over
  // them; every other node runs whole on each rank, and only rank 0 writes files.
  const dist::Group* group = nullptr;
  bool writes_files() const { return dist::writes_files(group); }
  // A new folder <run_directory>/<stem>[-N] for this node's files (io::claim_numbered_folder),
  // claimed by rank 0 and the same on every rank.
  std::filesystem::path claim_folder(const std::string& stem) const;
};

class NodeInputs {
 public:
  NodeInputs(const NodeSchema& schema, std::map<std::string, Value> values, std::string node_id);
  bool has(const std::string& name) const;
  const Value& value(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  double number(const std::string& name) const;
  std::string text(const std::string& name) const;
  bool flag(const std::string& name) const;
  template <typename T>
  const T& object(const std::string& name) const {
    return value(name).as<T>(where(name));
  }
  std::string where(const std::string& name) const;

 private:
  const NodeSchema& schema_;
  std::map<std::string, Value> values_;
  std::string node_id_;
};

using NodeFunction = std::function<std::vector<Value>(NodeContext&, const NodeInputs&)>;

void register_node(NodeSchema schema, NodeFunction function);
const NodeSchema& node_schema(const std::string& name);
bool has_node(const std::string& name);
std::vector<std::string> node_names(bool include_headless_only = true);
// Runs a node; checks the outputs against the schema.
std::vector<Value> run_node(const std::string& name, NodeContext& context, const NodeInputs& inputs);
// Checks a widget value's JSON type and range; returns it coerced (ints, floats, bools).
nlohmann::json check_widget_value(const InputSpec& input, const nlohmann::json& value, const std::string& where);

// Every schema in the shape of ComfyUI's /object_info.
nlohmann::json schemas_json(bool include_headless_only = false);
nlohmann::json schema_json(const NodeSchema& schema);
// The frontend's widgets_values layout for a schema in /object_info shape (so it serves ComfyUI's
// own nodes too): a widget per INT, FLOAT, STRING, BOOLEAN or combo input without forceInput, in
// input_order (required, then optional); after an INT with control_after_generate (by default one
// named seed or noise_seed) the seed-control value. Each entry is the widget's name, or null for
// a control value. The one place this rule lives: the workflow parser, workflows/generate.py and
// workflows/render.py use it (the test mock of ComfyUI keeps its own copy, as the reference).
nlohmann::json widgets_values_layout(const nlohmann::json& object_info_schema);

// Registers Lethe's nodes (idempotent): the core's, then those of the groups added below.
void register_builtin_nodes();
// Adds a group of nodes from a layer above the core (the bench's), registered with the core's
// on first use of the registry; add it before that (at start-up).
void add_node_group(std::function<void()> registers);

}  // namespace lethe::graph
