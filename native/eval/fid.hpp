// Frechet distance and kernel inception distance between two feature sets
// (docs/evaluation.md §4). The feature network is pluggable (the bench classifier's pooled
// features by default, any TorchScript feature extractor); name the metric after it.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace lethe::eval {

// FID = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1^1/2 S2 S1^1/2), computed in float64
// with symmetric eigendecompositions (no generic sqrtm). features [N, D].
double frechet_distance(const at::Tensor& features_a, const at::Tensor& features_b);

// The Frechet distance of the rows of both sets whose label is not `excluded`: a concept-erasure
// run's quality on what it should keep (docs/evaluation.md §4). features [N, D] with labels [N],
// real_features [M, D] with real_labels [M] (int64).
double frechet_distance_without(const at::Tensor& features, const at::Tensor& labels, const at::Tensor& real_features,
                                const at::Tensor& real_labels, int64_t excluded);

struct KernelDistance {
  double mean = 0.0;
  double std = 0.0;
  int64_t subsets = 0;
  int64_t subset_size = 0;
};

// Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over
// `subsets` random subsets of `subset_size` rows of each set (drawn with `seed`).
KernelDistance kernel_distance(const at::Tensor& features_a, const at::Tensor& features_b, int64_t subsets = 20,
                               int64_t subset_size = 200, uint64_t seed = 0);

}  // namespace lethe::eval
