// The host-model adapter: a ComfyUI MODEL as native code sees it (models::HostModel), its
// callbacks calling back into Python. Native code runs with the GIL released; each callback
// takes it for the Python call only, so backward passes run without it.
#include "bindings.hpp"
#include "graph/value.hpp"
#include "models/host_model.hpp"

namespace lethe::bridge {

namespace {

// A Python object whose last reference may be dropped by native code without the GIL.
class PyRef {
 public:
  explicit PyRef(py::object object) : object_(std::move(object)) {}
  ~PyRef() {
    py::gil_scoped_acquire acquire;
    object_ = py::object();
  }
  const py::object& get() const { return object_; }

 private:
  py::object object_;
};

models::HostModelInfo describe_from(const py::object& result, const std::string& where) {
  models::HostModelInfo info;
  auto tuple = result.cast<py::tuple>();
  check(tuple.size() == 5, where, ": describe() must return (weights, prediction_type, schedule table, device, "
        "compute dtype), got ", tuple.size(), " items");
  for (const auto& item : tuple[0].cast<py::list>()) {
    auto pair = item.cast<py::tuple>();
    info.weights.emplace_back(pair[0].cast<std::string>(), pair[1].cast<std::vector<int64_t>>());
  }
  info.prediction_type = tuple[1].cast<std::string>();
  info.schedule_table = tuple[2].cast<at::Tensor>();
  info.device = c10::Device(tuple[3].cast<std::string>());
  info.compute_dtype = models::host_compute_dtype(tuple[4].cast<std::string>());
  return info;
}

}  // namespace

void bind_host(py::module_& m) {
  m.def(
      "host_model",
      [](const py::object& describe, const py::object& predict, const py::object& attach, const std::string& description,
         const py::object& fingerprint, const py::object& conditioning_sha256) {
        auto model = std::make_shared<models::HostModel>();
        model->description = description;
        auto describe_ref = std::make_shared<PyRef>(describe);
        auto predict_ref = std::make_shared<PyRef>(predict);
        auto attach_ref = std::make_shared<PyRef>(attach);
        model->describe = [describe_ref, description] {
          py::gil_scoped_acquire acquire;
          return describe_from(describe_ref->get()(), description);
        };
        model->predict = [predict_ref](const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& context,
                                       bool adapters) {
          py::gil_scoped_acquire acquire;
          return predict_ref->get()(x_t, t, context, adapters).cast<at::Tensor>();
        };
        if (!fingerprint.is_none()) {
          auto fingerprint_ref = std::make_shared<PyRef>(fingerprint);
          model->fingerprint = [fingerprint_ref] {
            py::gil_scoped_acquire acquire;
            return fingerprint_ref->get()().cast<std::string>();
          };
        }
        if (!conditioning_sha256.is_none()) {
          auto digest_ref = std::make_shared<PyRef>(conditioning_sha256);
          model->conditioning_sha256 = [digest_ref](const std::vector<at::Tensor>& contexts) {
            py::gil_scoped_acquire acquire;
            return digest_ref->get()(contexts).cast<std::string>();
          };
        }
        model->attach = [attach_ref](const std::vector<models::HostAdapter>& adapters, bool gradient_checkpointing) {
          py::gil_scoped_acquire acquire;
          py::list items;
          for (const auto& adapter : adapters)
            items.append(py::make_tuple(adapter.key, adapter.down, adapter.up, adapter.scale));
          attach_ref->get()(items, gradient_checkpointing);
        };
        return graph::Value(graph::types::kHostModel, model);
      },
      py::arg("describe"), py::arg("predict"), py::arg("attach"), py::arg("description") = "ComfyUI MODEL",
      py::arg("fingerprint") = py::none(), py::arg("conditioning_sha256") = py::none(),
      "A host model for native nodes. describe() -> ([(weight key, [out, in])], prediction_type (epsilon | "
      "v_prediction | flow), schedule table [T] (alphas_cumprod, or the flow sigmas), device, compute dtype (float32 | "
      "bfloat16 | float16: with float16 training scales its losses)); "
      "predict(x_t, t, context, adapters: bool) -> the model output in its prediction type; attach([(weight key, "
      "down, up, scale)], gradient_checkpointing: bool) installs LoRA adapters (an empty list removes them) and, "
      "with gradient_checkpointing, recomputes the model's blocks in backward; fingerprint() -> SHA-256 hex of the "
      "weights as computed (a run's identity; unlearning needs it); conditioning_sha256([contexts]) -> SHA-256 hex "
      "of what the host attaches to those contexts ('' for nothing; part of a run's identity).");
}

}  // namespace lethe::bridge
