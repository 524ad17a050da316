// AdamW (decoupled weight decay, Loshchilov & Hutter) as one fused ATen call per step
// (at::_fused_adamw_, the kernel behind torch.optim.AdamW(fused=True)). libtorch's
// torch::optim::AdamW runs about ten small ops per parameter tensor; on the bench UNet (a few
// hundred tensors, 1.4 M weights) their dispatch cost was a tenth of a training step
// (docs/performance.md). The update is torch.optim.AdamW's; tests/native/test_adamw.cpp holds
// it to torch::optim::AdamW. The trainer's optimizer and the variational f-divergence's critic
// both use it, and save and restore its state the same way, so a resumed run continues with
// the same moments and step count.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lethe::unlearn {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct AdamWOptions {
  double learning_rate = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

class AdamW {
 public:
  // `parameters`: fp32 leaf tensors that require grad, all on one device.
  AdamW(NamedTensors parameters, AdamWOptions options);

  void set_learning_rate(double rate) { options_.learning_rate = rate; }
  // Drops every gradient (the next backward allocates them afresh).
  void zero_grad();
  // One update of every parameter that has a gradient; a parameter gets its moments at its
  // first gradient, as in torch.optim.AdamW.
  void step();
  // Optimizer steps taken (0 before the first).
  int64_t steps() const { return steps_; }

  // Adds "<prefix>exp_avg/<name>", "<prefix>exp_avg_sq/<name>" and "<prefix>step/<name>" (its
  // own step count, [1]) for every parameter with moments to `out`; returns steps().
  int64_t save(const std::string& prefix, std::map<std::string, at::Tensor>& out) const;
  // Restores moments saved so: `find` returns the tensor of a name, or an undefined tensor
  // when it was not saved (that parameter starts without moments). Moments move to each
  // parameter's device.
  void load(const std::string& prefix, const std::function<at::Tensor(const std::string&)>& find, int64_t steps);

 private:
  struct Moments {
    at::Tensor exp_avg, exp_avg_sq, step;  // step: a float scalar, as the fused kernel reads it
  };
  NamedTensors parameters_;
  AdamWOptions options_;
  std::vector<Moments> moments_;  // per parameter; undefined tensors until its first gradient
  int64_t steps_ = 0;
};

}  // namespace lethe::unlearn
