// Copies that share their source's weights (DiffusionModel::frozen_copy(Weights::shared)): the
// frozen reference and a LoRA run's base use the input model's storage, and nothing they do
// changes the input: gradient flags are their own, a LoRA merge replaces the adapted weights
// instead of adding into them, and a whole LoRA run leaves the input bitwise as it was.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "models/diffusion_model.hpp"
#include "models/layers.hpp"
#include "models/lora.hpp"
#include "test_helpers.hpp"
#include "unlearn/example_set.hpp"
#include "unlearn/run.hpp"

using namespace lethe;
using Weights = models::DiffusionModel::Weights;

namespace {

// Non-zero weights everywhere: LDM's zero-initialised proj_out would give the transformer
// blocks' adapters no gradient.
std::shared_ptr<models::DiffusionModel> perturbed_tiny_model() {
  models::UNet unet = lethe::testing::perturbed_unet(lethe::testing::tiny_unet_config(), 4, 0.05);
  return std::make_shared<models::DiffusionModel>(unet, models::TokenEncoder{nullptr}, diffusion::ScheduleConfig{});
}

// Deep copies of every weight, to compare against afterwards.
std::map<std::string, at::Tensor> snapshot(const models::DiffusionModel& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [key, tensor] : model.weights()) out[key] = tensor.clone();
  return out;
}

void expect_unchanged(const models::DiffusionModel& model, const std::map<std::string, at::Tensor>& before) {
  const auto now = model.weights();
  ASSERT_EQ(now.size(), before.size());
  for (const auto& [key, tensor] : before) EXPECT_TRUE(at::equal(now.at(key), tensor)) << key;
}

}  // namespace

TEST(SharedCopy, UsesTheSourceStorageWithGradientFlagsOfItsOwn) {
  auto source = perturbed_tiny_model();
  source->set_requires_grad(true);
  auto shared = source->frozen_copy(Weights::shared);
  auto copied = source->frozen_copy(Weights::copied);
  const auto mine = source->unet()->named_parameters();
  const auto theirs = shared->unet()->named_parameters();
  const auto separate = copied->unet()->named_parameters();
  ASSERT_EQ(mine.size(), theirs.size());
  for (const auto& item : mine) {
    const at::Tensor& other = theirs[item.key()];
    EXPECT_EQ(other.data_ptr(), item.value().data_ptr()) << item.key();
    EXPECT_NE(separate[item.key()].data_ptr(), item.value().data_ptr()) << item.key();
    EXPECT_TRUE(at::equal(separate[item.key()], item.value())) << item.key();
    EXPECT_FALSE(other.requires_grad()) << item.key();
    EXPECT_TRUE(item.value().requires_grad()) << item.key();
  }
  // Same outputs as the source (same weights, same modules).
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Tensor x = at::randn({2, 1, 8, 8}, g), context = at::randn({2, 3, 8}, g);
  at::Tensor t = at::tensor({10, 700}, at::kLong);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(shared->predict(x, t, context), source->predict(x, t, context)));
}

TEST(SharedCopy, AMergedLoraReplacesTheAdaptedWeightsAndLeavesTheSourceAlone) {
  auto source = perturbed_tiny_model();
  const auto before = snapshot(*source);
  auto copy = source->frozen_copy(Weights::shared);
  models::LoraConfig config;
  config.targets = {"attn2.to_k", "attn2.to_v"};
  models::LoraSet lora(*copy->unet(), config, 7);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(9);
  {
    at::NoGradGuard no_grad;
    for (auto& [name, tensor] : lora.parameters())
      if (name.find("lora_up") != std::string::npos) tensor.copy_(at::randn(tensor.sizes(), g));
  }
  // Expected: each adapted weight + scale * up @ down (the same formula), the rest the source's.
  std::map<std::string, at::Tensor> expected;
  for (const auto& item : copy->unet()->named_modules()) {
    const auto* linear = dynamic_cast<const models::LinearLayerImpl*>(item.value().get());
    if (linear == nullptr || !linear->adapter) continue;
    const auto& adapter = *linear->adapter;
    expected["diffusion_model." + item.key() + ".weight"] =
        linear->weight.detach() + models::low_rank_delta(adapter.up, adapter.down, adapter.scale).detach();
  }
  ASSERT_FALSE(expected.empty());
  lora.merge();
  expect_unchanged(*source, before);
  const auto merged = copy->weights();
  for (const auto& [key, tensor] : before) {
    if (expected.count(key)) {
      EXPECT_TRUE(at::equal(merged.at(key), expected.at(key))) << key;
      EXPECT_FALSE(at::equal(merged.at(key), tensor)) << key;
    } else {
      EXPECT_EQ(merged.at(key).data_ptr(), source->weights().at(key).data_ptr()) << key;
    }
  }
}

TEST(SharedCopy, ALoraRunLeavesItsInputModelBitwiseUnchanged) {
  lethe::testing::TempDir dir;
  auto source = perturbed_tiny_model();
  const auto before = snapshot(*source);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(11);
  unlearn::TaskData data;
  for (unlearn::ExampleSet* set : {&data.forget, &data.retain}) {
    set->name = set == &data.forget ? "forget set" : "retain set";
    set->images = at::rand({8, 1, 8, 8}, g) * 2 - 1;
    set->masks = unlearn::full_masks(8, 8, 8);
    set->conditioning = at::randn({8, 3, 8}, g);
  }
  unlearn::RunConfig config;
  config.objective = "siss";
  config.trainable = "lora";
  config.trainer.steps = 3;
  config.trainer.batch_size = 4;
  config.trainer.retain_caption_dropout = 0.0;
  config.trainer.optimizer.learning_rate = 1e-2;
  config.precision = "fp32";
  config.output = (dir / "run").string();
  const unlearn::RunResult result = unlearn::run_unlearning(config, {}, source, &data);
  expect_unchanged(*source, before);
  // The run's model is the input with the trained adapters merged: its adapted weights moved.
  int64_t moved = 0;
  for (const auto& [key, tensor] : result.model->weights()) moved += at::equal(tensor, before.at(key)) ? 0 : 1;
  EXPECT_GT(moved, 0);
}
