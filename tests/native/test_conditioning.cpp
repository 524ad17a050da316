// models::Conditioning (context with the pooled output and SDXL sizes), complete_sdxl_sizes
// against ComfyUI's defaults, and a DiffusionModel over an SDXL-layout UNet: y built from the
// conditioning as sdxl_vector makes it, required with a message, and retain caption dropout
// swapping the pooled output while each row keeps its own sizes.
#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "models/conditioning.hpp"
#include "models/diffusion_model.hpp"
#include "models/sdxl_vector.hpp"
#include "test_helpers.hpp"
#include "unlearn/objective.hpp"

namespace lethe {
namespace {

using testing::expect_error;

models::Conditioning random_conditioning(int64_t rows, int64_t pooled_width, uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  return {at::randn({rows, 3, 8}, g), at::randn({rows, pooled_width}, g), at::rand({rows, 6}, g) * 1024};
}

TEST(Conditioning, RowOperationsActOnEveryPart) {
  const models::Conditioning c = random_conditioning(4, 5, 1);
  c.validate("c");
  const at::Tensor index = at::tensor({2, 0, 2}, at::kLong);
  const models::Conditioning picked = c.rows(index);
  EXPECT_TRUE(at::equal(picked.context, c.context.index_select(0, index)));
  EXPECT_TRUE(at::equal(picked.pooled, c.pooled.index_select(0, index)));
  EXPECT_TRUE(at::equal(picked.sizes, c.sizes.index_select(0, index)));
  // One row is broadcast, whatever the index.
  const models::Conditioning one = c.first(1);
  const models::Conditioning many = one.rows(index);
  EXPECT_EQ(many.size(), 3);
  EXPECT_TRUE(at::equal(many.pooled, c.pooled.narrow(0, 0, 1).expand({3, 5})));
  // where: rows marked true come from the other (one row), the rest stay.
  const models::Conditioning other = random_conditioning(1, 5, 2);
  const at::Tensor take = at::tensor({1, 0, 1, 0}, at::kLong).to(at::kBool);
  const models::Conditioning mixed = c.where(take, other);
  for (int64_t i = 0; i < 4; ++i) {
    const bool taken = i % 2 == 0;
    EXPECT_TRUE(at::equal(mixed.context[i], taken ? other.context[0] : c.context[i]));
    EXPECT_TRUE(at::equal(mixed.pooled[i], taken ? other.pooled[0] : c.pooled[i]));
    EXPECT_TRUE(at::equal(mixed.sizes[i], taken ? other.sizes[0] : c.sizes[i]));
  }
  // cat and equal.
  const models::Conditioning joined = models::cat({c.first(2), c.rows(at::tensor({2, 3}, at::kLong))});
  EXPECT_TRUE(joined.equal(c));
  EXPECT_FALSE(joined.equal(random_conditioning(4, 5, 3)));
  EXPECT_FALSE(models::Conditioning(c.context).equal(c));
  expect_error([&] { models::cat({c, models::Conditioning(c.context)}); }, {"with and without a pooled output"});
  expect_error([&] { models::Conditioning(c.context, c.pooled, {}).validate("node 7 input 'conditioning'"); },
               {"node 7 input 'conditioning'", "go together"});
  expect_error([&] { models::Conditioning(c.context, c.pooled.narrow(0, 0, 2), c.sizes).validate("w"); },
               {"w", "pooled output [4, P]", "[2, 5]"});
}

// ComfyUI: samplers give width/height = the latent's x 8 unless the prompt does; SDXL.encode_adm
// then defaults crops to 0 and the target to width/height.
TEST(CompleteSdxlSizes, FillsComfyUIDefaults) {
  const double nan = std::nan("");
  const std::vector<double> rows = {nan,  nan, nan, nan, nan, nan,   // nothing given
                                    1024, 768, 16,  8,   nan, nan,   // sizes and crops
                                    nan,  nan, nan, nan, 512, 256};  // target only
  const std::vector<float> completed = {64,   96,  0, 0, 64,   96,   //
                                        1024, 768, 16, 8, 1024, 768,  //
                                        64,   96,  0, 0, 512,  256};
  const at::Tensor given = at::tensor(rows, at::kDouble).view({3, 6});
  const at::Tensor expected = at::tensor(completed, at::kFloat).view({3, 6});
  EXPECT_TRUE(at::equal(models::complete_sdxl_sizes(given, 64, 96), expected));
  expect_error([&] { models::complete_sdxl_sizes(at::zeros({2, 5}), 8, 8); }, {"SDXL sizes", "[B, 6]", "[2, 5]"});
}

models::UNetConfig tiny_sdxl_config(int64_t pooled_width) {
  models::UNetConfig config;
  config.model_channels = 16;
  config.channel_mult = {1, 2};
  config.num_res_blocks = 1;
  config.attention_levels = {1};
  config.level_transformer_depth = {0, 2};
  config.transformer_depth = 1;
  config.context_dim = 8;
  config.num_head_channels = 8;
  config.use_linear_in_transformer = true;
  config.norm_groups = 8;
  config.adm_in_channels = pooled_width + models::kSdxlSizeCount * models::kSdxlSizeEmbeddingDim;
  return config;
}

TEST(SdxlDiffusionModel, BuildsYFromPooledOutputAndSizes) {
  models::UNet unet = lethe::testing::perturbed_unet(tiny_sdxl_config(5), 7, 0.05);
  models::DiffusionModel model(unet, models::TokenEncoder{nullptr}, diffusion::ScheduleConfig::stable_diffusion());
  const models::Conditioning c = random_conditioning(2, 5, 4);
  const at::Tensor x = at::randn({2, 4, 8, 8}), t = at::tensor({10, 700}, at::kLong);
  const at::Tensor y = models::sdxl_vector(c.pooled, c.sizes);  // [2, 5 + 1536]
  EXPECT_TRUE(at::equal(model.predict(x, t, c), unet->forward(x, t, c.context, y)));
  // Each part reaches the output: another pooled output or another size changes it.
  models::Conditioning moved = c;
  moved.sizes = c.sizes + at::tensor({0, 0, 0, 0, 0, 64}, at::kFloat);
  EXPECT_FALSE(at::allclose(model.predict(x, t, moved), model.predict(x, t, c)));
  // Gradients flow into label_emb through y.
  model.predict(x, t, c).pow(2).sum().backward();
  bool reached = false;
  for (const auto& item : unet->named_parameters())
    if (item.key() == "label_emb.0.0.weight") reached = item.value().grad().abs().sum().item<double>() > 0;
  EXPECT_TRUE(reached);
  expect_error([&] { model.predict(x, t, models::Conditioning(c.context)); },
               {"SDXL-layout UNet needs each prompt's pooled text embedding", "Lethe Dataset from Latents"});
  const models::Conditioning narrow = random_conditioning(2, 7, 5);
  expect_error([&] { model.predict(x, t, narrow); }, {"takes a 1541-wide y", "7 wide"});
}

// Guided rows on an SDXL-layout UNet: y differs between the groups (each prompt's pooled output),
// so nothing before the cross-attention is shared; predict_groups is the repeated rows' predict.
TEST(SdxlDiffusionModel, GroupsOfConditioningsAreTheRepeatedRows) {
  models::UNet unet = lethe::testing::perturbed_unet(tiny_sdxl_config(5), 7, 0.05);
  models::DiffusionModel model(unet, models::TokenEncoder{nullptr}, diffusion::ScheduleConfig::stable_diffusion());
  const models::Conditioning c = random_conditioning(4, 5, 4);  // two images under two conditionings
  const at::Tensor x = at::randn({2, 4, 8, 8}), t = at::tensor({10, 700}, at::kLong);
  EXPECT_TRUE(at::equal(model.predict_groups(x, t, c, 2), model.predict(x.repeat({2, 1, 1, 1}), t.repeat({2}), c)));
  expect_error([&] { unet->forward_groups(x, t, c.context, 2); }, {"forward_groups", "without label_emb"});
}

// Retain caption dropout over SDXL conditioning: a dropped row takes the empty prompt's context
// and pooled output and keeps its own sizes (they describe the image, not the prompt).
TEST(SdxlCaptionDropout, SwapsThePromptKeepsTheSizes) {
  unlearn::TaskData data;
  data.retain.name = "retain set";
  data.retain.images = at::zeros({200, 1, 4, 4});
  data.retain.masks = at::ones({200, 1, 4, 4});
  data.retain.conditioning = {at::ones({200, 3, 8}), at::ones({200, 5}), at::arange(1200, at::kFloat).view({200, 6})};
  data.retain.empty_conditioning = {at::zeros({1, 3, 8}), at::zeros({1, 5}), at::full({1, 6}, -1.0)};
  data.retain.validate();
  unlearn::ObjectiveContext context;
  context.data = &data;
  context.batch_size = 200;
  context.generator = at::make_generator<at::CPUGeneratorImpl>(6);
  context.reset_streams(6);
  context.retain_caption_dropout = 0.5;
  const unlearn::ExampleBatch batch = context.next_retain();
  const at::Tensor dropped = batch.conditioning.context.eq(0).all(2).all(1);  // [200]
  EXPECT_GT(dropped.sum().item<int64_t>(), 60);
  EXPECT_LT(dropped.sum().item<int64_t>(), 140);
  EXPECT_TRUE(at::equal(batch.conditioning.pooled.eq(0).all(1), dropped));
  // The batcher shuffles rows: each row's sizes are still some row's own (0, 1, ..., 1199 in sixes).
  EXPECT_TRUE(batch.conditioning.sizes.ge(0).all().item<bool>());
  const at::Tensor firsts = batch.conditioning.sizes.select(1, 0);
  EXPECT_TRUE(at::equal(batch.conditioning.sizes, firsts.unsqueeze(1) + at::arange(6, at::kFloat)));
  data.retain.empty_conditioning = at::zeros({1, 3, 8});
  expect_error([&] { data.retain.validate(); }, {"retain set", "empty prompt's pooled output", "5 wide", "none"});
}

}  // namespace
}  // namespace lethe
