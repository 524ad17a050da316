// The UNet config's shape table and detection round trip (the Python tests check detection
// against diffusers-built SD1.5/SD2.1 tables).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "io/json_config.hpp"
#include "models/unet.hpp"
#include "models/unet_config.hpp"
#include "test_helpers.hpp"

using namespace lethe::models;
using lethe::testing::expect_error;

TEST(UNetConfig, Sd15ShapeTableHasTheCheckpointKeysAndShapes) {
  ShapeTable table = unet_shape_table(UNetConfig::sd15());
  EXPECT_EQ(table.size(), 686u);
  EXPECT_EQ(table.at("input_blocks.0.0.weight"), (std::vector<int64_t>{320, 4, 3, 3}));
  EXPECT_EQ(table.at("time_embed.2.weight"), (std::vector<int64_t>{1280, 1280}));
  EXPECT_EQ(table.at("input_blocks.3.0.op.weight"), (std::vector<int64_t>{320, 320, 3, 3}));
  EXPECT_EQ(table.at("input_blocks.4.0.skip_connection.weight"), (std::vector<int64_t>{640, 320, 1, 1}));
  EXPECT_EQ(table.at("middle_block.1.transformer_blocks.0.ff.net.0.proj.weight"), (std::vector<int64_t>{10240, 1280}));
  EXPECT_EQ(table.at("output_blocks.2.1.conv.weight"), (std::vector<int64_t>{1280, 1280, 3, 3}));
  EXPECT_EQ(table.at("output_blocks.5.2.conv.weight"), (std::vector<int64_t>{1280, 1280, 3, 3}));
  EXPECT_EQ(table.at("out.2.weight"), (std::vector<int64_t>{4, 320, 3, 3}));
}

TEST(UNetConfig, DetectionRoundTripsEveryConfigShape) {
  UNetConfig tiny;
  tiny.in_channels = 1;
  tiny.out_channels = 1;
  tiny.model_channels = 32;
  tiny.channel_mult = {1, 2, 2};
  tiny.attention_levels = {2};
  tiny.num_res_blocks = 1;
  tiny.context_dim = 48;
  tiny.num_heads = -1;
  tiny.num_head_channels = 16;
  tiny.norm_groups = 8;
  tiny.use_scale_shift_norm = true;
  UNetHints hints{std::nullopt, 16, 8};
  // Segmind Vega's layout: SDXL's with depths 1 and 2 and a middle block of one res block.
  UNetConfig vega = UNetConfig::sdxl();
  vega.level_transformer_depth = {0, 1, 2};
  vega.transformer_depth = 2;
  vega.middle_attention = false;
  vega.middle_res_blocks = 1;
  const std::vector<std::pair<UNetConfig, UNetHints>> cases = {
      {UNetConfig::sd15(), {}}, {UNetConfig::sdxl(), {}}, {UNetConfig::sd21(), {}}, {vega, {}}, {tiny, hints}};
  for (const auto& [config, use] : cases) {
    UNetConfig detected = detect_unet_config(unet_shape_table(config), use, "table");
    EXPECT_EQ(lethe::io::to_json(detected), lethe::io::to_json(config));
  }
}

TEST(UNetConfig, WrongShapeNamesTheKeyAndBothShapes) {
  ShapeTable table = unet_shape_table(UNetConfig::sd15());
  table["output_blocks.8.0.in_layers.2.weight"] = {640, 1281, 3, 3};
  expect_error([&] { detect_unet_config(table, {}, "sd15.safetensors"); },
               {"sd15.safetensors", "output_blocks.8.0.in_layers.2.weight", "[640, 1281, 3, 3]", "expected [640, 960, 3, 3]"});
}

TEST(UNetConfig, NonUnetTableIsRejected) {
  expect_error([&] { detect_unet_config({{"encoder.weight", {3, 3}}}, {}, "vae.safetensors"); },
               {"vae.safetensors", "missing key 'input_blocks.0.0.weight'"});
}

TEST(UNetConfig, InvalidConfigIsRejectedWithTheField) {
  UNetConfig config;
  config.attention_levels = {7};
  expect_error([&] { config.validate("unet"); }, {"unet.attention_levels", "level 7"});
  config = UNetConfig{};
  config.norm_groups = 7;
  expect_error([&] { config.validate("unet"); }, {"norm_groups = 7"});
  config = UNetConfig::sdxl();
  config.middle_res_blocks = 1;
  expect_error([&] { config.validate("unet"); }, {"unet.middle_res_blocks", "1 without middle attention", "got 1"});
  config = UNetConfig::sdxl();
  config.level_transformer_depth = {1, 2, 10};
  expect_error([&] { config.validate("unet"); }, {"unet.level_transformer_depth[0]", "expected 0", "got 1"});
  config.level_transformer_depth = {0, 2};
  expect_error([&] { config.validate("unet"); }, {"unet.level_transformer_depth", "one entry per level (3)", "got 2"});
}

TEST(UNet, ForwardShapesAndZeroInitialOutput) {
  UNetConfig config;
  config.in_channels = 1;
  config.out_channels = 1;
  config.model_channels = 16;
  config.channel_mult = {1, 2};
  config.attention_levels = {1};
  config.num_res_blocks = 1;
  config.context_dim = 8;
  config.num_heads = 2;
  config.norm_groups = 8;
  UNet unet(config);
  unet->initialize(0);
  at::Tensor x = at::randn({3, 1, 8, 8});
  at::Tensor out = unet->forward(x, at::tensor({1, 2, 3}, at::kLong), at::randn({3, 4, 8}));
  EXPECT_EQ(out.sizes(), x.sizes());
  EXPECT_EQ(out.abs().max().item<float>(), 0.0f);  // LDM zero-initialises the output conv
  expect_error([&] { unet->forward(at::randn({1, 1, 7, 8}), at::tensor({1}, at::kLong), at::randn({1, 4, 8})); },
               {"divisible by 2", "7x8"});
  expect_error([&] { unet->forward(at::randn({1, 1, 8, 8}), at::tensor({1}, at::kLong), at::randn({1, 4, 9})); },
               {"context", "[1, L, 8]"});
}

TEST(UNet, InitializationIsReproducibleFromTheSeed) {
  UNetConfig config = UNetConfig::sd15();
  config.model_channels = 32;
  config.context_dim = 16;
  UNet a(config), b(config), c(config);
  a->initialize(7);
  b->initialize(7);
  c->initialize(8);
  auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  bool any_different = false;
  for (const auto& item : pa) {
    EXPECT_TRUE(at::equal(item.value(), pb[item.key()])) << item.key();
    any_different = any_different || !at::equal(item.value(), pc[item.key()]);
  }
  EXPECT_TRUE(any_different);
}
