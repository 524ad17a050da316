#include "bindings.hpp"
#include "dist/group.hpp"
#include "unlearn/run.hpp"
#include "unlearn/uce.hpp"
#include "io/json_config.hpp"
#include "unlearn/frequency_selection.hpp"
#include "unlearn/losses.hpp"
#include "unlearn/objective.hpp"
#include "unlearn/timestep_selection.hpp"

namespace lethe::bridge {

namespace {

unlearn::FrequencySelection frequency_from(const std::string& json) {
  return unlearn::FrequencySelection(io::read_config<unlearn::FrequencySelectionConfig>(
      io::parse_json(json, "frequency selection"), "frequency selection"));
}

}  // namespace

void bind_unlearn(py::module_& m) {
  m.def(
      "run_unlearning",
      [](const std::string& config_file, const std::vector<std::string>& overrides, const std::string& out,
         const py::object& group, double timeout_seconds, const py::object& progress) {
        const unlearn::RunConfig config = unlearn::run_config_from(config_file, overrides, out);
        const dist::Group ranks = group_from_python(group, timeout_seconds, "run_unlearning");
        const ProgressCallback report = progress_from_python(progress);  // made and dropped with the GIL held
        const unlearn::RunResult result = without_gil("unlearning run", [&] {
          return unlearn::run_unlearning(config, report, nullptr, nullptr, {}, &ranks);
        });
        return py::make_tuple(result.summary.dump(), result.directory.string());
      },
      py::arg("config_file"), py::arg("overrides") = std::vector<std::string>{}, py::arg("out") = "",
      py::arg("group") = py::none(), py::arg("timeout_seconds") = 300.0, py::arg("progress") = py::none(),
      "`lethe unlearn` from Python: the config file (\"\": defaults), --set overrides and --out. group: a "
      "torch.distributed ProcessGroup for a data-parallel run (every rank calls this; docs/distributed.md), its "
      "collectives waited on for at most timeout_seconds. Returns (summary JSON, run folder).");

  m.def("objective_names", [] {
    unlearn::register_builtin_objectives();
    return unlearn::objective_names();
  });
  m.def("objective_description", &unlearn::objective_description, py::arg("name"));
  m.def(
      "objective_config",
      [](const std::string& name, const std::string& config_json) {
        return unlearn::make_objective(name, io::parse_json(config_json, "objective config"), name)->config_json().dump();
      },
      py::arg("name"), py::arg("config_json") = "{}", "The objective's resolved config (defaults filled in), as JSON.");

  m.def(
      "frequency_energy",
      [](const at::Tensor& residual, const std::string& config_json, std::optional<at::Tensor> tau) {
        return frequency_from(config_json).filtered_energy(residual, tau.value_or(at::Tensor()));
      },
      py::arg("residual"), py::arg("config_json"), py::arg("tau") = py::none(),
      "Filtered energy per sample; tau [B] = t / (T - 1) when the cutoff depends on t.");
  m.def(
      "frequency_mask",
      [](int64_t height, int64_t width, const std::string& config_json) {
        return frequency_from(config_json).mask(height, width, at::kFloat);
      },
      py::arg("height"), py::arg("width"), py::arg("config_json"));
  m.def(
      "forget_error",
      [](const at::Tensor& residual, const at::Tensor& masks, const std::string& config_json) {
        return unlearn::forget_error(residual, masks, frequency_from(config_json));
      },
      py::arg("residual"), py::arg("masks"), py::arg("config_json") = "{}");
  m.def("siss_weights", &unlearn::siss_weights, py::arg("m"), py::arg("x"), py::arg("a"), py::arg("gamma"),
        py::arg("sigma"), py::arg("lam"));
  m.def(
      "siss_losses",
      [](const at::Tensor& p_x, const at::Tensor& p_a, const at::Tensor& m, const at::Tensor& x, const at::Tensor& a,
         const at::Tensor& gamma, const at::Tensor& sigma, double lambda, const at::Tensor& time_weight,
         const at::Tensor& masks, const std::string& frequency_json, const std::string& prediction_type,
         std::optional<at::Tensor> tau) {
        auto terms = unlearn::siss_losses(p_x, p_a, m, x, a, gamma, sigma, lambda, time_weight, masks,
                                          frequency_from(frequency_json), prediction_type, tau.value_or(at::Tensor()));
        return py::make_tuple(terms.retain, terms.forget);
      },
      py::arg("p_x"), py::arg("p_a"), py::arg("m"), py::arg("x"), py::arg("a"), py::arg("gamma"), py::arg("sigma"),
      py::arg("lam"), py::arg("time_weight"), py::arg("masks"), py::arg("frequency_json") = "{}",
      py::arg("prediction_type") = "epsilon", py::arg("tau") = py::none());
  m.def("siss_combine", &unlearn::siss_combine, py::arg("retain_gradient"), py::arg("forget_gradient"),
        py::arg("scaling_norm"));
  m.def("erasediff_combine", &unlearn::erasediff_combine, py::arg("retain_gradient"), py::arg("forget_gradient"),
        py::arg("eta"));
  m.def("npo_loss", &unlearn::npo_loss, py::arg("error"), py::arg("reference_error"), py::arg("beta"), py::arg("beta_k"));
  m.def("dpo_loss", &unlearn::dpo_loss, py::arg("winner_error"), py::arg("loser_error"),
        py::arg("reference_winner_error"), py::arg("reference_loser_error"), py::arg("beta"));
  m.def("f_divergence", &unlearn::f_divergence, py::arg("error"), py::arg("divergence"), py::arg("tau") = 1.0,
        py::arg("alpha") = 0.5);
  m.def("f_divergence_names", &unlearn::f_divergence_names);
  m.def("variational_divergence_names", &unlearn::variational_divergence_names);
  m.def("critic_activation", &unlearn::critic_activation, py::arg("logits"), py::arg("divergence"));
  m.def("critic_conjugate", &unlearn::critic_conjugate, py::arg("logits"), py::arg("divergence"));
  m.def("critic_loss", &unlearn::critic_loss, py::arg("real_logits"), py::arg("fake_logits"), py::arg("mask"),
        py::arg("divergence"));
  m.def("generator_loss", &unlearn::generator_loss, py::arg("fake_logits"), py::arg("divergence"));
  m.def("uce_weight", &unlearn::uce_weight, py::arg("weight"), py::arg("erase"), py::arg("destination"),
        py::arg("preserve"), py::arg("lam"), py::arg("erase_scale"), py::arg("preserve_scale"));
  m.def("uce_rows", &unlearn::uce_rows, py::arg("context"), py::arg("tokens"), py::arg("destination_context"),
        py::arg("destination_tokens"));
}

}  // namespace lethe::bridge
