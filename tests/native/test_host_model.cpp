// Host models behind callbacks (models/host_model.hpp): the schedule from a host's table, LoRA
// adapters attached to and removed from the host, the prediction with and without them, and
// the full-weight deltas, against closed forms on a host made of plain C++ callbacks (a
// per-pixel linear map over channels).
#include <memory>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "diffusion/schedule.hpp"
#include "models/host_model.hpp"
#include "test_helpers.hpp"

using namespace lethe;
using lethe::testing::expect_error;

namespace {

// eps = W x (+ scale * up down x with the adapters), per pixel, for x [B, C, H, W].
struct LinearHost {
  at::Tensor weight = at::randn({3, 3}, at::TensorOptions().dtype(at::kFloat));
  std::vector<models::HostAdapter> attached;
  int attach_calls = 0;

  models::HostModel model() {
    models::HostModel host;
    host.description = "test host";
    host.describe = [this] {
      models::HostModelInfo info;
      info.weights = {{"diffusion_model.mix.weight", {3, 3}}, {"diffusion_model.norm.weight", {3}}};
      info.schedule_table = diffusion::NoiseSchedule(diffusion::ScheduleConfig::stable_diffusion()).alphas_cumprod();
      return info;
    };
    host.predict = [this](const at::Tensor& x, const at::Tensor&, const at::Tensor&, bool adapters) {
      at::Tensor w = weight;
      if (adapters)
        for (const auto& a : attached) w = w + a.scale * at::matmul(a.up, a.down);
      return at::einsum("oc,bchw->bohw", {w, x});
    };
    host.attach = [this](const std::vector<models::HostAdapter>& adapters, bool) {
      attached = adapters;
      ++attach_calls;
    };
    return host;
  }
};

}  // namespace

TEST(HostModel, ScheduleFromTheHostTableEqualsTheClosedForm) {
  const diffusion::NoiseSchedule sd(diffusion::ScheduleConfig::stable_diffusion());
  const auto table = diffusion::NoiseSchedule::from_alphas_cumprod(sd.alphas_cumprod());
  EXPECT_EQ(table.num_timesteps(), 1000);
  EXPECT_EQ(table.config().prediction_type, "epsilon");
  EXPECT_TRUE(at::allclose(table.betas(), sd.betas(), 1e-4, 1e-7));
  at::Tensor x0 = at::randn({4, 2, 3, 3}), noise = at::randn({4, 2, 3, 3});
  at::Tensor t = at::tensor({0, 10, 500, 999}, at::kLong);
  EXPECT_TRUE(at::allclose(table.add_noise(x0, noise, t), sd.add_noise(x0, noise, t)));
  expect_error([] { diffusion::NoiseSchedule::from_alphas_cumprod(at::ones({2, 2})); }, {"alphas_cumprod [T]"});
}

TEST(HostModel, FlowScheduleFromTheHostSigmasEqualsTheClosedForm) {
  // SD3's table: s = shift u / (1 + (shift - 1) u), u = (k + 1) / T, shift 3 (ComfyUI's ModelSamplingDiscreteFlow).
  at::Tensor u = at::arange(1, 1001, at::kDouble) / 1000.0;
  at::Tensor sigmas = (3.0 * u / (1.0 + 2.0 * u)).to(at::kFloat);
  const auto flow = diffusion::NoiseSchedule::from_flow_sigmas(sigmas);
  EXPECT_EQ(flow.num_timesteps(), 1000);
  EXPECT_EQ(flow.config().prediction_type, "flow");
  EXPECT_TRUE(flow.is_flow());
  at::Tensor x0 = at::randn({4, 2, 3, 3}), eps = at::randn({4, 2, 3, 3});
  at::Tensor t = at::tensor({0, 10, 500, 999}, at::kLong);
  at::Tensor s = sigmas.index_select(0, t).view({4, 1, 1, 1});
  at::Tensor x_t = flow.add_noise(x0, eps, t);
  EXPECT_TRUE(at::allclose(x_t, (1 - s) * x0 + s * eps, 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(flow.training_target(x0, eps, t), eps - x0));  // the velocity d x_t / d s
  auto [x0_hat, eps_hat] = flow.split_prediction(x_t, eps - x0, t);
  EXPECT_TRUE(at::allclose(x0_hat, x0, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(eps_hat, eps, 1e-5, 1e-5));
  // eps = (x_t - (1 - s) x0) / s divides float32 rounding by s = 0.003 at t = 0: about 3e-4 there.
  EXPECT_TRUE(at::allclose(flow.eps_from_x0(x_t, x0, t), eps, 1e-4, 1e-3));
  // The variance-preserving equivalent abar = SNR / (1 + SNR) with the flow's SNR (1 - s)^2 / s^2.
  at::Tensor snr = ((1 - sigmas) / sigmas).pow(2).to(at::kDouble);
  EXPECT_TRUE(at::allclose(flow.alphas_cumprod().to(at::kDouble), snr / (1 + snr), 1e-6, 1e-7));
  EXPECT_TRUE(at::allclose(flow.noise_levels(), sigmas.to(at::kDouble)));  // ComfyUI's sigma of a flow model is s
  const diffusion::NoiseSchedule sd(diffusion::ScheduleConfig::stable_diffusion());
  at::Tensor abar = sd.alphas_cumprod().to(at::kDouble);
  EXPECT_TRUE(at::allclose(sd.noise_levels(), ((1 - abar) / abar).sqrt()));
  EXPECT_NEAR(sd.noise_levels()[-1].item<double>(), 14.6146, 1e-3);  // ComfyUI's sigma_max for SD1.x
  expect_error([&] { flow.eps_from_v(x_t, x0, t); }, {"v-prediction relations on a flow-matching schedule"});
  expect_error([] { diffusion::NoiseSchedule::from_flow_sigmas(at::tensor({0.5f, 0.4f})); },
               {"expected flow sigmas increasing inside (0, 1], got 0.5 .. 0.4"});
  diffusion::ScheduleConfig config;
  config.prediction_type = "flow";
  expect_error([&] { config.validate("model.schedule"); }, {"model.schedule.prediction_type: flow needs a flow-matching"});
  config.prediction_type = "edm";
  expect_error([&] { config.validate("model.schedule"); },
               {"model.schedule.prediction_type: unknown prediction type 'edm'; known: epsilon, v_prediction, sample, flow"});
}

TEST(HostModel, InfoBuildsTheScheduleOfTheHostsParameterisation) {
  LinearHost host;
  models::HostModel model = host.model();
  auto describe = model.describe;
  model.describe = [describe] {
    models::HostModelInfo info = describe();
    info.prediction_type = "flow";
    info.schedule_table = at::linspace(0.001, 1.0, 1000, at::kFloat);
    return info;
  };
  EXPECT_EQ(model.info().schedule.config().prediction_type, "flow");
  EXPECT_EQ(models::HostDenoiser(model, nullptr).prediction_type(), "flow");
  models::HostModel v = host.model();
  v.describe = [describe] {
    models::HostModelInfo info = describe();
    info.prediction_type = "v_prediction";
    return info;
  };
  EXPECT_EQ(v.info().schedule.config().prediction_type, "v_prediction");
  models::HostModel wrong = host.model();
  wrong.describe = [describe] {
    models::HostModelInfo info = describe();
    info.prediction_type = "flow";  // with a decreasing alphas_cumprod table
    return info;
  };
  expect_error([&] { wrong.info(); }, {"test host: expected the flow sigmas increasing inside (0, 1]"});
}

TEST(HostModel, LoraAttachesTrainsAndDetaches) {
  LinearHost host;
  models::HostModel model = host.model();
  models::LoraConfig config;
  config.rank = 2;
  config.alpha = 4.0;
  config.targets = {"mix"};
  {
    models::HostLora lora(model, config, 7);
    ASSERT_EQ(lora.size(), 1u);  // the 1-D weight is not adapted
    ASSERT_EQ(host.attached.size(), 1u);
    EXPECT_EQ(host.attached[0].key, "diffusion_model.mix.weight");
    EXPECT_DOUBLE_EQ(host.attached[0].scale, 2.0);
    EXPECT_TRUE(host.attached[0].up.abs().max().item<float>() == 0.0f);  // starts as a no-op

    models::HostDenoiser trained(model, &lora), reference(model, nullptr);
    EXPECT_EQ(trained.trainable_parameters().size(), 2u);
    EXPECT_TRUE(reference.trainable_parameters().empty());
    {
      at::NoGradGuard no_grad;
      host.attached[0].up.normal_();
    }
    at::Tensor x = at::randn({2, 3, 4, 4}), t = at::zeros({2}, at::kLong), c = at::zeros({2, 1, 1});
    // Gradient of 0.5 |eps|^2 w.r.t. up, against the closed form scale * (sum_p eps x^T) down^T.
    at::Tensor eps = trained.predict(x, t, c);
    (0.5 * eps.pow(2).sum()).backward();
    const auto& a = host.attached[0];
    at::Tensor outer = at::einsum("bohw,bchw->oc", {eps.detach(), x});  // [out, in]
    EXPECT_TRUE(at::allclose(a.up.grad(), a.scale * at::matmul(outer, a.down.detach().t()), 1e-4, 1e-5));
    EXPECT_TRUE(at::allclose(reference.predict(x, t, c), at::einsum("oc,bchw->bohw", {host.weight, x}), 1e-5, 1e-6));

    auto tensors = lora.tensors();
    ASSERT_EQ(tensors.size(), 3u);
    EXPECT_EQ(tensors.count("diffusion_model.mix.lora_down.weight"), 1u);
    EXPECT_FLOAT_EQ(tensors.at("diffusion_model.mix.alpha").item<float>(), 4.0f);
    auto deltas = models::lora_weight_deltas(tensors, "test");
    EXPECT_TRUE(at::allclose(deltas.at("diffusion_model.mix.weight"), 2.0 * at::matmul(a.up.detach(), a.down.detach())));
  }
  EXPECT_TRUE(host.attached.empty());  // removed when the adapters go away
  EXPECT_EQ(host.attach_calls, 2);
}

TEST(HostModel, ErrorsNameTheHostAndWhatWasExpected) {
  LinearHost host;
  models::HostModel model = host.model();
  models::LoraConfig config;
  config.targets = {"attn1.to_q"};
  expect_error([&] { models::HostLora lora(model, config, 0); },
               {"no linear layer of test host matches the targets attn1.to_q (1 linear weights, e.g. diffusion_model.mix)"});
  models::HostModel wrong = host.model();
  wrong.predict = [](const at::Tensor& x, const at::Tensor&, const at::Tensor&, bool) { return x.sum(1); };
  models::HostDenoiser denoiser(wrong, nullptr);
  expect_error([&] { denoiser.predict(at::zeros({1, 3, 2, 2}), at::zeros({1}, at::kLong), at::zeros({1, 1, 1})); },
               {"test host: expected a prediction shaped like x_t [1, 3, 2, 2], got [1, 2, 2]"});
  expect_error([] { models::lora_weight_deltas({{"a.lora_down.weight", at::zeros({2, 3})}}, "file x"); },
               {"file x: 'a.lora_down.weight' has no matching 'a.lora_up.weight'"});
}

TEST(HostModel, AutoLoraTargetsFollowTheFamilyOfTheWeights) {
  using Weights = std::vector<std::pair<std::string, std::vector<int64_t>>>;
  const Weights flux = {{"diffusion_model.double_blocks.0.img_attn.qkv.weight", {96, 32}},
                        {"diffusion_model.single_blocks.0.linear1.weight", {160, 32}}};
  const Weights sd3 = {{"diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", {96, 32}}};
  const Weights unet = {{"diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight", {32, 32}}};
  EXPECT_EQ(models::family_lora_targets(flux).front(), "img_attn.qkv");
  EXPECT_EQ(models::family_lora_targets(flux).back(), "linear2");
  EXPECT_EQ(models::family_lora_targets(sd3), (std::vector<std::string>{"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"}));
  EXPECT_EQ(models::family_lora_targets(unet), models::LoraConfig{}.targets);

  // "auto" adapts the host's family defaults: here the UNet's attn1.to_q (a "mix" layer is not one).
  LinearHost host;
  models::HostModel model = host.model();
  auto describe = model.describe;
  model.describe = [describe] {
    models::HostModelInfo info = describe();
    info.weights.push_back({"diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight", {3, 3}});
    return info;
  };
  models::LoraConfig config;
  config.targets = {models::kFamilyLoraTargets};
  models::HostLora lora(model, config, 0);
  ASSERT_EQ(lora.size(), 1u);
  EXPECT_EQ(host.attached[0].key, "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight");
}
