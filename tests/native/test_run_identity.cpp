// A run's identity (unlearn/run_identity.hpp): the data hash sees every image, mask, caption
// and context; differences are named for people, briefly.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "unlearn/run.hpp"
#include "unlearn/run_identity.hpp"

using namespace lethe;

namespace {

unlearn::TaskData small_data() {
  unlearn::TaskData data;
  data.forget.name = "forget set";
  data.forget.images = at::arange(2 * 1 * 4 * 4, at::kFloat).reshape({2, 1, 4, 4});
  data.forget.masks = at::ones({2, 1, 4, 4});
  data.forget.captions = {"artist a", "artist b"};
  return data;
}

}  // namespace

TEST(RunIdentity, TheDataHashSeesImagesMasksAndCaptions) {
  const std::string base = unlearn::task_data_sha256(small_data());
  EXPECT_EQ(base, unlearn::task_data_sha256(small_data()));
  EXPECT_EQ(base.size(), 64u);
  auto image = small_data();
  image.forget.images[1][0][2][3] = 0.5;
  auto mask = small_data();
  mask.forget.masks[0][0][0][0] = 0.0;
  auto caption = small_data();
  caption.forget.captions[1] = "artist c";
  auto moved = small_data();  // the same caption text split differently is different data
  moved.forget.captions = {"artist ab", ""};
  auto role = small_data();   // the same images as retain instead of forget
  role.retain = role.forget;
  role.forget = unlearn::ExampleSet{};
  for (const auto* other : {&image, &mask, &caption, &moved, &role}) EXPECT_NE(base, unlearn::task_data_sha256(*other));
}

TEST(RunIdentity, DifferencesAreNamedBriefly) {
  unlearn::RunConfig config;
  const nlohmann::json a = unlearn::run_identity(config, "m1", "d1", {{"lambda", 0.5}});
  EXPECT_TRUE(unlearn::identity_differences(a, a).empty());
  unlearn::RunConfig changed = config;
  changed.trainer.steps = 8;
  changed.timesteps.t_min = 300;
  changed.trainer.checkpoint_seconds = 5;  // when state is saved is not part of what is trained
  const nlohmann::json b = unlearn::run_identity(changed, "m2", "d2", {{"lambda", 0.3}});
  const auto differences = unlearn::identity_differences(a, b);
  const std::vector<std::string> expected = {"data (images, captions or masks)", "model weights",
                                             "objective_config.lambda (was 0.5, now 0.3)",
                                             "timesteps.t_min (was 0, now 300)", "trainer.steps (was 160, now 8)"};
  EXPECT_EQ(differences, expected);
  const auto limited = unlearn::identity_differences(a, b, 2);
  EXPECT_EQ(limited.size(), 3u);
  EXPECT_EQ(limited.back(), "3 more");
}

TEST(RunIdentity, LoraTargetsCountOnlyForLoraRuns) {
  unlearn::RunConfig full, lora;
  lora.trainable = "lora";
  EXPECT_FALSE(unlearn::run_identity(full, "m", "d", {}).contains("lora"));
  const auto with = unlearn::run_identity(lora, "m", "d", {});
  lora.lora.rank = 8;
  EXPECT_FALSE(unlearn::identity_differences(with, unlearn::run_identity(lora, "m", "d", {})).empty());
}
