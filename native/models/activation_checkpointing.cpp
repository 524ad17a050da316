#include "models/activation_checkpointing.hpp"

#include <memory>
#include <type_traits>

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include "core/error.hpp"

namespace lethe::models {

namespace {

class CheckpointBackward : public torch::autograd::Node {
 public:
  CheckpointBackward(CheckpointedFn fn, std::vector<at::Tensor> inputs)
      : fn_(std::move(fn)), inputs_(std::move(inputs)) {}

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    std::vector<at::Tensor> detached;
    detached.reserve(inputs_.size());
    for (const at::Tensor& input : inputs_) {
      at::Tensor copy = input.detach();
      if (input.requires_grad()) copy.requires_grad_(true);
      detached.push_back(copy);
    }
    at::Tensor output;
    {
      at::AutoGradMode enable(true);
      output = fn_(detached);
    }
    if (output.requires_grad()) torch::autograd::backward({output}, {grads[0]});
    torch::autograd::variable_list result;
    for (const at::Tensor& copy : detached) result.push_back(copy.requires_grad() ? copy.grad() : at::Tensor());
    return result;
  }

  void release_variables() override { inputs_.clear(); }

 private:
  CheckpointedFn fn_;
  std::vector<at::Tensor> inputs_;
};

// The node in the pointer the autograd graph holds: libtorch 2.13 reference-counts nodes
// intrusively (Node derives from c10::intrusive_ptr_target), earlier versions by std::shared_ptr.
template <typename NodeType, typename... Args>
auto make_node(Args&&... args) {
  if constexpr (std::is_base_of_v<c10::intrusive_ptr_target, NodeType>)
    return c10::make_intrusive<NodeType>(std::forward<Args>(args)...);
  else
    return std::make_shared<NodeType>(std::forward<Args>(args)...);
}

}  // namespace

at::Tensor checkpointed(CheckpointedFn fn, const std::vector<at::Tensor>& inputs) {
  at::Tensor output;
  {
    at::NoGradGuard no_grad;
    output = fn(inputs);
  }
  // Always attached: adapter (LoRA) tensors are not module parameters and may be the only
  // trainable tensors; the recomputation in backward finds whatever needs gradients.
  auto node = make_node<CheckpointBackward>(std::move(fn), inputs);
  node->set_next_edges(torch::autograd::collect_next_edges(inputs));
  torch::autograd::set_history(output, node);
  return output;
}

}  // namespace lethe::models
