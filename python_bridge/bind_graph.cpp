#include "bindings.hpp"
#include "graph/node_registry.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "graph/workflow.hpp"
#include "graph/workflow_run.hpp"
#include "io/json_config.hpp"
#include "models/conditioning.hpp"

namespace lethe::bridge {

namespace {

// A Python object into a node input of the given spec: tensors (IMAGE, MASK, ...) cross
// without copying unless they are inference tensors (ComfyUI runs nodes under
// torch.inference_mode(); autograd cannot use those, so they are cloned as normal tensors),
// widget values become JSON, Lethe objects pass through.
at::Tensor normal_tensor(const py::handle& object) {
  at::Tensor tensor = object.cast<at::Tensor>();
  if (tensor.is_inference()) {
    c10::InferenceMode normal(false);
    tensor = tensor.clone();
  }
  return tensor;
}

// A CONDITIONING as the pack gives it (comfy_glue.to_native): a dict {"context": [N, L, D],
// "pooled": [N, P] or None, "sizes": [N, 6] or None}, or a bare context tensor.
graph::Value conditioning_value(const py::handle& object, const std::string& where) {
  if (THPVariable_Check(object.ptr())) return graph::Value(graph::types::kConditioning, models::Conditioning(normal_tensor(object)));
  check(py::isinstance<py::dict>(object), where, ": expected CONDITIONING as a tensor or a dict {context, pooled, sizes}, got a ",
        std::string(py::str(py::type::handle_of(object).attr("__name__"))));
  auto dict = py::reinterpret_borrow<py::dict>(object);
  auto part = [&](const char* key) {
    if (!dict.contains(key) || dict[key].is_none()) return at::Tensor();
    check(THPVariable_Check(dict[key].ptr()), where, ": CONDITIONING part '", key, "' must be a tensor");
    return normal_tensor(dict[key]);
  };
  check(dict.contains("context"), where, ": CONDITIONING has no 'context'");
  return graph::Value(graph::types::kConditioning, models::Conditioning(part("context"), part("pooled"), part("sizes")));
}

graph::Value to_value(const py::handle& object, const graph::InputSpec& spec, const std::string& where) {
  if (py::isinstance<graph::Value>(object)) return object.cast<graph::Value>();
  if (spec.type == graph::types::kConditioning) return conditioning_value(object, where);
  if (THPVariable_Check(object.ptr())) return graph::Value::tensor(spec.type, normal_tensor(object));
  if (py::isinstance<py::bool_>(object)) return graph::Value::json(spec.type, object.cast<bool>());
  if (py::isinstance<py::int_>(object)) return graph::Value::json(spec.type, object.cast<int64_t>());
  if (py::isinstance<py::float_>(object)) return graph::Value::json(spec.type, object.cast<double>());
  if (py::isinstance<py::str>(object)) return graph::Value::json(spec.type, object.cast<std::string>());
  throw Error(str(where, ": cannot pass a Python ", std::string(py::str(py::type::handle_of(object).attr("__name__"))),
                  " as ", spec.type));
}

py::object from_value(const graph::Value& value) {
  if (value.is_json()) {
    const auto& json = value.as<nlohmann::json>("output");
    if (json.is_boolean()) return py::bool_(json.get<bool>());
    if (json.is_number_integer()) return py::int_(json.get<int64_t>());
    if (json.is_number()) return py::float_(json.get<double>());
    if (json.is_string()) return py::str(json.get<std::string>());
    return py::str(json.dump());
  }
  if (value.type() == graph::types::kImage || value.type() == graph::types::kMask || value.type() == graph::types::kLatent)
    return py::cast(value.as<at::Tensor>("output"));
  if (value.type() == graph::types::kConditioning)
    return py::cast(value.as<models::Conditioning>("output").context);
  if (value.type() == graph::types::kHostModel) {  // patches the pack applies to the incoming MODEL
    const auto& patches = value.as<std::shared_ptr<graph::nodes::ModelPatches>>("output");
    py::dict deltas;
    for (const auto& [key, delta] : patches->deltas) deltas[py::str(key)] = py::cast(delta);
    py::dict out;
    out["patches"] = deltas;
    out["strength"] = patches->strength;
    return out;
  }
  return py::cast(value);
}

}  // namespace

void bind_graph(py::module_& m) {
  py::class_<graph::Value>(m, "Value", "A Lethe object travelling between nodes (model, dataset, selection, ...).")
      .def_property_readonly("type", &graph::Value::type)
      .def("__repr__", [](const graph::Value& v) { return "<lethe " + v.type() + ">"; });

  m.def("node_schemas_json", [](bool include_headless) { return graph::schemas_json(include_headless).dump(); },
        py::arg("include_headless") = false, "Every node schema, in the shape of ComfyUI's /object_info.");
  m.def(
      "widgets_values_layout",
      [](const std::string& schema) {
        return graph::widgets_values_layout(io::parse_json(schema, "node schema")).dump();
      },
      py::arg("object_info_schema_json"),
      "The frontend's widgets_values layout of a node schema (/object_info shape), as JSON: widget names in "
      "order, null for a seed-control value.");
  m.def(
      "convert_workflow",
      [](const std::string& text, const std::string& object_info_text) {
        const nlohmann::json object_info =
            object_info_text.empty() ? nlohmann::json() : io::parse_json(object_info_text, "object_info");
        const graph::ApiGraph graph = graph::parse_workflow(io::parse_json(text, "workflow"), "workflow",
                                                            object_info_text.empty() ? nullptr : &object_info, "object_info");
        graph::check_schemas_known(graph, "workflow");
        return graph::to_api_json(graph).dump();
      },
      py::arg("workflow_json"), py::arg("object_info_json") = "",
      "A workflow (UI or API format) as API-format JSON, as `lethe convert` (object_info_json: ComfyUI's /object_info "
      "for nodes that are not Lethe's).");

  m.def(
      "run_node",
      [](const std::string& name, const py::dict& inputs, const std::string& node_id, const std::string& run_directory,
         const py::object& progress, const std::map<std::string, std::string>& folders) {
        const graph::NodeSchema& schema = graph::node_schema(name);
        std::map<std::string, graph::Value> values;
        for (const auto& item : inputs) {
          const std::string key = item.first.cast<std::string>();
          const graph::InputSpec* spec = schema.input(key);
          check(spec != nullptr, "node ", node_id, " (", name, "): unknown input '", key, "'");
          if (!item.second.is_none())
            values[key] = to_value(item.second, *spec, str("node ", node_id, " (", name, ") input '", key, "'"));
        }
        for (auto& [key, value] : values) {
          const graph::InputSpec* spec = schema.input(key);
          if (spec->is_widget())
            value = graph::Value::json(spec->type, graph::check_widget_value(*spec, value.as<nlohmann::json>(key),
                                                                             str("node ", node_id, " (", name, ") input '", key, "'")));
        }
        graph::NodeContext context;
        context.node_id = node_id;
        context.run_directory = run_directory;
        for (const auto& [folder, path] : folders) context.folders[folder] = path;
        context.progress = progress_from_python(progress);
        const std::vector<graph::Value> outputs = without_gil(str("node ", node_id, " (", name, ")"), [&] {
          return graph::run_node(name, context, graph::NodeInputs(schema, values, node_id));
        });
        py::tuple result(outputs.size());
        for (size_t i = 0; i < outputs.size(); ++i) result[i] = from_value(outputs[i]);
        py::dict ui;
        py::list previews;
        for (const auto& [label, images] : context.previews) previews.append(py::make_tuple(label, images));
        ui["previews"] = previews;
        ui["texts"] = context.texts;
        std::vector<std::string> files;
        for (const auto& file : context.files) files.push_back(file.string());
        ui["files"] = files;
        return py::make_tuple(result, ui);
      },
      py::arg("name"), py::arg("inputs"), py::arg("node_id") = "0", py::arg("run_directory") = ".",
      py::arg("progress") = py::none(), py::arg("folders") = std::map<std::string, std::string>{},
      "Runs a native node. Inputs: tensors, widget values or lethe Values; folders: model folders by ComfyUI "
      "name (e.g. loras); progress: called with a dict per update, cancels by raising or returning False "
      "or a reason text (raises Cancelled). Returns (outputs, ui).");

  m.def(
      "run_workflow",
      [](const std::string& workflow, const std::string& out, const std::string& resume,
         const std::vector<std::string>& overrides, const py::object& group, double timeout_seconds,
         const py::object& progress) {
        const dist::Group ranks = group_from_python(group, timeout_seconds, "run_workflow");
        const ProgressCallback report = progress_from_python(progress);  // made and dropped with the GIL held
        const graph::WorkflowResult result = without_gil("workflow run", [&] {
          return graph::run_request({workflow, out, resume, overrides}, report,
                                    [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); },
                                    &ranks);
        });
        return py::make_tuple(result.record.dump(), result.run_directory.string(), graph::result_lines(result));
      },
      py::arg("workflow") = "", py::arg("out") = "", py::arg("resume") = "",
      py::arg("overrides") = std::vector<std::string>{}, py::arg("group") = py::none(),
      py::arg("timeout_seconds") = 300.0, py::arg("progress") = py::none(),
      "`lethe run` from Python: a workflow file (or resume: a run folder) with --out and --set overrides. group: "
      "a torch.distributed ProcessGroup (every rank calls this; the unlearn and evaluate nodes split their work, "
      "rank 0 writes the folder; docs/distributed.md). Returns (run.json's record, run folder, the lines lethe run "
      "prints).");
}

}  // namespace lethe::bridge
