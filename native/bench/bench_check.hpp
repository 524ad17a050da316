// `lethe bench check`: measures the committed bench models against the bench's acceptance
// targets and writes a JSON report (+ pictures): model hashes against their cards,
// classifier test accuracy, descriptor copy detection on held-out images, memorization of
// every forget caption by `base` (and its absence in `retrained`), class-conditional accuracy
// and FID of both. The quick variant checks a small sample of each (for `make test`).
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/progress.hpp"

namespace lethe::bench {

struct BenchCheckOptions {
  bool quick = false;                 // hashes, 500 test images, one forget caption
  std::filesystem::path models;       // default: bench_model_dir()
  std::filesystem::path out;          // report.json and pictures go here (created)
  int64_t samples_per_caption = 16;   // full check: generations per forget caption (>= 8)
  int64_t samples_per_class = 50;     // full check: generations per class prompt
};

// Targets (issue "embedded benchmark"): returned in the report beside the measurements.
struct BenchTargets {
  double base_memorization_min = 0.8;       // every forget caption
  double retrained_memorization_max = 0.1;  // every forget caption
  double base_class_accuracy_min = 0.8;
  double fid_ratio_max = 1.15;              // max(base, retrained) / min(...)
  double descriptor_recall_min = 0.9;
  double classifier_accuracy_min = 0.9;
};

// Runs the check; the report's "pass" is true when every target holds. Throws on missing
// or mismatching model files (naming the file, its card and both hashes).
nlohmann::json check_bench(const BenchCheckOptions& options, const ProgressCallback& progress = {});

}  // namespace lethe::bench
