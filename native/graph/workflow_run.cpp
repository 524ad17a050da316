#include "graph/workflow_run.hpp"

#include "core/error.hpp"
#include "core/runtime.hpp"
#include "dist/group.hpp"
#include "graph/node_registry.hpp"
#include "io/json_config.hpp"
#include "io/output_path.hpp"
#include "io/set_override.hpp"

namespace lethe::graph {

namespace fs = std::filesystem;

void apply_override(ApiGraph& graph, const std::string& assignment) {
  io::SetOverride given = io::parse_set_override(assignment, "NODE_ID.INPUT=VALUE");
  const auto dot = given.key.find('.');
  check(dot != std::string::npos, "--set expects NODE_ID.INPUT=VALUE, got '", assignment, "'");
  const std::string id = given.key.substr(0, dot), input = given.key.substr(dot + 1);
  auto found = graph.nodes.find(id);
  std::vector<std::string> ids;
  for (const auto& [node_id, node] : graph.nodes) ids.push_back(node_id);
  check(found != graph.nodes.end(), "--set ", assignment, ": no node with id ", id, " (node ids: ", join(ids), ")");
  if (has_node(found->second.class_type)) {
    const NodeSchema& schema = node_schema(found->second.class_type);
    std::vector<std::string> names;
    for (const auto& spec : schema.inputs) names.push_back(spec.name);
    check(schema.input(input) != nullptr, "--set ", assignment, ": node ", id, " (", found->second.class_type,
          ") has no input '", input, "'; inputs: ", join(names));
    if (schema.input(input)->type == "STRING" && !given.value.is_string()) given.value = given.text;
  }
  found->second.inputs[input] = given.value;
}

WorkflowResult run_request(const WorkflowRequest& request, const ProgressCallback& progress,
                           const std::function<void(const std::string&)>& announce, const dist::Group* group) {
  RunOptions options;
  options.progress = progress;
  options.group = group;
  auto say = [&](const std::string& line) {
    if (announce && dist::writes_files(group)) announce(line);
  };
  if (!request.resume.empty()) {
    check(request.workflow.empty() && request.out.empty() && request.overrides.empty(), "lethe run --resume ",
          request.resume, ": give no workflow, --out or --set (a resumed run is the same run, with the workflow "
          "recorded in its folder)");
    options.run_directory = request.resume;
    say("lethe run: resuming " + options.run_directory.string());
    return resume_workflow(options);
  }
  check(!request.workflow.empty(), "lethe run: give a workflow .json (or --resume RUN_FOLDER)");
  ApiGraph graph = parse_workflow(io::read_json_file(request.workflow), request.workflow);
  for (const auto& assignment : request.overrides) apply_override(graph, assignment);
  if (!request.out.empty()) {
    options.run_directory = request.out;
  } else {  // a new numbered folder, claimed by rank 0 under torchrun
    options.run_directory = dist::from_leader(group, "sharing the run folder", [&] {
      return io::claim_numbered_folder("out", fs::path(request.workflow).stem().string() + "-" + timestamp()).string();
    });
  }
  say(str("lethe run: ", request.workflow, " -> ", options.run_directory.string()));
  return run_workflow(graph, options);
}

std::string result_lines(const WorkflowResult& result) {
  std::string out;
  for (const auto& [id, entry] : result.record["nodes"].items()) {
    out += str("node ", id, " ", entry["class_type"].get<std::string>(), ": ");
    out += entry.value("reused", false) ? std::string("reused from the interrupted run")
                                        : str(entry["seconds"].get<double>(), " s");
    for (const auto& text : entry.value("texts", nlohmann::json::array())) out += " | " + text.get<std::string>();
    out += "\n";
  }
  for (const auto& [id, entry] : result.record["nodes"].items())
    for (const auto& file : entry.value("files", nlohmann::json::array()))
      if (fs::path(file.get<std::string>()).filename() == "report.png")
        out += str("report: ", (result.run_directory / file.get<std::string>()).string(), "\n");
  out += str("run folder: ", result.run_directory.string(), "\n");
  return out;
}

}  // namespace lethe::graph
