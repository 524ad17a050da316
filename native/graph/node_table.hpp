// Node schemas written as a table: JSON (comments allowed) keyed by node name, the
// declarative half of every node; the other half is a plain function registered with
// register_node(table.schema(name), function). docs/comfyui-contract.md describes the keys.
//
//   "LetheSSCDScore": {
//     "display_name": "Lethe SSCD Score", "category": "Lethe/scoring", "description": "...",
//     "output_node": true,
//     "inputs": [{"name": "threshold", "type": "FLOAT", "default": 0.5, "min": -1, "max": 1,
//                 "step": 0.01, "tooltip": "..."}, ...],
//     "outputs": [{"name": "memorization_rate", "type": "FLOAT", "tooltip": "..."}, ...]}
//
// A widget's default is written in the table or taken from the code's own defaults with
// "default_from": a JSON pointer into NodeTableValues::defaults (e.g. "/trainer/steps", so the
// struct default is the one source); a combo's options likewise with "options_from".
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/node_registry.hpp"

namespace lethe::graph {

struct NodeTableValues {
  nlohmann::json defaults = nlohmann::json::object();            // what "default_from" points into
  std::map<std::string, std::vector<std::string>> option_lists;  // what "options_from" names
};

class NodeTable {
 public:
  // Parses and checks the whole table (`source` names it in errors): unknown keys, missing
  // ranges or defaults, a default outside its range or options, an unknown type are errors.
  NodeTable(std::string_view text, const std::string& source, const NodeTableValues& values);
  // The schema of node `name`; a name not in the table is an error listing those that are.
  const NodeSchema& schema(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  std::string source_;
  std::map<std::string, NodeSchema> schemas_;
};

}  // namespace lethe::graph
