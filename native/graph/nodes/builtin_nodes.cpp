// Lethe's own nodes, registered on first use of the registry. Apart from the registry
// (node_registry.cpp) so that the workflow parser can be built and fuzzed with other schemas.
#include <mutex>

#include "graph/node_registry.hpp"
#include "graph/nodes/node_groups.hpp"

namespace lethe::graph {

void register_builtin_nodes() {
  static std::once_flag once;
  std::call_once(once, [] {
    nodes::register_data_nodes();
    nodes::register_selection_nodes();
    nodes::register_objective_nodes();
    nodes::register_unlearn_nodes();
    nodes::register_sampling_nodes();
    nodes::register_scoring_nodes();
    nodes::register_host_nodes();
    nodes::register_output_nodes();
  });
}

}  // namespace lethe::graph
