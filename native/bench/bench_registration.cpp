#include "bench/bench_registration.hpp"

#include <mutex>

#include "bench/bench_data.hpp"
#include "bench/bench_evaluation.hpp"
#include "bench/bench_nodes.hpp"
#include "eval/descriptor.hpp"
#include "graph/node_registry.hpp"
#include "unlearn/presets.hpp"

namespace lethe::bench {

void register_bench() {
  static std::once_flag once;
  std::call_once(once, [] {
    unlearn::register_data_preset("bench", [](const unlearn::DataConfig& config, const models::DiffusionModel&) {
      return bench_task_data(config);
    });
    unlearn::set_default_model([] { return bench_model_dir() / "base.safetensors"; });
    eval::register_named_descriptor("bench", [] { return eval::load_descriptor(bench_model_dir() / "descriptor.safetensors"); });
    graph::add_node_group(register_bench_nodes);
  });
}

}  // namespace lethe::bench
