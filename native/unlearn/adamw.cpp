#include "unlearn/adamw.hpp"

#include <cmath>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::unlearn {

AdamW::AdamW(NamedTensors parameters, AdamWOptions options)
    : parameters_(std::move(parameters)), options_(options), moments_(parameters_.size()) {
  for (const auto& [name, tensor] : parameters_)
    check(tensor.scalar_type() == at::kFloat, "AdamW: parameter '", name, "' is ", tensor.scalar_type(),
          ", expected float32 master weights");
}

void AdamW::zero_grad() {
  for (const auto& [name, tensor] : parameters_) tensor.mutable_grad().reset();
}

void AdamW::step() {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, step_counts;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const at::Tensor& parameter = parameters_[i].second;
    if (!parameter.grad().defined()) continue;
    Moments& m = moments_[i];
    if (!m.exp_avg.defined()) {
      m.exp_avg = at::zeros_like(parameter, at::MemoryFormat::Preserve);
      m.exp_avg_sq = at::zeros_like(parameter, at::MemoryFormat::Preserve);
      m.step = at::zeros({}, parameter.options());
    }
    params.push_back(parameter.detach());
    grads.push_back(parameter.grad());
    exp_avgs.push_back(m.exp_avg);
    exp_avg_sqs.push_back(m.exp_avg_sq);
    step_counts.push_back(m.step);
  }
  ++steps_;
  if (params.empty()) return;
  at::_foreach_add_(step_counts, 1.0);
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, step_counts, options_.learning_rate,
                    options_.beta1, options_.beta2, options_.weight_decay, options_.eps, /*amsgrad=*/false,
                    /*maximize=*/false);
}

int64_t AdamW::save(const std::string& prefix, std::map<std::string, at::Tensor>& out) const {
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (!moments_[i].exp_avg.defined()) continue;
    out[prefix + "exp_avg/" + parameters_[i].first] = moments_[i].exp_avg;
    out[prefix + "exp_avg_sq/" + parameters_[i].first] = moments_[i].exp_avg_sq;
    out[prefix + "step/" + parameters_[i].first] = moments_[i].step.reshape({1});
  }
  return steps_;
}

void AdamW::load(const std::string& prefix, const std::function<at::Tensor(const std::string&)>& find, int64_t steps) {
  at::NoGradGuard no_grad;
  steps_ = steps;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& [name, tensor] = parameters_[i];
    at::Tensor exp_avg = find(prefix + "exp_avg/" + name);
    if (!exp_avg.defined()) {
      moments_[i] = {};
      continue;
    }
    at::Tensor exp_avg_sq = find(prefix + "exp_avg_sq/" + name);
    check(exp_avg_sq.defined(), "AdamW state: '", prefix, "exp_avg/", name, "' is saved but '", prefix, "exp_avg_sq/",
          name, "' is missing");
    for (const at::Tensor* moment : {&exp_avg, &exp_avg_sq})
      check(moment->sizes() == tensor.sizes(), "AdamW state of parameter '", name, "': expected shape ",
            tensor.sizes(), ", got ", moment->sizes());
    // The parameter's own step count (it may have missed steps without a gradient); state
    // saved before counts were kept per parameter has the optimizer's only.
    at::Tensor step = find(prefix + "step/" + name);
    check(!step.defined() || step.numel() == 1, "AdamW state of parameter '", name, "': expected one step count, got ",
          step.sizes());
    moments_[i] = {exp_avg.to(tensor.options(), /*non_blocking=*/false, /*copy=*/true),
                   exp_avg_sq.to(tensor.options(), /*non_blocking=*/false, /*copy=*/true),
                   step.defined() ? step.reshape({}).to(tensor.options(), false, true)
                                  : at::full({}, static_cast<double>(steps), tensor.options())};
  }
}

}  // namespace lethe::unlearn
