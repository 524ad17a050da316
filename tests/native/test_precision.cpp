// Compute precision (core/precision.hpp): the setting's names and errors, what auto picks,
// scopes that restore what they changed, and the bf16 and fp16 forwards of the native model
// against its fp32 forward (values and gradients).
#include <functional>
#include <string>
#include <tuple>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/cpu/Utils.h>
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include "core/precision.hpp"
#include "models/diffusion_model.hpp"
#include "models/group_norm_kernel.hpp"
#include "models/layers.hpp"
#include "models/lora.hpp"
#include "test_helpers.hpp"
#include "unlearn/run.hpp"
#include "unlearn/run_identity.hpp"

using namespace lethe;
using lethe::testing::expect_error;

namespace {

std::shared_ptr<models::DiffusionModel> noisy_tiny_model() {
  models::UNet unet(lethe::testing::tiny_unet_config());
  unet->initialize(3);
  at::NoGradGuard no_grad;  // the zero-initialised output layers too: a model with non-zero output and gradients
  at::manual_seed(4);
  for (auto& p : unet->parameters()) p.add_(0.1 * at::randn_like(p));
  return std::make_shared<models::DiffusionModel>(unet, models::TokenEncoder{nullptr}, diffusion::ScheduleConfig{});
}

double norm_relative_error(const at::Tensor& got, const at::Tensor& expected) {
  return (got - expected).norm().item<double>() / expected.norm().item<double>();
}

// The model's output on fixed inputs (in the calling thread's precision) and the gradient of
// mean(output^2) over its parameters, flattened into one vector.
std::pair<at::Tensor, at::Tensor> output_and_gradient(models::DiffusionModel& model) {
  at::manual_seed(1);
  at::Tensor x = at::randn({4, 1, 8, 8});
  at::Tensor t = at::tensor({10, 200, 500, 900}, at::kLong);
  at::Tensor context = at::randn({4, 3, 8});
  for (auto& p : model.unet()->parameters()) p.mutable_grad() = at::Tensor();
  at::Tensor out = model.predict(x, t, context);
  out.pow(2).mean().backward();
  std::vector<at::Tensor> grads;
  for (auto& p : model.unet()->parameters()) grads.push_back(p.grad().flatten());
  return {out.detach(), at::cat(grads)};
}

}  // namespace

TEST(Precision, NamesParseAndBadOnesNameTheFieldAndTheChoices) {
  EXPECT_EQ(precision_names(), (std::vector<std::string>{"auto", "fp32", "bf16", "fp16"}));
  for (const std::string& name : precision_names()) EXPECT_EQ(precision_name(parse_precision(name, "x")), name);
  expect_error([] { parse_precision("float16", "node 4 (LetheUnlearn) precision"); },
               {"node 4 (LetheUnlearn) precision", "auto, fp32, bf16, fp16", "'float16'"});
  EXPECT_EQ(compute_dtype(Precision::fp32), at::kFloat);
  EXPECT_EQ(compute_dtype(Precision::bf16), at::kBFloat16);
  EXPECT_EQ(compute_dtype(Precision::fp16), at::kHalf);
  unlearn::RunConfig config;
  EXPECT_EQ(config.precision, kDefaultPrecision);
  config.precision = "half";
  expect_error([&] { config.validate("unlearning run"); }, {"unlearning run.precision", "'half'"});
}

TEST(Precision, AutoPicksBf16OnCudaAndOnCpusWithBf16Hardware) {
  EXPECT_EQ(resolve_precision(Precision::fp32, c10::Device(c10::kCUDA, 0)).precision, Precision::fp32);
  EXPECT_EQ(resolve_precision(Precision::bf16).precision, Precision::bf16);
  EXPECT_EQ(resolve_precision(Precision::fp16).precision, Precision::fp16);
  // A CUDA device: bf16 with bf16 tensor cores (compute capability 8.0 on), fp16 with loss
  // scaling without (Volta, Turing); this CPU-only process cannot tell, and says bf16.
  EXPECT_EQ(resolve_precision(Precision::automatic, c10::Device(c10::kCUDA, 0)).precision, Precision::bf16);
  EXPECT_EQ(resolve_cuda_precision(true).precision, Precision::bf16);
  const ResolvedPrecision old_gpu = resolve_cuda_precision(false);
  EXPECT_EQ(old_gpu.precision, Precision::fp16);
  EXPECT_NE(old_gpu.reason.find("loss scaling"), std::string::npos) << old_gpu.reason;
  EXPECT_NE(old_gpu.reason.find("8.0"), std::string::npos) << old_gpu.reason;
  const auto capabilities = at::cpu::get_cpu_capabilities();
  auto has = [&](const char* flag) { return capabilities.count(flag) && capabilities.at(flag).toBool(); };
  const ResolvedPrecision cpu = resolve_precision(Precision::automatic);
  // The flag that decided is named: AMX tiles first, then AVX-512 bf16; without either both.
  const bool amx = has("amx_bf16"), avx512 = has("avx512_bf16");
  EXPECT_EQ(cpu.precision, amx || avx512 ? Precision::bf16 : Precision::fp32) << cpu.reason;
  EXPECT_EQ(cpu.reason.find("amx_bf16") != std::string::npos, amx || !avx512) << cpu.reason;
  EXPECT_EQ(cpu.reason.find("avx512_bf16") != std::string::npos, !amx) << cpu.reason;
}

TEST(Precision, ScopesNestAndRestoreAutocastAsTheyFoundIt) {
  EXPECT_EQ(current_precision(), Precision::fp32);
  {
    ForwardAutocast off(c10::kCPU);  // fp32: changes nothing
    EXPECT_FALSE(off.active());
    EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
  }
  {
    PrecisionScope bf16(Precision::bf16);
    EXPECT_EQ(current_precision(), Precision::bf16);
    {
      PrecisionScope inner(Precision::fp32);
      EXPECT_EQ(current_precision(), Precision::fp32);
    }
    EXPECT_EQ(current_precision(), Precision::bf16);
    {
      ForwardAutocast on(c10::kCPU);
      EXPECT_TRUE(on.active());
      EXPECT_TRUE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
      EXPECT_EQ(at::autocast::get_autocast_dtype(c10::DeviceType::CPU), at::kBFloat16);
      EXPECT_EQ(at::mm(at::ones({2, 2}), at::ones({2, 2})).scalar_type(), at::kBFloat16);
    }
    EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
  }
  {
    PrecisionScope fp16(Precision::fp16);
    ForwardAutocast on(c10::kCPU);
    EXPECT_TRUE(on.active());
    EXPECT_EQ(on.dtype(), at::kHalf);
    EXPECT_EQ(at::mm(at::ones({2, 2}), at::ones({2, 2})).scalar_type(), at::kHalf);
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
  EXPECT_EQ(current_precision(), Precision::fp32);
  expect_error([] { PrecisionScope unresolved(Precision::automatic); }, {"resolved precision"});
}

TEST(Precision, Bf16ForwardMatchesFp32WithinBf16RoundingAndGivesFp32Gradients) {
  auto model = noisy_tiny_model();
  const auto [fp32, fp32_grad] = output_and_gradient(*model);
  EXPECT_FALSE(model->unet()->channels_last);  // fp32 stays NCHW
  at::Tensor bf16;
  at::Tensor bf16_grad;
  {
    PrecisionScope scope(Precision::bf16);
    std::tie(bf16, bf16_grad) = output_and_gradient(*model);
    EXPECT_TRUE(model->unet()->channels_last);  // bf16 on a CPU: channels-last, the group norm's backward included
  }
  EXPECT_EQ(bf16.scalar_type(), at::kFloat);  // back in the caller's dtype: losses stay fp32
  EXPECT_EQ(bf16_grad.scalar_type(), at::kFloat);
  EXPECT_FALSE(at::equal(bf16, fp32));         // bf16 was really used
  // bf16 keeps 8 significant bits (relative rounding 2^-9 per value); through a few layers the
  // output drifts by a few times that.
  EXPECT_LT(norm_relative_error(bf16, fp32), 3e-2);
  EXPECT_LT(norm_relative_error(bf16_grad, fp32_grad), 6e-2);
  EXPECT_GT(at::cosine_similarity(bf16_grad, fp32_grad, 0).item<double>(), 0.998);
  for (auto& p : model->unet()->parameters()) EXPECT_EQ(p.scalar_type(), at::kFloat);  // master weights untouched
}

// fp16 (for GPUs without bf16) keeps 11 significant bits (relative rounding 2^-12), 8 times
// finer than bf16, in 5 exponent bits; on a CPU its forward stays NCHW (the channels-last group
// norm has no fp16 form) and sampling uses the model itself.
TEST(Precision, Fp16ForwardMatchesFp32WithinFp16RoundingAndGivesFp32Gradients) {
  auto model = noisy_tiny_model();
  const auto [fp32, fp32_grad] = output_and_gradient(*model);
  at::Tensor fp16, fp16_grad;
  {
    PrecisionScope scope(Precision::fp16);
    std::tie(fp16, fp16_grad) = output_and_gradient(*model);
    EXPECT_FALSE(model->unet()->channels_last);
    EXPECT_EQ(model->sampling_copy(Precision::fp16), nullptr);
  }
  EXPECT_EQ(fp16.scalar_type(), at::kFloat);
  EXPECT_EQ(fp16_grad.scalar_type(), at::kFloat);
  EXPECT_FALSE(at::equal(fp16, fp32));
  EXPECT_LT(norm_relative_error(fp16, fp32), 4e-3);
  EXPECT_LT(norm_relative_error(fp16_grad, fp32_grad), 8e-3);
  for (auto& p : model->unet()->parameters()) EXPECT_EQ(p.scalar_type(), at::kFloat);
}

TEST(Precision, Bf16SamplingCopyIsTheModelInBf16ChannelsLastWithItsAdaptersMerged) {
  auto model = noisy_tiny_model();
  at::manual_seed(1);
  const at::Tensor x = at::randn({4, 1, 8, 8});
  const at::Tensor t = at::tensor({10, 200, 500, 900}, at::kLong);
  const at::Tensor context = at::randn({4, 3, 8});
  at::Tensor plain;
  {
    at::NoGradGuard no_grad;
    plain = model->predict(x, t, context);
  }
  // Adapters on attention and on a 3x3 conv, with non-zero up weights: they change the output.
  models::LoraConfig lora;
  lora.targets = {"attn2.to_k", "attn2.to_out.0", "in_layers.2"};
  models::LoraSet adapters(*model->unet(), lora, 5);
  {
    at::NoGradGuard no_grad;
    for (auto& [name, tensor] : adapters.parameters()) tensor.normal_(0.0, 0.3);
  }
  at::Tensor adapted;
  {
    at::NoGradGuard no_grad;
    adapted = model->predict(x, t, context);
  }
  ASSERT_GT(norm_relative_error(adapted, plain), 0.2);

  EXPECT_EQ(model->sampling_copy(Precision::fp32), nullptr);  // fp32 samples with the model itself
  const auto copy = model->sampling_copy(Precision::bf16);
  ASSERT_NE(copy, nullptr);
  auto& unet = static_cast<models::DiffusionModel&>(*copy).unet();
  for (const auto& parameter : unet->parameters()) {
    EXPECT_EQ(parameter.scalar_type(), at::kBFloat16);
    EXPECT_FALSE(parameter.requires_grad());
    if (parameter.dim() == 4) EXPECT_TRUE(parameter.is_contiguous(at::MemoryFormat::ChannelsLast));
  }
  for (const auto& parameter : model->unet()->parameters()) EXPECT_EQ(parameter.scalar_type(), at::kFloat);
  at::Tensor got, autocast;
  {
    c10::InferenceMode inference;
    PrecisionScope scope(Precision::bf16);
    got = copy->predict(x, t, context);
    autocast = model->predict(x, t, context);
  }
  EXPECT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_TRUE(got.is_contiguous());
  EXPECT_FALSE(at::equal(got, adapted));
  EXPECT_LT(norm_relative_error(got, adapted), 3e-2);     // bf16 rounding of the adapted model
  EXPECT_LT(norm_relative_error(got, autocast), 3e-2);    // and of its autocast forward
}

// fp32 under inference mode (sampling, evaluation) runs channels-last through Lethe's group
// norm; with autograd it stays NCHW on libtorch's group norm. The reference: the NCHW forward.
TEST(Precision, Fp32InferenceRunsChannelsLastAndMatchesTheNchwForwardToRounding) {
  auto model = noisy_tiny_model();
  at::manual_seed(2);
  const at::Tensor x = at::randn({4, 1, 8, 8});
  const at::Tensor t = at::tensor({10, 200, 500, 900}, at::kLong);
  const at::Tensor context = at::randn({4, 3, 8});
  at::Tensor nchw, inference, with_grad;
  {
    at::NoGradGuard no_grad;  // no autograd, but not inference mode: the NCHW path
    nchw = model->predict(x, t, context);
    EXPECT_FALSE(model->unet()->channels_last);
  }
  {
    c10::InferenceMode inference_mode;
    inference = model->predict(x, t, context);
    EXPECT_TRUE(model->unet()->channels_last);
  }
  with_grad = model->predict(x, t, context);
  EXPECT_FALSE(model->unet()->channels_last);
  EXPECT_TRUE(with_grad.requires_grad());
  EXPECT_LT(norm_relative_error(with_grad.detach(), nchw), 1e-5);
  EXPECT_EQ(inference.scalar_type(), at::kFloat);
  EXPECT_TRUE(inference.is_contiguous());
  EXPECT_LT(norm_relative_error(inference, nchw), 1e-5);  // fp32 rounding of another summation order
}

// The UNet's input conv in a bf16 channels-last run on a CPU (one input channel, as the bench
// model's) computes with a zero second channel on x and on the weight: the reference is the plain
// conv, with the same values and gradients bit for bit in bf16 (sampling copies, autocast); in
// fp32 (where the UNet keeps the plain conv) to rounding: at batch 1 libtorch's plain conv takes
// another kernel with another summation order.
TEST(Precision, OneChannelConvWithAZeroChannelGivesThePlainConvsValuesAndGradients) {
  at::manual_seed(5);
  for (const auto dtype : {at::kBFloat16, at::kFloat}) {
    for (const int64_t batch : {1, 3, 16}) {
      models::Conv2dLayer conv(1, 8, 3, 1, 1, at::TensorOptions().dtype(dtype));
      at::Generator generator = at::detail::createCPUGenerator(7);
      conv->reset_parameters(generator);
      const at::Tensor x = at::randn({batch, 1, 12, 12}).to(dtype);               // [B, 1, H, W]
      const at::Tensor upstream = at::randn({batch, 8, 12, 12}).to(dtype);        // dL/dy
      auto run = [&](bool zero_channel) {
        for (auto& p : conv->parameters()) p.mutable_grad() = at::Tensor();
        at::Tensor y = zero_channel ? conv->forward_one_channel(x) : conv->forward(x);  // [B, 8, H, W]
        (y * upstream).sum().backward();
        return std::tuple{y.detach(), conv->weight.grad().clone(), conv->bias.grad().clone()};
      };
      const auto [plain, plain_weight, plain_bias] = run(false);
      const auto [padded, padded_weight, padded_bias] = run(true);
      EXPECT_TRUE(padded.is_contiguous(at::MemoryFormat::ChannelsLast));
      EXPECT_EQ(padded_weight.sizes(), plain_weight.sizes());
      if (dtype == at::kBFloat16) {
        EXPECT_TRUE(at::equal(padded, plain)) << "batch " << batch;
        EXPECT_TRUE(at::equal(padded_weight, plain_weight) && at::equal(padded_bias, plain_bias)) << "batch " << batch;
      } else {
        EXPECT_LT(norm_relative_error(padded, plain), 1e-6) << "batch " << batch;
        EXPECT_LT(norm_relative_error(padded_weight, plain_weight), 1e-6) << "batch " << batch;
        EXPECT_LT(norm_relative_error(padded_bias, plain_bias), 1e-6) << "batch " << batch;
      }
    }
  }
  models::Conv2dLayer wide(2, 4, 3, 1, 1, at::TensorOptions());
  expect_error([&] { wide->forward_one_channel(at::zeros({1, 2, 4, 4})); },
               {"one input channel", "[1, 2, 4, 4]"});
}

// Which runs take the zero-channel input conv: the ops a forward calls, recorded through ATen's
// RecordFunction callbacks, include constant_pad_nd (the zero channel) in bf16 on a CPU (autocast
// training and the bf16 sampling copy), and not in fp32 (NCHW training, channels-last inference).
TEST(Precision, TheUNetTakesTheZeroChannelInputConvInBf16RunsOnly) {
  auto model = noisy_tiny_model();
  at::manual_seed(2);
  const at::Tensor x = at::randn({2, 1, 8, 8});
  const at::Tensor t = at::tensor({10, 900}, at::kLong);
  const at::Tensor context = at::randn({2, 3, 8});
  auto pads = [&](const std::function<void()>& forward) {
    static thread_local int64_t seen = 0;
    seen = 0;
    const auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(
        [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
          if (std::string(fn.name()) == "aten::constant_pad_nd") ++seen;
          return nullptr;
        }));
    forward();
    at::removeCallback(handle);
    return seen;
  };
  ASSERT_EQ(model->unet()->config().in_channels, 1);
  EXPECT_EQ(pads([&] { model->predict(x, t, context); }), 0);  // fp32 with autograd: NCHW
  EXPECT_EQ(pads([&] {
              c10::InferenceMode inference;
              model->predict(x, t, context);
            }),
            0);  // fp32 inference: channels-last, the plain conv
  EXPECT_EQ(pads([&] {
              PrecisionScope scope(Precision::bf16);
              model->predict(x, t, context);
            }),
            2);  // bf16 training: x and the weight each get their zero channel
  const auto copy = model->sampling_copy(Precision::bf16);
  EXPECT_EQ(pads([&] {
              c10::InferenceMode inference;
              PrecisionScope scope(Precision::bf16);
              copy->predict(x, t, context);
            }),
            2);  // the bf16 sampling copy
}

// fp32 with autograd inside a ChannelsLastFp32Gradients scope (the prompt attack's) runs
// channels-last through Lethe's group norm and its backward; outside it, NCHW again. The
// reference: the NCHW forward and its gradients.
TEST(Precision, Fp32GradientsRunChannelsLastInTheirScopeAndMatchNchwToRounding) {
  auto model = noisy_tiny_model();
  const auto [nchw, nchw_grad] = output_and_gradient(*model);
  EXPECT_FALSE(model->unet()->channels_last);
  at::Tensor last, last_grad;
  {
    models::ChannelsLastFp32Gradients scope;
    std::tie(last, last_grad) = output_and_gradient(*model);
    EXPECT_TRUE(model->unet()->channels_last);
  }
  const auto [again, again_grad] = output_and_gradient(*model);
  EXPECT_FALSE(model->unet()->channels_last);
  EXPECT_TRUE(at::equal(again, nchw) && at::equal(again_grad, nchw_grad));  // the scope left nothing behind
  EXPECT_FALSE(at::equal(last_grad, nchw_grad));  // the other path really ran
  EXPECT_LT(norm_relative_error(last, nchw), 1e-5);    // fp32 rounding of another summation order
  EXPECT_LT(norm_relative_error(last_grad, nchw_grad), 1e-5);
  for (auto& p : model->unet()->parameters()) EXPECT_TRUE(p.is_contiguous());  // the weights keep their layout
}

TEST(Precision, MixedPrecisionIsAnotherRunButFp32KeepsItsIdentity) {
  unlearn::RunConfig config;
  const nlohmann::json fp32 = unlearn::run_identity(config, "m", "d", {});
  EXPECT_FALSE(fp32.contains("precision"));  // run folders made before the setting still resume
  config.precision = "auto";  // the request is not the identity; what it resolved to is
  EXPECT_EQ(unlearn::run_identity(config, "m", "d", {}, Precision::fp32), fp32);
  const nlohmann::json bf16 = unlearn::run_identity(config, "m", "d", {}, Precision::bf16);
  EXPECT_EQ(bf16.at("precision"), "bf16");
  const auto differences = unlearn::identity_differences(fp32, bf16);
  ASSERT_EQ(differences.size(), 1u);
  EXPECT_NE(differences[0].find("precision"), std::string::npos) << differences[0];
}
