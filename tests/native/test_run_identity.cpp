// A run's identity (unlearn/run_identity.hpp): the data hash sees every image, mask, caption
// and context; differences are named for people, briefly.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "io/hash.hpp"
#include "unlearn/example_set.hpp"
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

std::string tensor_sha256(const at::Tensor& tensor) {
  io::Sha256 hash;
  hash.update(tensor);
  return hash.hex();
}

// The reference: dtype name, rank, sizes and the contiguous bytes in one piece, as the
// hash was defined before it streamed slabs of rows.
std::string whole_bytes_sha256(const at::Tensor& tensor) {
  io::Sha256 hash;
  hash.update(std::string_view(c10::toString(tensor.scalar_type())));
  const uint64_t dims = static_cast<uint64_t>(tensor.dim());
  hash.update(&dims, sizeof(dims));
  for (int64_t size : tensor.sizes()) hash.update(&size, sizeof(size));
  const at::Tensor bytes = tensor.contiguous();
  hash.update(bytes.data_ptr(), static_cast<size_t>(bytes.numel()) * bytes.element_size());
  return hash.hex();
}

}  // namespace

TEST(RunIdentity, TensorsHashAsTheirContiguousBytesHoweverStored) {
  const at::Tensor values = at::arange(2 * 3 * 5, at::kFloat).reshape({2, 3, 5});
  EXPECT_EQ(tensor_sha256(values), whole_bytes_sha256(values));
  EXPECT_EQ(tensor_sha256(values.transpose(1, 2)), whole_bytes_sha256(values.transpose(1, 2).contiguous()));
  EXPECT_EQ(tensor_sha256(at::scalar_tensor(2.5)), whole_bytes_sha256(at::scalar_tensor(2.5)));
  // Rows of 16 MiB: one row per slab, five slabs, from a 16 MiB expanded view.
  const at::Tensor wide = at::arange(int64_t{1} << 22, at::kFloat).view({1, int64_t{1} << 22}).expand({5, int64_t{1} << 22});
  EXPECT_EQ(tensor_sha256(wide), whole_bytes_sha256(wide.contiguous()));
  // A set's all-ones masks hash as the materialised ones they replace (old identities hold).
  const at::Tensor masks = unlearn::full_masks(70000, 28, 28);
  EXPECT_EQ(masks.storage().nbytes(), 28u * 28u * sizeof(float));
  EXPECT_EQ(tensor_sha256(masks), whole_bytes_sha256(at::ones({70000, 1, 28, 28})));
  EXPECT_NE(tensor_sha256(values), tensor_sha256(values.to(at::kDouble)));
}

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
