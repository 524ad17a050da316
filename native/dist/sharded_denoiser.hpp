// Data parallelism for any denoiser, exact whatever the objective does with its predictions.
//
// Every rank runs the same objective on the same global batch (the same seeded draws, so the
// random state never differs between ranks), but a prediction's forward runs on this rank's
// share of the rows only. The shares are gathered (without gradient), so every rank holds the
// whole prediction [B, ...] with exact values: batch statistics, loss values, a critic's inputs
// and the NaN guard are the same on every rank as in one process. Gradient flows through this
// rank's rows only, so dL/dtheta summed over the ranks (Group::all_reduce_sum, done by the
// trainer) is the one-process gradient up to summation order. docs/distributed.md.
#pragma once

#include "dist/group.hpp"
#include "models/denoiser.hpp"

namespace lethe::dist {

class ShardedDenoiser : public models::Denoiser {
 public:
  // `inner` and `group` must outlive this.
  ShardedDenoiser(models::Denoiser& inner, const Group& group, std::string name);

  // x_t [B, C, H, W], t [B], conditioning of B rows (one row broadcasts) -> [B, C, H, W]: this
  // rank's rows computed (with gradient), the others gathered. B must be >= the ranks.
  at::Tensor predict(const at::Tensor& x_t, const at::Tensor& t, const models::Conditioning& conditioning) override;
  std::string prediction_type() const override { return inner_.prediction_type(); }
  std::vector<at::Tensor> trainable_parameters() override { return inner_.trainable_parameters(); }

 private:
  models::Denoiser& inner_;
  const Group& group_;
  std::string name_;
};

}  // namespace lethe::dist
