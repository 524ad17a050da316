#include "eval/fid.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"

namespace lethe::eval {

namespace {

at::Tensor covariance(const at::Tensor& features, const at::Tensor& mean) {
  at::Tensor centred = features - mean.unsqueeze(0);            // [N, D]
  return centred.t().matmul(centred) / (features.size(0) - 1);  // [D, D]
}

}  // namespace

double frechet_distance(const at::Tensor& features_a, const at::Tensor& features_b) {
  check(features_a.dim() == 2 && features_b.dim() == 2 && features_a.size(1) == features_b.size(1),
        "FID: features must be [N, D] and [M, D], got ", features_a.sizes(), " and ", features_b.sizes());
  check(features_a.size(0) >= 2 && features_b.size(0) >= 2, "FID: need at least 2 samples per set");
  at::Tensor a = features_a.to(at::kDouble), b = features_b.to(at::kDouble);
  at::Tensor mean_a = a.mean(0), mean_b = b.mean(0);
  at::Tensor cov_a = covariance(a, mean_a), cov_b = covariance(b, mean_b);
  // tr sqrt(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)), a symmetric PSD matrix.
  auto [eigenvalues, eigenvectors] = at::linalg_eigh(cov_a);
  at::Tensor root_a = eigenvectors.matmul(at::diag(eigenvalues.clamp_min(0).sqrt())).matmul(eigenvectors.t());
  at::Tensor middle = root_a.matmul(cov_b).matmul(root_a);
  middle = 0.5 * (middle + middle.t());
  const double trace_root = at::linalg_eigvalsh(middle).clamp_min(0).sqrt().sum().item<double>();
  const double mean_term = (mean_a - mean_b).pow(2).sum().item<double>();
  return mean_term + cov_a.trace().item<double>() + cov_b.trace().item<double>() - 2.0 * trace_root;
}

double frechet_distance_without(const at::Tensor& features, const at::Tensor& labels, const at::Tensor& real_features,
                                const at::Tensor& real_labels, int64_t excluded) {
  check(labels.dim() == 1 && labels.size(0) == features.size(0) && real_labels.dim() == 1 &&
            real_labels.size(0) == real_features.size(0),
        "FID without a class: expected one label per feature row, got ", labels.sizes(), " labels for ", features.sizes(),
        " and ", real_labels.sizes(), " for ", real_features.sizes());
  auto kept = [excluded](const at::Tensor& rows, const at::Tensor& row_labels) {
    return rows.index_select(0, at::nonzero(row_labels.to(rows.device()) != excluded).squeeze(1));
  };
  return frechet_distance(kept(features, labels), kept(real_features, real_labels));
}

KernelDistance kernel_distance(const at::Tensor& features_a, const at::Tensor& features_b, int64_t subsets,
                               int64_t subset_size, uint64_t seed) {
  check(features_a.dim() == 2 && features_b.dim() == 2 && features_a.size(1) == features_b.size(1),
        "KID: features must be [N, D] and [M, D]");
  const int64_t m = std::min({subset_size, features_a.size(0), features_b.size(0)});
  check(m >= 2 && subsets >= 1, "KID: need subsets >= 1 and at least 2 samples per subset");
  at::Tensor a = features_a.to(at::kDouble), b = features_b.to(at::kDouble);
  const double dimension = static_cast<double>(a.size(1));
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<double> values;
  for (int64_t s = 0; s < subsets; ++s) {
    at::Tensor x = a.index_select(0, at::randperm(a.size(0), generator, at::kLong).narrow(0, 0, m));
    at::Tensor y = b.index_select(0, at::randperm(b.size(0), generator, at::kLong).narrow(0, 0, m));
    auto kernel = [&](const at::Tensor& p, const at::Tensor& q) { return (p.matmul(q.t()) / dimension + 1.0).pow(3); };
    at::Tensor kxx = kernel(x, x), kyy = kernel(y, y), kxy = kernel(x, y);
    const double pairs = static_cast<double>(m) * (m - 1);
    const double mmd = (kxx.sum() - kxx.trace()).item<double>() / pairs + (kyy.sum() - kyy.trace()).item<double>() / pairs -
                       2.0 * kxy.mean().item<double>();
    values.push_back(mmd);
  }
  KernelDistance result;
  result.subsets = subsets;
  result.subset_size = m;
  for (double v : values) result.mean += v / values.size();
  for (double v : values) result.std += (v - result.mean) * (v - result.mean) / values.size();
  result.std = std::sqrt(result.std);
  return result;
}

}  // namespace lethe::eval
