// The bench's nodes (LetheBenchData, LetheBenchModel, LetheEvaluate) for the node registry.
#pragma once

namespace lethe::bench {

void register_bench_nodes();

}  // namespace lethe::bench
