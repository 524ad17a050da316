// The pieces of the `_lethe` module, one function per area of the native core.
#pragma once

#include <torch/extension.h>

#include "core/error.hpp"
#include "core/failure.hpp"
#include "core/progress.hpp"
#include "dist/group.hpp"

namespace lethe::bridge {

namespace py = pybind11;

void bind_core(py::module_& m);      // version, threads, tensor hand-over, io, diffusion math
void bind_models(py::module_& m);    // UNet and config detection
void bind_eval(py::module_& m);      // descriptors, SSCD metrics, FID/KID
void bind_unlearn(py::module_& m);   // objectives' loss functions and selections
void bind_graph(py::module_& m);     // node registry and running nodes
void bind_host(py::module_& m);      // host (ComfyUI) models behind native callbacks

// A Python progress callable (or None: no reporting) as a native callback: called with a dict
// (stage, step, total, seconds_per_step, eta_seconds, values) per update. It cancels by raising
// (ComfyUI's interrupt, KeyboardInterrupt: propagates through native code as it is) or by
// returning False (the run stops as lethe::Cancelled, _lethe.Cancelled in Python, after the
// checkpoint a cancel writes).
ProgressCallback progress_from_python(const py::object& progress);

// Runs `work` without the GIL. Python errors (ComfyUI's interrupt or a KeyboardInterrupt raised
// by a progress callback) and lethe::Error pass as they are; any other library error becomes one
// clear line about `doing`, its text and backtrace going to a log file (core/failure.hpp).
template <typename Work>
auto without_gil(const std::string& doing, Work work) -> decltype(work()) {
  try {
    py::gil_scoped_release release;
    return work();
  } catch (const py::error_already_set&) {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(user_message(e, doing));
  }
}

// A torch.distributed ProcessGroup (or None: one process) as the core's dist::Group, its
// collectives waited on for at most timeout_seconds; `function` names the caller in errors.
dist::Group group_from_python(const py::object& group, double timeout_seconds, const std::string& function);

}  // namespace lethe::bridge
