// `lethe run WORKFLOW.json`, `lethe nodes`, `lethe convert`: the node graph, headless.
#include <cctype>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/progress_bar.hpp"
#include "core/error.hpp"
#include "core/runtime.hpp"
#include "graph/workflow_run.hpp"
#include "graph/node_registry.hpp"
#include "io/json_config.hpp"
#include "io/output_path.hpp"

namespace lethe::cli {

namespace {

// The README's node table: one row per node (name, category, inputs, outputs).
std::string markdown_node_list() {
  std::string out = "| node | category | inputs | outputs | what it does |\n|---|---|---|---|---|\n";
  for (const std::string& name : graph::node_names(false)) {
    const graph::NodeSchema& schema = graph::node_schema(name);
    std::vector<std::string> inputs, outputs;
    for (const auto& spec : schema.inputs)
      inputs.push_back(str(spec.name, spec.required ? "" : "?", ": ", spec.type == "COMBO" ? "choice" : spec.type));
    for (const auto& spec : schema.outputs) outputs.push_back(str(spec.name, ": ", spec.type));
    // The first sentence: up to ". " followed by a capital letter (not "e.g. " or "et al. ").
    size_t sentence = std::string::npos;
    for (size_t at = schema.description.find(". "); at != std::string::npos; at = schema.description.find(". ", at + 1)) {
      if (at + 2 < schema.description.size() && std::isupper(static_cast<unsigned char>(schema.description[at + 2]))) {
        sentence = at;
        break;
      }
    }
    std::string description = sentence == std::string::npos ? schema.description : schema.description.substr(0, sentence + 1);
    out += str("| `", name, "` | ", schema.category, " | ", join(inputs, ", "), " | ", join(outputs, ", "), " | ",
               description, " |\n");
  }
  return out;
}

}  // namespace

void add_graph_commands(CLI::App& app) {
  auto* run = app.add_subcommand("run", "Run a ComfyUI workflow (UI format 0.4 or 1, or API format) headless");
  auto workflow = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto resume = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  run->add_option("workflow", *workflow, "the workflow .json")->check(CLI::ExistingFile);
  run->add_option("--out", *out, "run folder (default out/<workflow>-<timestamp>)");
  run->add_option("--resume", *resume, "continue the cancelled, failed or killed run in this folder (no workflow: "
                                       "the one recorded there)");
  run->add_option("--set", *overrides, "override an input: NODE_ID.INPUT=VALUE (repeatable)");
  set_action(run, [workflow, out, resume, overrides]() {
    const graph::WorkflowResult result =
        graph::run_request({*workflow, *out, *resume, *overrides}, terminal_progress("run"),
                           [](const std::string& line) { std::cerr << line << "\n"; });
    std::cout << graph::result_lines(result);
    return 0;
  });

  auto* nodes = app.add_subcommand("nodes", "List the native nodes (--json: ComfyUI /object_info shape)");
  auto as_json = std::make_shared<bool>(false);
  auto as_markdown = std::make_shared<bool>(false);
  auto headless = std::make_shared<bool>(false);
  nodes->add_flag("--json", *as_json, "print the schemas as JSON");
  nodes->add_flag("--markdown", *as_markdown, "print the README node table");
  nodes->add_flag("--headless", *headless, "include the headless stand-ins for ComfyUI core nodes");
  set_action(nodes, [as_json, as_markdown, headless]() {
    if (*as_json) {
      std::cout << graph::schemas_json(*headless).dump(2) << "\n";
    } else if (*as_markdown) {
      std::cout << markdown_node_list();
    } else {
      graph::register_builtin_nodes();
      for (const auto& name : graph::node_names(*headless))
        std::cout << name << "  [" << graph::node_schema(name).category << "]  " << graph::node_schema(name).display_name << "\n";
    }
    return 0;
  });

  auto* convert = app.add_subcommand("convert", "Print a workflow's API-format graph (as the ComfyUI frontend converts it)");
  auto convert_file = std::make_shared<std::string>();
  auto object_info_file = std::make_shared<std::string>();
  convert->add_option("workflow", *convert_file, "the workflow .json")->required()->check(CLI::ExistingFile);
  convert->add_option("--object-info", *object_info_file,
                      "ComfyUI's /object_info saved as JSON: the schemas of nodes that are not Lethe's (CLIPTextEncode, "
                      "KSampler, ...), so their widgets and links are kept")
      ->check(CLI::ExistingFile);
  set_action(convert, [convert_file, object_info_file]() {
    nlohmann::json object_info;
    if (!object_info_file->empty()) object_info = io::read_json_file(*object_info_file);
    const graph::ApiGraph graph = graph::parse_workflow(io::read_json_file(*convert_file), *convert_file,
                                                        object_info_file->empty() ? nullptr : &object_info, *object_info_file);
    graph::check_schemas_known(graph, *convert_file);
    std::cout << graph::to_api_json(graph).dump(2) << "\n";
    return 0;
  });
}

}  // namespace lethe::cli
