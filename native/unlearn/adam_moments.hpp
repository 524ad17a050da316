// AdamW's per-parameter state as named tensors, for checkpoints: the trainer's optimizer
// and an objective's own (the variational f-divergence's critic) save and restore it the
// same way, so a resumed run continues with the same moments and step count.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/optim/adamw.h>

namespace lethe::unlearn {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Adds "<prefix>exp_avg/<name>" and "<prefix>exp_avg_sq/<name>" for every parameter with
// state to `out`; returns the step count (0 before the first step).
int64_t save_adam_moments(torch::optim::AdamW& adam, const NamedTensors& parameters, const std::string& prefix,
                          std::map<std::string, at::Tensor>& out);

// Restores moments saved so: `find` returns the tensor of a name, or an undefined tensor
// when it was not saved (that parameter starts without state). Moments move to each
// parameter's device.
void load_adam_moments(torch::optim::AdamW& adam, const NamedTensors& parameters, const std::string& prefix,
                       const std::function<at::Tensor(const std::string&)>& find, int64_t steps);

}  // namespace lethe::unlearn
