// `lethe run` as one request: a workflow file with --set overrides into a new run folder, or
// --resume of a run folder. The lethe program and the data-parallel launcher
// (python_bridge/distributed.py, under torchrun) both run workflows through it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/progress.hpp"
#include "graph/executor.hpp"

namespace lethe::graph {

struct WorkflowRequest {
  std::string workflow;                 // the workflow .json (UI or API format); empty with resume
  std::string out;                      // run folder (empty: out/<workflow>-<timestamp>, numbered if taken)
  std::string resume;                   // a run folder to continue (no workflow, out or overrides then)
  std::vector<std::string> overrides;   // NODE_ID.INPUT=VALUE
};

// Applies one --set NODE_ID.INPUT=VALUE to the graph. Errors name the node and list the node
// ids or the node's inputs.
void apply_override(ApiGraph& graph, const std::string& assignment);

// Runs (or resumes) the request. `announce` receives one line naming the run folder before
// the first node runs. Under torchrun (`group` of several ranks) every rank calls this with the
// same request: rank 0 chooses the folder and the others run into it (RunOptions::group).
WorkflowResult run_request(const WorkflowRequest& request, const ProgressCallback& progress,
                           const std::function<void(const std::string&)>& announce = {},
                           const dist::Group* group = nullptr);

// What `lethe run` prints when the run finished: one line per node (its seconds or "reused",
// and the texts it shows), the report pictures and the run folder.
std::string result_lines(const WorkflowResult& result);

}  // namespace lethe::graph
