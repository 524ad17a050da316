// The headless executor: validates an API graph before running anything (known node
// types, required inputs, link targets and types, widget values and ranges, cycles), then
// runs the ancestors of the output nodes in topological order, caching each node's
// outputs. Errors name the node id, its type and the input. Every run writes its folder:
// workflow_api.json (the resolved graph, defaults filled in), run.json (status, timings,
// files, each node's identity, and on failure the failing node), and the nodes' previews
// and files. A run holds its folder exclusively (a lock that dies with the process); a
// cancelled, failed or killed run continues with resume_workflow.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/progress.hpp"
#include "graph/workflow.hpp"

namespace lethe::dist {
class Group;
}

namespace lethe::graph {

// Checks the graph; throws one lethe::Error listing every problem, each naming node id,
// type and input. Returns the graph with every widget's default filled in.
ApiGraph validate_graph(const ApiGraph& graph);

// The execution order (topological, ancestors of output nodes only). Throws on a cycle,
// naming the nodes in it.
std::vector<std::string> execution_order(const ApiGraph& graph);

struct RunOptions {
  std::filesystem::path run_directory;  // created; must not hold a run already
  ProgressCallback progress;            // receives each node's progress (stage = "node <id> <type>")
  // Under torchrun: the ranks, every one running the same workflow into the same folder
  // (NodeContext::group); rank 0 alone locks the folder and writes run.json and the files.
  const dist::Group* group = nullptr;
};

// A node's identity: its type, its widget values, the identities of the nodes (and output
// slots) feeding it, and the size and modification time of the files and folders its path
// widgets name. Equal identities mean equal results (nodes are deterministic).
std::map<std::string, std::string> node_identities(const ApiGraph& graph, const std::vector<std::string>& order);

struct WorkflowResult {
  std::filesystem::path run_directory;
  nlohmann::json record;  // what run.json holds
};

WorkflowResult run_workflow(const ApiGraph& graph, const RunOptions& options);

// Continues the run in options.run_directory (cancelled, failed, or killed: run.json still
// says "running" and no process holds the folder) with the workflow recorded there. Output
// nodes that finished with the same identity are reused (their files stay); other nodes run
// again, unlearn nodes resuming from their checkpoints or reusing their finished runs.
WorkflowResult resume_workflow(const RunOptions& options);

}  // namespace lethe::graph
