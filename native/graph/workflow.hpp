// Workflow documents: ComfyUI's API format and UI format (versions 0.4 and 1), converted to
// one API graph the way the frontend's graphToPrompt does: widgets_values map onto widget
// inputs by position in INPUT_TYPES order (skipping the seed control value), links become
// [source id, output slot], muted nodes are dropped, bypassed nodes and reroutes are looked
// through, and a widget converted to an input takes its link.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lethe::graph {

struct ApiNode {
  std::string id;
  std::string class_type;
  nlohmann::json inputs = nlohmann::json::object();  // name -> literal or [source id, slot]
  std::string title;
  bool schema_known = true;    // false: a UI node of a class neither Lethe nor the object_info knows
  nlohmann::json raw_widgets;  // UI widgets_values of a node without a known schema (for messages)
};

struct ApiGraph {
  std::string format;                    // "api", "ui-0.4" or "ui-1"
  std::map<std::string, ApiNode> nodes;  // by id
};

// True for a [source id, slot] link value.
bool is_link(const nlohmann::json& value);

// Parses a workflow document in any accepted format. `where` names the file in messages.
// `object_info` (ComfyUI's /object_info JSON, named `object_info_where` in messages) gives the
// schemas of UI nodes that are not Lethe's, so their widgets and links are kept too; without
// it such a node keeps no inputs and is marked schema_known = false.
ApiGraph parse_workflow(const nlohmann::json& document, const std::string& where,
                        const nlohmann::json* object_info = nullptr, const std::string& object_info_where = "");
// Refuses a graph with UI nodes of unknown schema: names them and says how to pass /object_info.
void check_schemas_known(const ApiGraph& graph, const std::string& where);
// The API-format JSON of a graph ({"id": {"class_type", "inputs", "_meta": {"title"}}}).
nlohmann::json to_api_json(const ApiGraph& graph);

}  // namespace lethe::graph
