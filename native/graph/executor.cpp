#include "graph/executor.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <functional>
#include <set>
#include <tuple>

#include "core/error.hpp"
#include "core/failure.hpp"
#include "core/runtime.hpp"
#include "data/image.hpp"
#include "graph/node_registry.hpp"
#include "io/atomic_file.hpp"
#include "io/hash.hpp"
#include "io/json_config.hpp"
#include "io/output_path.hpp"

namespace lethe::graph {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string label(const ApiNode& node) { return str("node ", node.id, " (", node.class_type, ")"); }

std::string link_source(const json& value) {
  return value[0].is_string() ? value[0].get<std::string>() : std::to_string(value[0].get<int64_t>());
}

}  // namespace

std::filesystem::path NodeContext::claim_folder(const std::string& stem) const {
  return dist::from_leader(group, str("sharing node ", node_id, "'s folder"),
                           [&] { return io::claim_numbered_folder(run_directory, stem).string(); });
}

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
          {"DualCLIPLoader", "it loads ComfyUI's CLIP, which Lethe does not reimplement"},
          {"TripleCLIPLoader", "it loads ComfyUI's CLIP, which Lethe does not reimplement"},
          {"CLIPTextEncodeSDXL", "it needs ComfyUI's CLIP text encoder"},
          {"FluxGuidance", "it sets the guidance of ComfyUI's CONDITIONING"},
          {"ModelSamplingFlux", "it patches the sampling of ComfyUI's MODEL"},
          {"ModelSamplingSD3", "it patches the sampling of ComfyUI's MODEL"},
          {"EmptySD3LatentImage", "it makes ComfyUI's LATENT for KSampler"},
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
        errors.push_back(str(where, ": expects a link from a ", spec.type, " output, got the value ", io::json_excerpt(value)));
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

namespace {

// Size and modification time of a file, or of each file in a folder: a cheap content check.
void hash_path(io::Sha256& hash, const fs::path& path) {
  std::error_code error;
  if (fs::is_directory(path, error)) {
    std::vector<std::string> lines;
    for (auto it = fs::directory_iterator(path, error); !error && it != fs::directory_iterator(); it.increment(error)) {
      std::error_code ignored;
      const auto size = it->is_regular_file(ignored) ? it->file_size(ignored) : 0;
      const auto time = fs::last_write_time(it->path(), ignored).time_since_epoch().count();
      lines.push_back(str(it->path().filename().string(), ":", size, ":", time));
    }
    std::sort(lines.begin(), lines.end());
    for (const auto& line : lines) hash.update(std::string_view(line));
  } else if (fs::exists(path, error)) {
    std::error_code ignored;
    hash.update(std::string_view(str(fs::file_size(path, ignored), ":",
                                      fs::last_write_time(path, ignored).time_since_epoch().count())));
  } else {
    hash.update(std::string_view("missing"));
  }
}

// A string field of a record read from disk, or `fallback` when it is missing or not a string.
std::string text_field(const json& record, const char* key, const std::string& fallback) {
  auto found = record.find(key);
  return found != record.end() && found->is_string() ? found->get<std::string>() : fallback;
}

// Whether a previous run's node entry says the node finished.
bool finished(const json& nodes, const std::string& id) {
  return nodes.contains(id) && nodes[id].is_object() && text_field(nodes[id], "status", "") == "done";
}

json read_record(const fs::path& file) {
  try {
    json record = io::read_json_file(file);
    if (record.is_object()) return record;
  } catch (const Error&) {
  }
  return json::object({{"status", "unreadable"}});
}

// The run's folder, locked for this process. A folder whose run.json says "running" while no
// process holds its lock belonged to a killed run: it is marked "interrupted" here.
io::FolderLock lock_run_folder(const fs::path& directory, json* previous) {
  check(!fs::exists(directory) || fs::is_directory(directory), "run folder '", directory.string(),
        "' is a file, expected a folder");
  io::FolderLock lock(directory);
  check(lock.held(), "run folder '", directory.string(),
        "' is in use by another Lethe process; wait for it or choose another --out");
  const fs::path file = directory / "run.json";
  if (fs::exists(file)) {
    json record = read_record(file);
    if (text_field(record, "status", "") == "running") {
      record["status"] = "interrupted";
      record["interrupted_found"] = timestamp();
      io::write_json_file(file, record);
    }
    if (previous) *previous = record;
  }
  return lock;
}

// The nodes that must run: output nodes not reusable from `previous`, and every node whose
// outputs one of those takes.
std::set<std::string> nodes_to_run(const ApiGraph& graph, const std::vector<std::string>& order,
                                   const std::map<std::string, std::string>& identities, const json& previous) {
  std::set<std::string> run;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const std::string& id = *it;
    bool consumed = false;
    for (const std::string& other : run)
      for (const auto& [name, value] : graph.nodes.at(other).inputs.items())
        consumed = consumed || (is_link(value) && link_source(value) == id);
    const bool reusable = finished(previous, id) && text_field(previous[id], "identity", "") == identities.at(id);
    if (consumed || (node_schema(graph.nodes.at(id).class_type).output_node && !reusable)) run.insert(id);
  }
  return run;
}

WorkflowResult execute(const ApiGraph& input, const RunOptions& options, io::FolderLock lock, json record,
                       const json& previous_nodes) {
  WorkflowResult result;
  result.run_directory = options.run_directory;
  const fs::path record_file = options.run_directory / "run.json";
  const bool writes = dist::writes_files(options.group);  // under torchrun, rank 0's files
  auto write_record = [&] {
    if (writes) io::write_json_file(record_file, record);
  };

  ApiGraph graph;
  try {
    graph = validate_graph(input);
  } catch (const Error& e) {
    record["status"] = "invalid";
    record["error"] = e.what();
    if (writes) io::write_json_file(options.run_directory / "workflow_api.json", to_api_json(input));
    write_record();
    throw;
  }
  if (writes) io::write_json_file(options.run_directory / "workflow_api.json", to_api_json(graph));
  const std::vector<std::string> order = execution_order(graph);
  const std::map<std::string, std::string> identities = node_identities(graph, order);
  const std::set<std::string> to_run = nodes_to_run(graph, order, identities, previous_nodes);
  record["order"] = order;
  record["nodes"] = json::object();
  record["status"] = "running";
  record.erase("error");
  write_record();

  std::map<std::string, std::vector<Value>> outputs;
  for (size_t index = 0; index < order.size(); ++index) {
    const ApiNode& node = graph.nodes.at(order[index]);
    if (!to_run.count(node.id)) {
      if (finished(previous_nodes, node.id)) {
        json entry = previous_nodes[node.id];
        entry["reused"] = true;
        record["nodes"][node.id] = entry;
      }
      continue;
    }
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
    context.group = options.group;
    const std::string stage = str("node ", node.id, " ", node.class_type, " (", index + 1, "/", order.size(), ")");
    if (options.progress) {
      context.progress = [&, stage](const ProgressEvent& event) {
        ProgressEvent named = event;
        named.stage = stage + ": " + event.stage;
        options.progress(named);
      };
    }
    const auto started = std::chrono::steady_clock::now();
    json entry = {{"class_type", node.class_type}, {"identity", identities.at(node.id)}};
    try {
      outputs[node.id] = run_node(node.class_type, context, NodeInputs(schema, values, node.id));
    } catch (const std::exception& e) {
      const bool cancelled = dynamic_cast<const Cancelled*>(&e) != nullptr;
      const std::string message = user_message(e, label(node), options.run_directory);
      record["status"] = cancelled ? "cancelled" : "error";
      record["error"] = {{"node_id", node.id}, {"class_type", node.class_type}, {"message", message}};
      entry["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      entry["status"] = "failed";
      record["nodes"][node.id] = entry;
      write_record();
      const std::string resume = str("`lethe run --resume ", options.run_directory.string(), "`");
      // Node errors usually name the node already (by its label, or by the stage its progress
      // reports under); the label is added only where they do not.
      const bool names_node = message.rfind(str("node ", node.id, " ("), 0) == 0 || message.rfind(stage, 0) == 0;
      const std::string named = names_node ? message : str(label(node), ": ", message);
      if (cancelled) throw Cancelled(str(named, "; continue it with ", resume));
      throw Error(str(named, "; ", resume, " retries it once the cause is fixed"));
    }
    entry["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    entry["status"] = "done";
    entry["texts"] = context.texts;
    std::vector<std::string> files;
    for (const auto& file : context.files) files.push_back(fs::relative(file, options.run_directory).string());
    for (size_t p = 0; p < context.previews.size(); ++p) {
      const auto& [name, images] = context.previews[p];
      // PreviewImage and SaveImage wrote theirs already; under torchrun rank 0 writes them.
      if (node.class_type == "PreviewImage" || node.class_type == "SaveImage" || !writes) continue;
      for (int64_t i = 0; i < images.size(0); ++i) {
        const auto path = options.run_directory / str("preview-node-", io::file_name_part(node.id), "-",
                                                      io::file_name_part(name), "-", i, ".png");
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
  result.record = record;
  return result;
}

}  // namespace

std::map<std::string, std::string> node_identities(const ApiGraph& graph, const std::vector<std::string>& order) {
  std::map<std::string, std::string> identities;
  for (const std::string& id : order) {
    const ApiNode& node = graph.nodes.at(id);
    const NodeSchema& schema = node_schema(node.class_type);
    io::Sha256 hash;
    hash.update(std::string_view(node.class_type));
    for (const InputSpec& spec : schema.inputs) {
      if (!node.inputs.contains(spec.name)) continue;
      const json& value = node.inputs[spec.name];
      hash.update(std::string_view(spec.name));
      if (is_link(value)) {
        auto source = identities.find(link_source(value));
        hash.update(std::string_view(source != identities.end() ? source->second : "unknown"));
        hash.update(std::string_view(value[1].dump()));
      } else {
        hash.update(std::string_view(value.dump()));
        if (spec.reads_path && value.is_string() && !value.get<std::string>().empty())
          hash_path(hash, value.get<std::string>());
      }
    }
    identities[id] = hash.hex();
  }
  return identities;
}

namespace {

// An opened run folder: its lock (held by rank 0 alone under torchrun), the run's record and the
// previous run's node entries (resume reuses the finished ones).
using OpenedRun = std::tuple<io::FolderLock, json, json>;

OpenedRun open_new_run(const ApiGraph& input, const RunOptions& options) {
  const std::string folder = options.run_directory.string();
  json previous = json::object();
  io::FolderLock lock = lock_run_folder(options.run_directory, &previous);
  if (!previous.empty()) {
    const std::string status = text_field(previous, "status", "unknown");
    const bool resumable = status == "cancelled" || status == "error" || status == "interrupted" || status == "running";
    throw Error(str("run folder '", folder, "' already holds a run (status: ", status, "); ",
                    resumable ? str("continue it with `lethe run --resume ", folder, "`, or ") : "",
                    "choose another --out (nothing is overwritten)"));
  }
  // Under the lock (another run's files in the making are no stranger's): a folder without a run
  // of Lethe's in it must be empty, for what it holds is not Lethe's to overwrite.
  io::require_empty_folder(options.run_directory, "run folder", "choose a new or empty --out");
  json record;
  record["lethe_version"] = version();
  record["started"] = timestamp();
  record["status"] = "running";
  record["format"] = input.format;
  try {
    io::write_file_atomic(options.run_directory / "run.json", record.dump(2) + "\n", io::WriteMode::exclusive);
  } catch (const io::FileExists&) {
    throw Error(str("run folder '", folder, "' already holds a run; choose another --out (nothing is overwritten)"));
  }
  return {std::move(lock), record, json::object()};
}

OpenedRun open_resumed_run(const RunOptions& options) {
  const std::string folder = options.run_directory.string();
  check(fs::exists(options.run_directory / "run.json"), "--resume ", folder,
        ": no run to resume there (no run.json); start one with `lethe run WORKFLOW --out ", folder, "`");
  json previous;
  io::FolderLock lock = lock_run_folder(options.run_directory, &previous);
  const std::string status = text_field(previous, "status", "unknown");
  check(status != "success", "--resume ", folder, ": that run finished; nothing to resume");
  check(status != "invalid", "--resume ", folder, ": that run never started (its workflow is invalid: ",
        text_field(previous, "error", ""), ")");
  check(fs::exists(options.run_directory / "workflow_api.json"), "--resume ", folder,
        ": workflow_api.json is missing, so the run cannot be continued");
  json record = previous;
  const json times = previous.value("resumed", json(0));
  record["resumed"] = times.is_number_integer() ? times.get<int64_t>() + 1 : 1;
  record["resumed_at"] = timestamp();
  const json nodes = previous.contains("nodes") && previous["nodes"].is_object() ? previous["nodes"] : json::object();
  return {std::move(lock), record, nodes};
}

// Under torchrun rank 0 opens the folder as one process would; the other ranks wait for it and
// take its record and previous nodes, so that every rank runs the same nodes.
OpenedRun open_on_ranks(const RunOptions& options, const std::function<OpenedRun()>& open) {
  OpenedRun opened;
  if (dist::writes_files(options.group)) opened = open();
  if (dist::spans_ranks(options.group)) {
    auto& [lock, record, nodes] = opened;
    const json shared = json::parse(options.group->broadcast_text(json{{"record", record}, {"nodes", nodes}}.dump(),
                                                                  "sharing the workflow run's folder"));
    record = shared.at("record");
    nodes = shared.at("nodes");
  }
  return opened;
}

}  // namespace

WorkflowResult run_workflow(const ApiGraph& input, const RunOptions& options) {
  auto [lock, record, nodes] = open_on_ranks(options, [&] { return open_new_run(input, options); });
  return execute(input, options, std::move(lock), record, nodes);
}

WorkflowResult resume_workflow(const RunOptions& options) {
  auto [lock, record, nodes] = open_on_ranks(options, [&] { return open_resumed_run(options); });
  // Read once rank 0 has checked the folder (every rank reads the same file).
  const fs::path file = options.run_directory / "workflow_api.json";
  return execute(parse_workflow(io::read_json_file(file), file.string()), options, std::move(lock), record, nodes);
}

}  // namespace lethe::graph
