// Attention over few keys (models/attention_kernel.hpp) against softmax(q k^T / sqrt(d)) v
// computed in fp64 from the same bf16 values: one rounding to bf16 plus fp32 arithmetic; over
// key counts on both sides of the 16-key blocks, query counts on both sides of the 8-query
// blocks, head widths that are and are not a multiple of 16, strided views; when it applies; the
// UNet's attention layer takes it under inference mode and matches its own libtorch path. The
// kernel runs on CPUs with AVX-512 only: elsewhere its tests skip, and the layer is checked to
// keep libtorch's attention.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "models/attention_kernel.hpp"
#include "models/unet.hpp"
#include "test_helpers.hpp"

using namespace lethe;

namespace {

// q [B, h, Nq, d], k, v [B, h, Nk, d] -> [B, Nq, h d] in fp64.
at::Tensor reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const at::Tensor qd = q.to(at::kDouble), kd = k.to(at::kDouble), vd = v.to(at::kDouble);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  const at::Tensor out = at::softmax(at::matmul(qd, kd.transpose(-1, -2)) * scale, -1).matmul(vd);  // [B, h, Nq, d]
  return out.transpose(1, 2).reshape({q.size(0), q.size(2), q.size(1) * q.size(3)});
}

// Heads split from [B, N, h d] as the UNet's attention does: strided [B, h, N, d] views.
at::Tensor heads_of(const at::Tensor& rows, int64_t heads) {
  return rows.view({rows.size(0), rows.size(1), heads, -1}).transpose(1, 2);
}

struct Case {
  int64_t batch, heads, queries, keys, dim;
};

#define SKIP_WITHOUT_AVX512() \
  if (!models::small_attention_available()) GTEST_SKIP() << "this CPU lacks AVX-512, which the kernel needs"

}  // namespace

TEST(SmallAttention, IsTheFp64ResultRoundedToBf16) {
  const std::vector<Case> cases = {{3, 2, 49, 49, 32}, {2, 2, 49, 6, 32}, {2, 1, 7, 1, 8},  {1, 3, 9, 16, 40},
                                   {2, 2, 8, 17, 64},  {1, 1, 1, 256, 16}, {2, 4, 33, 31, 24}};
  SKIP_WITHOUT_AVX512();
  c10::InferenceMode inference;
  for (const Case& c : cases) {
    // Scores of a few units (scaled by up to 3), as trained attention has, and some much larger.
    const at::Tensor q = heads_of((at::randn({c.batch, c.queries, c.heads * c.dim}) * 3.0).to(at::kBFloat16), c.heads);
    const at::Tensor k = heads_of(at::randn({c.batch, c.keys, c.heads * c.dim}).to(at::kBFloat16), c.heads);
    const at::Tensor v = heads_of((at::randn({c.batch, c.keys, c.heads * c.dim}) + 0.5).to(at::kBFloat16), c.heads);
    ASSERT_TRUE(models::small_attention_applies(q, k, v));
    const at::Tensor got = models::small_attention(q, k, v);
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{c.batch, c.queries, c.heads * c.dim}));
    EXPECT_EQ(got.scalar_type(), at::kBFloat16);
    const at::Tensor expected = reference(q, k, v);
    // One rounding to bf16 (2^-8 relative), fp32 sums of terms up to max |v| (2^-20 of it).
    const at::Tensor error = (got.to(at::kDouble) - expected).abs();
    const at::Tensor bound = expected.abs() * std::ldexp(1.0, -8) + v.abs().max().item<double>() * 1e-6;
    EXPECT_TRUE((error <= bound).all().item<bool>())
        << "keys " << c.keys << " dim " << c.dim << " worst excess " << (error - bound).max().item<double>();
  }
}

TEST(SmallAttention, GivesTheSameBitsWithAnyThreadCount) {
  SKIP_WITHOUT_AVX512();
  c10::InferenceMode inference;
  const int64_t batch = 5, heads = 3, queries = 49, keys = 17, dim = 32;  // 15 (image, head) pairs to share out
  const at::Tensor q = heads_of(at::randn({batch, queries, heads * dim}).to(at::kBFloat16), heads);
  const at::Tensor k = heads_of(at::randn({batch, keys, heads * dim}).to(at::kBFloat16), heads);
  const at::Tensor v = heads_of(at::randn({batch, keys, heads * dim}).to(at::kBFloat16), heads);
  const auto attend_on = [&](int threads) {
    lethe::testing::ScopedThreads scope(threads);
    return models::small_attention(q, k, v);
  };
  EXPECT_TRUE(at::equal(attend_on(1), attend_on(std::max(2, at::get_num_threads()))));
}

TEST(SmallAttention, LargeScoresDoNotOverflow) {
  SKIP_WITHOUT_AVX512();
  c10::InferenceMode inference;
  // Scores near +-2000: e^score overflows fp32 without the maximum subtracted.
  const at::Tensor q = heads_of((at::randn({2, 5, 32}) * 40.0).to(at::kBFloat16), 1);
  const at::Tensor k = heads_of((at::randn({2, 20, 32}) * 40.0).to(at::kBFloat16), 1);
  const at::Tensor v = heads_of(at::randn({2, 20, 32}).to(at::kBFloat16), 1);
  const at::Tensor got = models::small_attention(q, k, v);
  EXPECT_TRUE(at::isfinite(got).all().item<bool>());
  const at::Tensor expected = reference(q, k, v);
  EXPECT_TRUE(at::allclose(got.to(at::kDouble), expected, std::ldexp(1.0, -7), 1e-5));
}

TEST(SmallAttention, AppliesUnderInferenceModeToFewKeysInBf16) {
  const at::Tensor q = at::randn({1, 2, 4, 8}).to(at::kBFloat16);
  const at::Tensor k = at::randn({1, 2, 6, 8}).to(at::kBFloat16);
  EXPECT_FALSE(models::small_attention_applies(q, k, k));  // no inference mode: training and attacks keep libtorch's
  c10::InferenceMode inference;
  if (!models::small_attention_available()) {
    EXPECT_FALSE(models::small_attention_applies(q, k, k));
    lethe::testing::expect_error([&] { models::small_attention(q, k, k); }, {"small_attention", "AVX-512"});
    return;
  }
  EXPECT_TRUE(models::small_attention_applies(q, k, k));
  EXPECT_FALSE(models::small_attention_applies(q.to(at::kFloat), k.to(at::kFloat), k.to(at::kFloat)));
  const at::Tensor long_keys = at::randn({1, 2, models::kSmallAttentionMaxKeys + 1, 8}).to(at::kBFloat16);
  EXPECT_FALSE(models::small_attention_applies(q, long_keys, long_keys));
  const at::Tensor other_batch = at::randn({2, 2, 6, 8}).to(at::kBFloat16);
  EXPECT_FALSE(models::small_attention_applies(q, other_batch, other_batch));
  lethe::testing::expect_error([&] { models::small_attention(q, long_keys, long_keys); },
                               {"small_attention", "Nk <= 256", "[1, 2, 257, 8]"});
}

TEST(SmallAttention, TheAttentionLayerTakesItAndMatchesItsLibtorchPath) {
  models::CrossAttention self_attention(64, 64, 2, 32, at::TensorOptions(at::kFloat));
  models::CrossAttention cross_attention(64, 16, 2, 32, at::TensorOptions(at::kFloat));
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(7);
  for (models::CrossAttention& layer : {std::ref(self_attention), std::ref(cross_attention)})
    for (models::LinearLayer* linear : {&layer->to_q, &layer->to_k, &layer->to_v, &layer->to_out})
      (*linear)->reset_parameters(generator);
  self_attention->to(at::kBFloat16);
  cross_attention->to(at::kBFloat16);
  const at::Tensor x = at::randn({4, 49, 64}).to(at::kBFloat16);
  const at::Tensor context = at::randn({4, 6, 16}).to(at::kBFloat16);
  at::Tensor libtorch_self, libtorch_cross;
  {
    at::NoGradGuard no_grad;  // no inference mode: libtorch's scaled_dot_product_attention
    libtorch_self = self_attention->forward(x, at::Tensor());
    libtorch_cross = cross_attention->forward(x, context);
  }
  c10::InferenceMode inference;
  const at::Tensor self = self_attention->forward(x, at::Tensor()), cross = cross_attention->forward(x, context);
  if (!models::small_attention_available()) {  // libtorch's attention under inference mode too
    EXPECT_TRUE(at::equal(self, libtorch_self));
    EXPECT_TRUE(at::equal(cross, libtorch_cross));
    return;
  }
  ASSERT_EQ(self.sizes(), libtorch_self.sizes());
  ASSERT_EQ(cross.sizes(), libtorch_cross.sizes());
  // Both round the attention to bf16 and then project: a few bf16 steps apart at most.
  EXPECT_TRUE(at::allclose(self.to(at::kFloat), libtorch_self.to(at::kFloat), std::ldexp(1.0, -5), 2e-2));
  EXPECT_TRUE(at::allclose(cross.to(at::kFloat), libtorch_cross.to(at::kFloat), std::ldexp(1.0, -5), 2e-2));
  // And it is this kernel's result, projected.
  const at::Tensor expected = cross_attention->to_out(models::small_attention(heads_of(cross_attention->to_q(x), 2),
                                                                              heads_of(cross_attention->to_k(context), 2),
                                                                              heads_of(cross_attention->to_v(context), 2)));
  EXPECT_TRUE(at::equal(cross, expected));
}
