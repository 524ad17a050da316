#include "bindings.hpp"
#include "bench/bench_evaluation.hpp"
#include "io/json_config.hpp"
#include "eval/copy_detection.hpp"
#include "eval/descriptor.hpp"
#include "eval/fid.hpp"
#include "eval/report.hpp"
#include "eval/sscd_metrics.hpp"

namespace lethe::bridge {

void bind_eval(py::module_& m) {
  m.def(
      "run_evaluation",
      [](const std::string& request_json, const py::object& group, double timeout_seconds, const py::object& progress) {
        const auto request = io::read_config<bench::EvalRequest>(io::parse_json(request_json, "evaluation request"),
                                                                  "evaluation request");
        const dist::Group ranks = group_from_python(group, timeout_seconds, "run_evaluation");
        const ProgressCallback report = progress_from_python(progress);  // made and dropped with the GIL held
        const bench::EvalOutcome outcome =
            without_gil("evaluation", [&] { return bench::run_eval_request(request, report, &ranks); });
        return py::make_tuple(outcome.report.dump(), outcome.out.string(),
                              eval::report_summary(outcome.report, outcome.config.erased_concept));
      },
      py::arg("request_json"), py::arg("group") = py::none(), py::arg("timeout_seconds") = 300.0,
      py::arg("progress") = py::none(),
      "`lethe eval` from Python: the request's keys are the options (model, baseline, reference, out, descriptor, "
      "classifier, config, erased_concept, precision, no_attacks, seed, samples_per_caption, samples_per_class). group: "
      "a torch.distributed ProcessGroup splitting the sampling over its ranks (docs/distributed.md). Returns (report "
      "JSON, report folder, summary lines).");

  m.def("frechet_distance", &eval::frechet_distance, py::arg("features_a"), py::arg("features_b"),
        py::call_guard<py::gil_scoped_release>());
  m.def(
      "kernel_distance",
      [](const at::Tensor& a, const at::Tensor& b, int64_t subsets, int64_t subset_size, uint64_t seed) {
        auto result = eval::kernel_distance(a, b, subsets, subset_size, seed);
        return py::make_tuple(result.mean, result.std);
      },
      py::arg("features_a"), py::arg("features_b"), py::arg("subsets") = 20, py::arg("subset_size") = 200,
      py::arg("seed") = 0);
  m.def("similarity_matrix", &eval::similarity_matrix, py::arg("generated"), py::arg("references"));
  m.def("best_match", &eval::best_match, py::arg("similarity"), py::arg("assigned"));
  m.def("memorization_rate", &eval::memorization_rate, py::arg("best_scores"), py::arg("threshold"));
  m.def("sscd_progress", &eval::sscd_progress, py::arg("evaluated"), py::arg("original"), py::arg("retrained"));
  m.def(
      "sscd_margin",
      [](const at::Tensor& generated, const at::Tensor& forget, const at::Tensor& assigned, const at::Tensor& retain,
         int64_t neighbours) {
        auto result = eval::sscd_margin(generated, forget, assigned, retain, neighbours);
        return py::make_tuple(result.mean, result.fraction_negative);
      },
      py::arg("generated"), py::arg("forget"), py::arg("assigned"), py::arg("retain"), py::arg("neighbours") = 16);
  m.def("sscd_direction", &eval::sscd_direction, py::arg("before"), py::arg("after"), py::arg("forget"),
        py::arg("assigned"));
  m.def("percentile", &eval::percentile, py::arg("values"), py::arg("q"));
  m.def("sscd_official_preprocess", &eval::sscd_official_preprocess, py::arg("images"));
  m.def(
      "copy_detection",
      [](const at::Tensor& queries, const at::Tensor& database, const at::Tensor& sources) {
        auto r = eval::evaluate_copy_detection(queries, database, sources);
        return py::dict(py::arg("recall_at_1") = r.recall_at_1, py::arg("micro_average_precision") = r.micro_average_precision,
                        py::arg("threshold_at_90_precision") = r.threshold_at_90_precision);
      },
      py::arg("queries"), py::arg("database"), py::arg("sources"));

  py::class_<eval::Descriptor, std::shared_ptr<eval::Descriptor>>(m, "Descriptor",
                                                                   "A copy-detection descriptor (images -> unit vectors)")
      .def_static(
          "load",
          [](const std::string& path, std::optional<int64_t> expected_dim) { return eval::load_descriptor(path, expected_dim); },
          py::arg("path"), py::arg("expected_dim") = py::none())
      .def(
          "embed",
          [](eval::Descriptor& self, const at::Tensor& images, int64_t batch_size) {
            py::gil_scoped_release release;
            return eval::embed_batched(self, images, batch_size);
          },
          py::arg("images"), py::arg("batch_size") = 64)
      .def_property_readonly("dim", &eval::Descriptor::dim)
      .def_property_readonly("kind", &eval::Descriptor::kind)
      .def_property_readonly("preprocessing", &eval::Descriptor::preprocessing)
      .def_readonly("sha256", &eval::Descriptor::sha256);
}

}  // namespace lethe::bridge
