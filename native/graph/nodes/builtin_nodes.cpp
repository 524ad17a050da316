// Lethe's own nodes, registered on first use of the registry, then the groups that layers
// above the core added (the bench's). Apart from the registry (node_registry.cpp) so that the
// workflow parser can be built and fuzzed with other schemas.
#include <functional>
#include <mutex>
#include <vector>

#include "graph/node_registry.hpp"
#include "graph/nodes/node_groups.hpp"

namespace lethe::graph {

namespace {

std::vector<std::function<void()>>& added_groups() {
  static std::vector<std::function<void()>> groups;
  return groups;
}

}  // namespace

void add_node_group(std::function<void()> registers) { added_groups().push_back(std::move(registers)); }

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
    for (const auto& group : added_groups()) group();
  });
}

}  // namespace lethe::graph
