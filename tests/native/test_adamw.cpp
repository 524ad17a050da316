// The fused AdamW against libtorch's torch::optim::AdamW (the reference: torch.optim.AdamW's
// update, one small op at a time) and its saved state continuing a run bitwise; the global
// gradient norm (unlearn/objective.hpp) against a double-precision sum and clipping against
// torch::nn::utils::clip_grad_norm_.
#include <cmath>
#include <map>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include "unlearn/adamw.hpp"
#include "unlearn/objective.hpp"

using namespace lethe;

namespace {

// Three parameters of different shapes; the last one gets no gradient in some steps.
unlearn::NamedTensors make_parameters(uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  unlearn::NamedTensors out;
  for (const auto& [name, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"conv.weight", {8, 4, 3, 3}}, {"conv.bias", {8}}, {"proj.weight", {16, 32}}})
    out.emplace_back(name, at::randn(shape, g).requires_grad_(true));
  return out;
}

unlearn::NamedTensors clone(const unlearn::NamedTensors& parameters) {
  unlearn::NamedTensors out;
  for (const auto& [name, tensor] : parameters) out.emplace_back(name, tensor.detach().clone().requires_grad_(true));
  return out;
}

// Gradients of step `step` (deterministic), the last parameter's only on even steps.
void set_gradients(const unlearn::NamedTensors& parameters, int64_t step) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(100 + step);
  for (size_t i = 0; i < parameters.size(); ++i) {
    at::Tensor p = parameters[i].second;
    if (i + 1 == parameters.size() && step % 2 == 1) {
      p.mutable_grad().reset();
      continue;
    }
    p.mutable_grad() = at::randn(p.sizes(), g) * (0.1 * (i + 1));
  }
}

std::vector<at::Tensor> tensors_of(const unlearn::NamedTensors& parameters) {
  std::vector<at::Tensor> out;
  for (const auto& [name, tensor] : parameters) out.push_back(tensor);
  return out;
}

constexpr unlearn::AdamWOptions kOptions{
    .learning_rate = 3e-2, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.05};

}  // namespace

TEST(AdamW, MatchesLibtorchsAdamWOverStepsWithAndWithoutGradients) {
  const unlearn::NamedTensors fused = make_parameters(1), reference = clone(fused);
  unlearn::AdamW adam(fused, kOptions);
  torch::optim::AdamW libtorch(tensors_of(reference), torch::optim::AdamWOptions(kOptions.learning_rate)
                                                          .betas({kOptions.beta1, kOptions.beta2})
                                                          .eps(kOptions.eps)
                                                          .weight_decay(kOptions.weight_decay));
  for (int64_t step = 0; step < 8; ++step) {
    const double rate = kOptions.learning_rate * (1.0 - 0.1 * static_cast<double>(step));  // a changing rate
    adam.set_learning_rate(rate);
    for (auto& group : libtorch.param_groups()) group.options().set_lr(rate);
    set_gradients(fused, step);
    set_gradients(reference, step);
    adam.step();
    libtorch.step();
    for (size_t i = 0; i < fused.size(); ++i)
      EXPECT_TRUE(at::allclose(fused[i].second, reference[i].second, /*rtol=*/1e-6, /*atol=*/1e-7))
          << fused[i].first << " after step " << step << ": max difference "
          << (fused[i].second - reference[i].second).abs().max().item<double>();
  }
  EXPECT_EQ(adam.steps(), 8);
  // The moments too (the last parameter's were made at its first gradient, step 0).
  std::map<std::string, at::Tensor> saved;
  adam.save("adam/", saved);
  auto& state = libtorch.state();
  for (size_t i = 0; i < fused.size(); ++i) {
    const auto& moments = static_cast<torch::optim::AdamWParamState&>(
        *state.at(reference[i].second.unsafeGetTensorImpl()));
    const at::Tensor exp_avg = saved.at("adam/exp_avg/" + fused[i].first);
    const at::Tensor exp_avg_sq = saved.at("adam/exp_avg_sq/" + fused[i].first);
    EXPECT_TRUE(at::allclose(exp_avg, moments.exp_avg(), 1e-5, 1e-8))
        << fused[i].first << ": " << (exp_avg - moments.exp_avg()).abs().max().item<double>();
    EXPECT_TRUE(at::allclose(exp_avg_sq, moments.exp_avg_sq(), 1e-5, 1e-10))
        << fused[i].first << ": " << (exp_avg_sq - moments.exp_avg_sq()).abs().max().item<double>();
    EXPECT_EQ(saved.at("adam/step/" + fused[i].first).item<double>(), static_cast<double>(moments.step()));
  }
}

TEST(AdamW, TheSavedStateContinuesTheRunBitwise) {
  const unlearn::NamedTensors straight = make_parameters(2), resumed = clone(straight);
  unlearn::AdamW a(straight, kOptions);
  for (int64_t step = 0; step < 6; ++step) {
    set_gradients(straight, step);
    a.step();
  }
  // The same three steps, saved and loaded into a fresh optimizer, then the last three.
  std::map<std::string, at::Tensor> saved;
  {
    unlearn::AdamW first(resumed, kOptions);
    for (int64_t step = 0; step < 3; ++step) {
      set_gradients(resumed, step);
      first.step();
    }
    EXPECT_EQ(first.save("adam/", saved), 3);
  }
  unlearn::AdamW second(resumed, kOptions);
  second.load("adam/", [&](const std::string& name) { return saved.count(name) ? saved.at(name) : at::Tensor(); }, 3);
  for (int64_t step = 3; step < 6; ++step) {
    set_gradients(resumed, step);
    second.step();
  }
  for (size_t i = 0; i < straight.size(); ++i) EXPECT_TRUE(at::equal(straight[i].second, resumed[i].second));
}

TEST(AdamW, GlobalNormAndClippingMatchTheirReferences) {
  const unlearn::NamedTensors parameters = make_parameters(3), reference = clone(parameters);
  set_gradients(parameters, 1);  // the last parameter has no gradient: it counts as zero
  set_gradients(reference, 1);
  double squares = 0;
  for (const auto& [name, tensor] : parameters)
    if (tensor.grad().defined()) squares += tensor.grad().to(at::kDouble).pow(2).sum().item<double>();
  const double norm = unlearn::global_grad_norm(tensors_of(parameters));
  EXPECT_NEAR(norm, std::sqrt(squares), 1e-12 * std::sqrt(squares));

  // Below the norm: scaled as clip_grad_norm_ scales; above it: untouched.
  unlearn::clip_gradients(tensors_of(parameters), norm, 0.5 * norm);
  torch::nn::utils::clip_grad_norm_(tensors_of(reference), 0.5 * norm);
  for (size_t i = 0; i + 1 < parameters.size(); ++i)
    EXPECT_TRUE(at::allclose(parameters[i].second.grad(), reference[i].second.grad(), 1e-6, 0));
  const at::Tensor before = parameters[0].second.grad().clone();
  unlearn::clip_gradients(tensors_of(parameters), 0.5 * norm, norm);
  EXPECT_TRUE(at::equal(parameters[0].second.grad(), before));
}
