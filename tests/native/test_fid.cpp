// FID without the erased class (eval/fid.hpp) against a slow reference: the rows picked one by
// one and the plain Frechet distance of them; and what it is for: changing the erased class's
// samples moves the FID of all classes but not this one.
#include <gtest/gtest.h>

#include <vector>

#include <ATen/ATen.h>

#include "eval/fid.hpp"

namespace lethe::eval {
namespace {

at::Tensor rows_of(const at::Tensor& features, const at::Tensor& labels, int64_t excluded) {
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < features.size(0); ++i)
    if (labels[i].item<int64_t>() != excluded) rows.push_back(features[i]);
  return at::stack(rows);
}

TEST(Fid, WithoutAClassIsTheFidOfTheOtherClassesRows) {
  at::manual_seed(0);
  const at::Tensor labels = at::arange(4, at::kLong).repeat_interleave(12);        // [48]
  const at::Tensor real_labels = at::arange(4, at::kLong).repeat(15);              // [60]
  const at::Tensor features = at::randn({48, 5}) + labels.unsqueeze(1).to(at::kFloat);   // [48, 5]
  const at::Tensor real = at::randn({60, 5}) * 1.3 + real_labels.unsqueeze(1).to(at::kFloat);  // [60, 5]
  const double expected = frechet_distance(rows_of(features, labels, 2), rows_of(real, real_labels, 2));
  EXPECT_DOUBLE_EQ(frechet_distance_without(features, labels, real, real_labels, 2), expected);
  EXPECT_NE(expected, frechet_distance(features, real));

  // The erased class's samples turned into noise far away: FID of all classes rises, the other classes' stays.
  at::Tensor erased = features.clone();
  erased.index_put_({labels == 2}, at::randn({12, 5}) * 4 + 10);
  EXPECT_GT(frechet_distance(erased, real), 2 * frechet_distance(features, real));
  EXPECT_DOUBLE_EQ(frechet_distance_without(erased, labels, real, real_labels, 2), expected);
}

TEST(Fid, WithoutAClassRefusesLabelsThatDoNotMatchTheRows) {
  const at::Tensor features = at::zeros({6, 3});
  try {
    frechet_distance_without(features, at::zeros({5}, at::kLong), features, at::zeros({6}, at::kLong), 1);
    FAIL() << "expected an error";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("one label per feature row"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace lethe::eval
