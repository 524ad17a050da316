#include <torch/version.h>

#include <ATen/CPUGeneratorImpl.h>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/utils/pybind.h>

#include "bindings.hpp"
#include "diffusion/timestep_distribution.hpp"
#include "core/error.hpp"
#include "core/runtime.hpp"
#include "diffusion/sampler.hpp"
#include "diffusion/schedule.hpp"
#include "io/json_config.hpp"
#include "io/safetensors.hpp"

namespace lethe::bridge {

dist::Group group_from_python(const py::object& group, double timeout_seconds, const std::string& function) {
  if (group.is_none()) return {};
  // Cast at call time: torch.distributed's ProcessGroup type is registered when it is imported.
  c10::intrusive_ptr<c10d::ProcessGroup> process_group;
  try {
    process_group = group.cast<c10::intrusive_ptr<c10d::ProcessGroup>>();
  } catch (const py::cast_error&) {
    throw Error(str(function, ": group: expected a torch.distributed ProcessGroup (e.g. torch.distributed.group.WORLD "
                    "after init_process_group), got ", py::str(py::type::of(group)).cast<std::string>()));
  }
  return dist::Group(process_group, std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000.0)));
}

ProgressCallback progress_from_python(const py::object& progress) {
  if (progress.is_none()) return {};
  return [progress](const ProgressEvent& event) {
    py::gil_scoped_acquire acquire;
    py::dict info;
    info["stage"] = event.stage;
    info["step"] = event.step;
    info["total"] = event.total;
    info["seconds_per_step"] = event.seconds_per_step;
    info["eta_seconds"] = event.eta_seconds;
    info["values"] = event.values;
    // False cancels; so does a text, which says why (the launcher's "SIGINT").
    const py::object answer = progress(info);
    if (py::isinstance<py::bool_>(answer) && !answer.cast<bool>())
      throw Cancelled(str(event.stage, ": cancelled by the progress callback at step ", event.step, " of ", event.total));
    if (py::isinstance<py::str>(answer))
      throw Cancelled(str(event.stage, ": cancelled (", answer.cast<std::string>(), ") at step ", event.step, " of ",
                          event.total));
  };
}

void bind_core(py::module_& m) {
  m.def("version", &lethe::version, "Version of the native core.");
  m.def("build_info", &lethe::build_info, "Version, torch version and ABI the module was built with.");
  m.def("torch_version", [] { return std::string(TORCH_VERSION); }, "The torch version _lethe was compiled against.");
  m.def("init_threads", &lethe::init_threads, py::arg("threads") = 0,
        "Set torch's thread count (0 = the cores this process may use); returns the count.");
  m.def("available_cores", &lethe::available_cores);

  m.def(
      "save_safetensors",
      [](const std::string& path, const std::map<std::string, at::Tensor>& tensors, const io::Metadata& metadata) {
        py::gil_scoped_release release;
        io::save_safetensors(path, tensors, metadata);
      },
      py::arg("path"), py::arg("tensors"), py::arg("metadata") = io::Metadata{});
  m.def(
      "load_safetensors",
      [](const std::string& path) {
        auto file = io::SafetensorsFile::open(path);
        return py::make_tuple(file.tensors(), file.metadata());
      },
      py::arg("path"), "Returns (tensors, metadata). Tensors view a private copy-on-write mapping.");

  using diffusion::NoiseSchedule;
  py::class_<NoiseSchedule>(m, "NoiseSchedule")
      .def(py::init([](const std::string& config_json) {
             return NoiseSchedule(io::read_config<diffusion::ScheduleConfig>(
                 io::parse_json(config_json, "NoiseSchedule config"), "NoiseSchedule config"));
           }),
           py::arg("config_json") = "{}")
      .def_static("from_alphas_cumprod", &NoiseSchedule::from_alphas_cumprod, py::arg("alphas_cumprod"),
                  py::arg("prediction_type") = "epsilon")
      .def_static("from_flow_sigmas", &NoiseSchedule::from_flow_sigmas, py::arg("sigmas"),
                  "A flow-matching schedule: x_t = (1 - s_t) x_0 + s_t eps, velocity target eps - x_0.")
      .def_property_readonly("prediction_type", [](const NoiseSchedule& s) { return s.config().prediction_type; })
      .def_property_readonly("betas", &NoiseSchedule::betas)
      .def_property_readonly("alphas_cumprod", &NoiseSchedule::alphas_cumprod)
      .def("signal_scale", &NoiseSchedule::signal_scale, py::arg("t"), py::arg("rank"))
      .def("noise_scale", &NoiseSchedule::noise_scale, py::arg("t"), py::arg("rank"))
      .def("add_noise", &NoiseSchedule::add_noise, py::arg("x0"), py::arg("noise"), py::arg("t"))
      .def("split_prediction", &NoiseSchedule::split_prediction, py::arg("x_t"), py::arg("model_output"), py::arg("t"),
           "(x0_hat, eps_hat) from a model output in the schedule's parameterisation.")
      .def("training_target", &NoiseSchedule::training_target, py::arg("x0"), py::arg("eps"), py::arg("t"));
  m.def(
      "timestep_distribution",
      [](const NoiseSchedule& schedule, const std::string& config_json, int64_t count, int64_t t_min,
         std::optional<int64_t> t_max, uint64_t seed) {
        const diffusion::TimestepDistribution distribution(
            io::read_config<diffusion::TimestepDistributionConfig>(io::parse_json(config_json, "timestep distribution"),
                                                                   "timestep distribution"),
            schedule);
        at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
        const int64_t end = t_max.value_or(schedule.num_timesteps());
        return py::make_tuple(distribution.kind(), distribution.probabilities(t_min, end),
                              distribution.sample(count, t_min, end, generator));
      },
      py::arg("schedule"), py::arg("config_json") = "{}", py::arg("count") = 0, py::arg("t_min") = 0,
      py::arg("t_max") = py::none(), py::arg("seed") = 0,
      "(resolved kind, P(t) [T] over [t_min, t_max), `count` draws) of how training draws t for `schedule`.");
  m.def("inference_timesteps", &diffusion::inference_timesteps, py::arg("num_train_timesteps"), py::arg("steps"),
        py::arg("spacing") = "leading", py::arg("steps_offset") = 0);
  m.def(
      "ddim_step",
      [](const NoiseSchedule& schedule, const at::Tensor& model_output, int64_t t, int64_t t_prev,
         const at::Tensor& x_t, double eta, const std::optional<at::Tensor>& noise, double clip_sample_range,
         bool use_clipped_model_output) {
        auto result = diffusion::ddim_step(schedule, model_output, t, t_prev, x_t, eta, noise.value_or(at::Tensor()),
                                           clip_sample_range, use_clipped_model_output);
        return py::make_tuple(result.prev_sample, result.pred_original_sample);
      },
      py::arg("schedule"), py::arg("model_output"), py::arg("t"), py::arg("t_prev"), py::arg("x_t"),
      py::arg("eta") = 0.0, py::arg("noise") = py::none(), py::arg("clip_sample_range") = 0.0,
      py::arg("use_clipped_model_output") = false);
  m.def(
      "ddpm_step",
      [](const NoiseSchedule& schedule, const at::Tensor& model_output, int64_t t, int64_t t_prev,
         const at::Tensor& x_t, const at::Tensor& noise, const std::string& variance_type, double clip_sample_range) {
        auto result = diffusion::ddpm_step(schedule, model_output, t, t_prev, x_t, noise, variance_type,
                                           clip_sample_range);
        return py::make_tuple(result.prev_sample, result.pred_original_sample);
      },
      py::arg("schedule"), py::arg("model_output"), py::arg("t"), py::arg("t_prev"), py::arg("x_t"),
      py::arg("noise"), py::arg("variance_type") = "fixed_small", py::arg("clip_sample_range") = 0.0);
}

}  // namespace lethe::bridge
