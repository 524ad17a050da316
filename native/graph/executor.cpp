#include "graph/executor.hpp"

#include <chrono>
#include <map>
#include <set>

#include "core/error.hpp"
#include "core/runtime.hpp"
#include "data/image.hpp"
#include "graph/node_registry.hpp"
#include "io/json_config.hpp"

namespace lethe::graph {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string label(const ApiNode& node) { return str("node ", node.id, " (", node.class_type, ")"); }

std::string link_source(const json& value) {
  return value[0].is_string() ? value[0].get<std::string>() : std::to_string(value[0].get<int64_t>());
}

}  // namespace

ApiGraph validate_graph(const ApiGraph& graph) {
  ApiGraph resolved = graph;
  std::vector<std::string> errors;
  check(!graph.nodes.empty(), "workflow: no nodes to run");
  bool any_output = false;
  for (auto& [id, node] : resolved.nodes) {
    if (!has_node(node.class_type)) {
      // ComfyUI's own model nodes need ComfyUI (its CLIP, VAE, samplers, model patcher).
      static const std::map<std::string, std::string> host_only = {
          {"CheckpointLoaderSimple", "it loads ComfyUI's CLIP and VAE, which Lethe does not reimplement (Lethe Load "
                                     "Model loads a checkpoint's UNet headless)"},
          {"UNETLoader", "it loads a ComfyUI MODEL (Lethe Load Model loads a checkpoint's UNet headless)"},
          {"CLIPLoader", "it loads ComfyUI's CLIP, which Lethe does not reimplement"},
          {"VAELoader", "it loads ComfyUI's VAE, which Lethe does not reimplement"},
          {"CLIPTextEncode", "it needs ComfyUI's CLIP text encoder"},
          {"VAEEncode", "it needs ComfyUI's VAE"},
          {"VAEDecode", "it needs ComfyUI's VAE"},
          {"KSampler", "it samples with ComfyUI's samplers (Lethe Sample samples Lethe models headless)"},
          {"KSamplerAdvanced", "it samples with ComfyUI's samplers (Lethe Sample samples Lethe models headless)"},
          {"EmptyLatentImage", "it makes ComfyUI's LATENT for KSampler"},
          {"LoraLoader", "it patches ComfyUI's MODEL and CLIP"},
          {"LoraLoaderModelOnly", "it patches ComfyUI's MODEL"},
          {"LoadImage", "it reads ComfyUI's input folder (Lethe Load Forget Set reads image folders headless)"},
          {"LoadImageMask", "it reads ComfyUI's input folder (Lethe Load Forget Set reads masks headless)"}};
      auto reason = host_only.find(node.class_type);
      if (reason != host_only.end())
        errors.push_back(str(label(node), ": a ComfyUI node the headless runner cannot run: ", reason->second,
                             "; run this workflow inside ComfyUI"));
      else
        errors.push_back(str(label(node), ": unknown node type '", node.class_type,
                             "'; the headless runner knows: ", join(node_names())));
      continue;
    }
    const NodeSchema& schema = node_schema(node.class_type);
    any_output = any_output || schema.output_node;
    std::vector<std::string> names;
    for (const InputSpec& spec : schema.inputs) names.push_back(spec.name);
    for (auto it = node.inputs.begin(); it != node.inputs.end(); ++it)
      if (!schema.input(it.key()))
        errors.push_back(str(label(node), ": unknown input '", it.key(), "'; inputs: ", join(names)));
    for (const InputSpec& spec : schema.inputs) {
      const std::string where = str(label(node), " input '", spec.name, "'");
      if (!node.inputs.contains(spec.name)) {
        if (spec.is_widget() && !spec.default_value.is_null()) {
          node.inputs[spec.name] = spec.default_value;  // filled in: the resolved workflow names every value
        } else if (spec.required) {
          errors.push_back(str(where, ": required input is missing",
                               spec.is_widget() ? "" : str(" (connect a ", spec.type, " output)")));
        }
        continue;
      }
      const json& value = node.inputs[spec.name];
      if (is_link(value)) {
        const std::string source = link_source(value);
        auto origin = graph.nodes.find(source);
        if (origin == graph.nodes.end()) {
          errors.push_back(str(where, ": linked to node ", source, ", which does not exist (or is muted)"));
          continue;
        }
        if (!has_node(origin->second.class_type)) continue;  // reported on its own
        const NodeSchema& source_schema = node_schema(origin->second.class_type);
        const int64_t slot = value[1].get<int64_t>();
        if (slot < 0 || slot >= static_cast<int64_t>(source_schema.outputs.size())) {
          errors.push_back(str(where, ": linked to output ", slot, " of ", label(origin->second), ", which has ",
                               source_schema.outputs.size(), " outputs"));
          continue;
        }
        const std::string& produced = source_schema.outputs[slot].type;
        const std::string expected = spec.type == "COMBO" ? "COMBO" : spec.type;
        if (produced != expected && produced != "*" && expected != "*")
          errors.push_back(str(where, ": expects ", expected, " but is linked to output '", source_schema.outputs[slot].name,
                               "' (", produced, ") of ", label(origin->second)));
        continue;
      }
      if (!spec.is_widget()) {
        errors.push_back(str(where, ": expects a link from a ", spec.type, " output, got the value ", value.dump()));
        continue;
      }
      try {
        node.inputs[spec.name] = check_widget_value(spec, value, where);
      } catch (const Error& e) {
        errors.push_back(e.what());
      }
    }
  }
  if (errors.empty() && !any_output)
    errors.push_back("workflow: no output node (nothing would run); add e.g. LetheEvaluate, LetheSaveModel, "
                     "LetheSSCDScore, PreviewImage or SaveImage");
  if (!errors.empty()) throw Error(str("workflow is invalid:\n  - ", join(errors, "\n  - ")));
  execution_order(resolved);  // cycle check
  return resolved;
}

std::vector<std::string> execution_order(const ApiGraph& graph) {
  // Ancestors of the output nodes.
  std::set<std::string> needed;
  std::vector<std::string> stack;
  for (const auto& [id, node] : graph.nodes)
    if (has_node(node.class_type) && node_schema(node.class_type).output_node) stack.push_back(id);
  while (!stack.empty()) {
    const std::string id = stack.back();
    stack.pop_back();
    if (!needed.insert(id).second) continue;
    for (const auto& [name, value] : graph.nodes.at(id).inputs.items())
      if (is_link(value) && graph.nodes.count(link_source(value))) stack.push_back(link_source(value));
  }
  // Kahn's algorithm over the needed nodes, smallest id first for a stable order.
  std::map<std::string, int> pending;
  std::map<std::string, std::vector<std::string>> consumers;
  for (const std::string& id : needed) {
    pending[id] = 0;
    for (const auto& [name, value] : graph.nodes.at(id).inputs.items())
      if (is_link(value) && needed.count(link_source(value))) {
        ++pending[id];
        consumers[link_source(value)].push_back(id);
      }
  }
  auto numeric_less = [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  };
  std::set<std::string, decltype(numeric_less)> ready(numeric_less);
  for (const auto& [id, count] : pending)
    if (count == 0) ready.insert(id);
  std::vector<std::string> order;
  while (!ready.empty()) {
    const std::string id = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(id);
    for (const std::string& consumer : consumers[id])
      if (--pending[consumer] == 0) ready.insert(consumer);
  }
  if (order.size() != needed.size()) {
    std::vector<std::string> cycle;
    for (const auto& [id, count] : pending)
      if (count > 0) cycle.push_back(label(graph.nodes.at(id)));
    throw Error(str("workflow has a cycle through ", join(cycle)));
  }
  return order;
}

WorkflowResult run_workflow(const ApiGraph& input, const RunOptions& options) {
  WorkflowResult result;
  result.run_directory = options.run_directory;
  check(!fs::exists(options.run_directory / "run.json"), "run folder '", options.run_directory.string(),
        "' already holds a run; choose another --out (nothing is overwritten)");
  fs::create_directories(options.run_directory);
  json& record = result.record;
  record["lethe_version"] = version();
  record["started"] = timestamp();
  record["status"] = "running";
  record["format"] = input.format;
  auto write_record = [&] { io::write_json_file(options.run_directory / "run.json", record); };

  ApiGraph graph;
  try {
    graph = validate_graph(input);
  } catch (const Error& e) {
    record["status"] = "invalid";
    record["error"] = e.what();
    io::write_json_file(options.run_directory / "workflow_api.json", to_api_json(input));
    write_record();
    throw;
  }
  io::write_json_file(options.run_directory / "workflow_api.json", to_api_json(graph));
  const std::vector<std::string> order = execution_order(graph);
  record["order"] = order;
  record["nodes"] = json::object();
  write_record();

  std::map<std::string, std::vector<Value>> outputs;
  for (size_t index = 0; index < order.size(); ++index) {
    const ApiNode& node = graph.nodes.at(order[index]);
    const NodeSchema& schema = node_schema(node.class_type);
    std::map<std::string, Value> values;
    for (const InputSpec& spec : schema.inputs) {
      if (!node.inputs.contains(spec.name)) continue;
      const json& value = node.inputs[spec.name];
      if (is_link(value)) {
        values[spec.name] = outputs.at(link_source(value)).at(value[1].get<int64_t>());
      } else {
        values[spec.name] = Value::json(spec.type, value);
      }
    }
    NodeContext context;
    context.node_id = node.id;
    context.run_directory = options.run_directory;
    const std::string stage = str("node ", node.id, " ", node.class_type, " (", index + 1, "/", order.size(), ")");
    if (options.progress) {
      context.progress = [&, stage](const ProgressEvent& event) {
        ProgressEvent named = event;
        named.stage = stage + ": " + event.stage;
        options.progress(named);
      };
    }
    const auto started = std::chrono::steady_clock::now();
    json entry = {{"class_type", node.class_type}};
    try {
      outputs[node.id] = run_node(node.class_type, context, NodeInputs(schema, values, node.id));
    } catch (const std::exception& e) {
      const std::string message = dynamic_cast<const Error*>(&e) ? e.what() : str("internal error: ", e.what());
      record["status"] = dynamic_cast<const Cancelled*>(&e) ? "cancelled" : "error";
      record["error"] = {{"node_id", node.id}, {"class_type", node.class_type}, {"message", message}};
      entry["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      entry["status"] = "failed";
      record["nodes"][node.id] = entry;
      write_record();
      if (dynamic_cast<const Cancelled*>(&e)) throw Cancelled(str("node ", node.id, " (", node.class_type, "): ", message));
      throw Error(str("node ", node.id, " (", node.class_type, ") failed: ", message));
    }
    entry["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    entry["status"] = "done";
    entry["texts"] = context.texts;
    std::vector<std::string> files;
    for (const auto& file : context.files) files.push_back(fs::relative(file, options.run_directory).string());
    for (size_t p = 0; p < context.previews.size(); ++p) {
      const auto& [name, images] = context.previews[p];
      if (node.class_type == "PreviewImage" || node.class_type == "SaveImage") continue;  // already written
      for (int64_t i = 0; i < images.size(0); ++i) {
        const auto path = options.run_directory / str("preview-node-", node.id, "-", name, "-", i, ".png");
        data::write_png(path, images[i].permute({2, 0, 1}));
        files.push_back(path.filename().string());
      }
    }
    entry["files"] = files;
    record["nodes"][node.id] = entry;
    write_record();
  }
  record["status"] = "success";
  record["finished"] = timestamp();
  write_record();
  return result;
}

}  // namespace lethe::graph
