// Copy-detection quality of a descriptor on a synthetic copy set (docs/evaluation.md §1.6):
// each query is an augmented copy of one database image; the rest of the database are
// distractors. Reports recall@1 (the copy's source ranks first), micro average precision
// over all (query, database) pairs, the threshold reaching 90% precision, and the copy /
// non-copy score samples for histograms.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>

namespace lethe::eval {

struct CopyDetectionResult {
  int64_t queries = 0;
  int64_t database = 0;
  double recall_at_1 = 0.0;
  double micro_average_precision = 0.0;
  double threshold_at_90_precision = 0.0;  // lowest score whose precision over pairs >= 0.9
  std::vector<float> copy_scores;          // score of each query with its source
  std::vector<float> best_distractor_scores;  // best score of each query among distractors
};

// query_descriptors [Q, D], database_descriptors [N, D] (unit vectors), sources [Q] int64:
// the database row each query was made from.
CopyDetectionResult evaluate_copy_detection(const at::Tensor& query_descriptors, const at::Tensor& database_descriptors,
                                            const at::Tensor& sources);

}  // namespace lethe::eval
