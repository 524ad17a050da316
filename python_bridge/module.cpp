// The pybind11 module `_lethe`: hands tensors and objects between Python and the native
// core. No algorithm lives here; every function forwards to native/. Long calls release
// the GIL.
#include "bindings.hpp"

#include "bench/bench_registration.hpp"
#include "core/error.hpp"

PYBIND11_MODULE(_lethe, m) {
  m.doc() = "Lethe native core (libtorch). Use it through the `lethe` ComfyUI pack or python_bridge.";
  // pybind11 tries the most recently registered translator first: the subclass comes last so
  // that a Cancelled reaches Python as _lethe.Cancelled (itself a LetheError).
  auto error = pybind11::register_exception<lethe::Error>(m, "LetheError", PyExc_RuntimeError);
  pybind11::register_exception<lethe::Cancelled>(m, "Cancelled", error.ptr());
  lethe::bench::register_bench();  // the pack offers the embedded bench's data, models and nodes
  lethe::bridge::bind_core(m);
  lethe::bridge::bind_models(m);
  lethe::bridge::bind_eval(m);
  lethe::bridge::bind_unlearn(m);
  lethe::bridge::bind_graph(m);
  lethe::bridge::bind_host(m);
}
