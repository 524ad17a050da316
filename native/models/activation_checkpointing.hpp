// Activation checkpointing: run a block without keeping its activations and recompute
// them during backward (PyTorch's reentrant torch.utils.checkpoint, in C++). Parameter
// gradients are accumulated into `.grad` by the recomputation's own backward, so use it
// with Tensor::backward / torch::autograd::backward, not torch::autograd::grad.
#pragma once

#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lethe::models {

using CheckpointedFn = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

// Returns fn(inputs) computed under no-grad, attached to the autograd graph through a node
// that recomputes fn with grad enabled when gradients arrive.
at::Tensor checkpointed(CheckpointedFn fn, const std::vector<at::Tensor>& inputs);

}  // namespace lethe::models
