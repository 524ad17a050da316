// The headless executor: validates an API graph before running anything (known node
// types, required inputs, link targets and types, widget values and ranges, cycles), then
// runs the ancestors of the output nodes in topological order, caching each node's
// outputs. Errors name the node id, its type and the input. Every run writes its folder:
// workflow_api.json (the resolved graph, defaults filled in), run.json (status, timings,
// files, and on failure the failing node), and the nodes' previews and files.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/progress.hpp"
#include "graph/workflow.hpp"

namespace lethe::graph {

// Checks the graph; throws one lethe::Error listing every problem, each naming node id,
// type and input. Returns the graph with every widget's default filled in.
ApiGraph validate_graph(const ApiGraph& graph);

// The execution order (topological, ancestors of output nodes only). Throws on a cycle,
// naming the nodes in it.
std::vector<std::string> execution_order(const ApiGraph& graph);

struct RunOptions {
  std::filesystem::path run_directory;  // created; must not hold a finished run
  ProgressCallback progress;            // receives each node's progress (stage = "node <id> <type>")
};

struct WorkflowResult {
  std::filesystem::path run_directory;
  nlohmann::json record;  // what run.json holds
};

WorkflowResult run_workflow(const ApiGraph& graph, const RunOptions& options);

}  // namespace lethe::graph
