// Dynamic loss scaling for fp16 mixed precision (docs/performance.md §Precision, "fp16").
//
// fp16 keeps 10 mantissa bits but only 5 exponent bits: gradients below 2^-24 flush to zero in
// an fp16 backward. Training multiplies the loss by a scale S before the backward (every
// gradient is then S times larger and stays representable) and divides the gradients by S
// before they are used. S starts large; a step whose gradients overflowed (inf or NaN) is
// skipped and S halves; after `growth_interval` good steps in a row S doubles. This is the
// scheme of torch.amp.GradScaler, and the state changes are ATen's own
// (_amp_foreach_non_finite_check_and_unscale_, _amp_update_scale_). S stays a power of two,
// so in fp32 scaling and unscaling are exact: a scaled fp32 backward gives the same bits.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace lethe {

struct LossScalingOptions {
  double initial_scale = 65536.0;  // 2^16, torch.amp.GradScaler's
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;  // good steps in a row before the scale doubles
  // Below this the gradients overflow whatever the scale: fp16 cannot train this model.
  double minimum_scale = 1.0 / 16777216.0;  // 2^-24
};

class LossScaler {
 public:
  // Disabled (scale 1, nothing changes) unless `enabled`: only fp16 needs it.
  explicit LossScaler(bool enabled = false, LossScalingOptions options = {});

  bool enabled() const { return enabled_; }
  double scale() const;
  // The loss to back-propagate: loss * scale (the loss itself when disabled).
  at::Tensor scaled(const at::Tensor& loss) const;
  // Divides the gradients by the scale in place (undefined ones are skipped); true when every
  // one of them is finite. Disabled: only the check.
  bool unscale(const std::vector<at::Tensor>& gradients) const;
  // After a step: `overflowed` halves the scale and restarts the count of good steps; a good
  // step counts, and the scale doubles after growth_interval of them in a row. Throws, changing
  // nothing, when an overflow would take the scale below minimum_scale (`where` names the step).
  void update(bool overflowed, const std::string& where);

  // {"scale", "good_steps"}: saved in checkpoints, so a resume continues with the same scale.
  nlohmann::json state() const;
  void restore(const nlohmann::json& state, const std::string& where);

 private:
  bool enabled_;
  LossScalingOptions options_;
  at::Tensor scale_;       // [1] fp32
  at::Tensor good_steps_;  // [1] int32, ATen's growth tracker
};

}  // namespace lethe
