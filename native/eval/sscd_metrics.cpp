#include "eval/sscd_metrics.hpp"

#include <cmath>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::eval {

at::Tensor similarity_matrix(const at::Tensor& generated, const at::Tensor& references) {
  check(generated.dim() == 2 && references.dim() == 2 && generated.size(1) == references.size(1),
        "similarity: descriptors must be [G, D] and [R, D], got ", generated.sizes(), " and ", references.sizes());
  return generated.to(at::kFloat).matmul(references.to(at::kFloat).t());  // [G, R]
}

at::Tensor best_match(const at::Tensor& similarity, const at::Tensor& assigned) {
  check(similarity.dim() == 2 && assigned.dim() == 1 && assigned.size(0) == similarity.size(0),
        "best_match: similarity [G, R] and assigned [G] required");
  at::Tensor any = std::get<0>(similarity.max(1));                                  // [G]
  at::Tensor index = assigned.to(at::kLong).clamp_min(0).unsqueeze(1);
  at::Tensor own = similarity.gather(1, index).squeeze(1);                          // [G]
  return at::where(assigned.to(at::kLong) >= 0, own, any);
}

double memorization_rate(const at::Tensor& best_scores, double threshold) {
  if (best_scores.numel() == 0) return 0.0;
  return (best_scores >= threshold).to(at::kDouble).mean().item<double>();
}

double sscd_progress(double evaluated, double original, double retrained) {
  const double span = original - retrained;
  check(std::abs(span) > 1e-9, "sscd_progress: the original and retrained models score the same (", original,
        "); progress is undefined");
  return (evaluated - retrained) / span;
}

MarginResult sscd_margin(const at::Tensor& generated, const at::Tensor& forget, const at::Tensor& assigned,
                         const at::Tensor& retain, int64_t neighbours) {
  check(neighbours >= 1 && retain.size(0) >= 1, "sscd_margin: need retain descriptors and neighbours >= 1");
  const int64_t m = std::min(neighbours, retain.size(0));
  at::Tensor forget_to_retain = similarity_matrix(forget, retain);                  // [F, R]
  at::Tensor nearest = std::get<1>(forget_to_retain.topk(m, 1));                    // [F, M]
  at::Tensor own = similarity_matrix(generated, forget).gather(1, assigned.to(at::kLong).unsqueeze(1)).squeeze(1);  // [G]
  at::Tensor to_retain = similarity_matrix(generated, retain);                      // [G, R]
  at::Tensor candidates = nearest.index_select(0, assigned.to(at::kLong));          // [G, M]
  at::Tensor best_retain = std::get<0>(to_retain.gather(1, candidates).max(1));     // [G]
  at::Tensor margin = own - best_retain;
  return {margin.mean().item<double>(), (margin < 0).to(at::kDouble).mean().item<double>()};
}

double sscd_direction(const at::Tensor& before, const at::Tensor& after, const at::Tensor& forget,
                      const at::Tensor& assigned) {
  check(before.sizes() == after.sizes(), "sscd_direction: before and after must match, got ", before.sizes(), " and ",
        after.sizes());
  at::Tensor delta = after.to(at::kFloat) - before.to(at::kFloat);                  // [G, D]
  at::Tensor length = delta.norm(2, {1});                                           // [G]
  at::Tensor target = forget.to(at::kFloat).index_select(0, assigned.to(at::kLong)); // [G, D]
  at::Tensor cosine = (target * delta).sum(1) / length.clamp_min(1e-6);
  return at::where(length < 1e-6, at::zeros_like(cosine), cosine).mean().item<double>();
}

double percentile(const at::Tensor& values, double q) {
  check(values.numel() > 0, "percentile of an empty set");
  at::Tensor sorted = std::get<0>(values.flatten().to(at::kDouble).sort());
  const double position = q / 100.0 * (sorted.numel() - 1);
  const int64_t low = static_cast<int64_t>(std::floor(position));
  const int64_t high = std::min<int64_t>(low + 1, sorted.numel() - 1);
  const double fraction = position - low;
  return sorted[low].item<double>() * (1 - fraction) + sorted[high].item<double>() * fraction;
}

}  // namespace lethe::eval
