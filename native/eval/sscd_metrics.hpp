// SSCD-based unlearning metrics (docs/evaluation.md §2, §3.3), as plain functions on
// descriptors (unit vectors) so every one is checked against hand-computed cases.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>

namespace lethe::eval {

// Cosine similarity matrix of unit descriptors: [G, D] x [R, D] -> [G, R].
at::Tensor similarity_matrix(const at::Tensor& generated, const at::Tensor& references);

// Best score of each generation: against its assigned reference (assigned[g] >= 0) or,
// where assigned[g] < 0, against any reference. similarity [G, R], assigned [G] -> [G].
at::Tensor best_match(const at::Tensor& similarity, const at::Tensor& assigned);

// Fraction of scores at or above the threshold.
double memorization_rate(const at::Tensor& best_scores, double threshold);

// P1 (retrain-anchored progress): (S_u - S_r) / (S_0 - S_r) with S the mean SSCD of the
// probes to their forget image under the unlearned (u), original (0) and retrained (r)
// model. 1 = nothing forgotten, 0 = like the retrained model, < 0 = pushed further.
double sscd_progress(double evaluated, double original, double retrained);

struct MarginResult {
  double mean = 0.0;             // mean of m_k
  double fraction_negative = 0.0;  // fraction of probes with m_k < 0 (genuinely forgotten)
};
// P2 (retain-referenced margin): m_k = cos(x_k, a_k) - max_{r in N_M(a_k)} cos(x_k, r), with
// N_M(a) the M retain images nearest to a in descriptor space.
// generated [G, D], forget [F, D], assigned [G] (index into forget), retain [R, D].
MarginResult sscd_margin(const at::Tensor& generated, const at::Tensor& forget, const at::Tensor& assigned,
                         const at::Tensor& retain, int64_t neighbours = 16);

// docs/evaluation.md §2.2 direction score: mean_k < phi(a_k), (phi(g1_k) - phi(g0_k)) / |phi(g1_k) - phi(g0_k)| >,
// for generations g0 (before) and g1 (after) from the same seeds. Pairs with no change
// (|difference| < 1e-6) count as 0. Lower = moved away from the forget image.
double sscd_direction(const at::Tensor& before, const at::Tensor& after, const at::Tensor& forget,
                      const at::Tensor& assigned);

// Percentile (0..100) of a 1-D tensor, linear interpolation (numpy's default).
double percentile(const at::Tensor& values, double q);

}  // namespace lethe::eval
