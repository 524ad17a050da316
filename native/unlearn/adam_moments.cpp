#include "unlearn/adam_moments.hpp"

#include <memory>

namespace lethe::unlearn {

int64_t save_adam_moments(torch::optim::AdamW& adam, const NamedTensors& parameters, const std::string& prefix,
                          std::map<std::string, at::Tensor>& out) {
  auto& state = adam.state();
  int64_t steps = 0;
  for (const auto& [name, tensor] : parameters) {
    auto found = state.find(tensor.unsafeGetTensorImpl());
    if (found == state.end()) continue;
    auto& moments = static_cast<torch::optim::AdamWParamState&>(*found->second);
    out[prefix + "exp_avg/" + name] = moments.exp_avg();
    out[prefix + "exp_avg_sq/" + name] = moments.exp_avg_sq();
    steps = moments.step();
  }
  return steps;
}

void load_adam_moments(torch::optim::AdamW& adam, const NamedTensors& parameters, const std::string& prefix,
                       const std::function<at::Tensor(const std::string&)>& find, int64_t steps) {
  auto& state = adam.state();
  for (const auto& [name, tensor] : parameters) {
    at::Tensor exp_avg = find(prefix + "exp_avg/" + name);
    if (!exp_avg.defined()) continue;
    auto moments = std::make_unique<torch::optim::AdamWParamState>();
    moments->step(steps);
    moments->exp_avg(exp_avg.clone().to(tensor.device()));
    moments->exp_avg_sq(find(prefix + "exp_avg_sq/" + name).clone().to(tensor.device()));
    state[tensor.unsafeGetTensorImpl()] = std::move(moments);
  }
}

}  // namespace lethe::unlearn
