// The bench's default evaluation: its data (forget images and captions, class prompts,
// retain probes, the held-out test set) and settings, and the shipped descriptor and
// classifier.
#pragma once

#include <filesystem>

#include "bench/fashion_bench.hpp"
#include "eval/evaluation.hpp"

namespace lethe::bench {

// models/bench under resource_dir().
std::filesystem::path bench_model_dir();

eval::EvalData bench_eval_data(const FashionBench& bench, int64_t retain_probes = 50, uint64_t seed = 0);

// Default settings: 16 samples per forget caption, 50 per class, DDIM 25 steps, guidance
// 3, the copy threshold justified in models/README.md.
eval::EvalConfig bench_eval_config();

}  // namespace lethe::bench
