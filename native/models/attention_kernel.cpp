#include "models/attention_kernel.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/core/InferenceMode.h>

#include "core/error.hpp"
#include "models/cpu_kernel_math.hpp"

// The vector type below never crosses a call boundary (every function taking it is inlined);
// CMakeLists.txt compiles this file with -Wno-psabi for that reason.

namespace lethe::models {

namespace {

using kernel_math::exp_approx;
using kernel_math::load;
using kernel_math::store;

constexpr int64_t kRows = 8;    // queries per block
constexpr int64_t kLanes = 16;  // keys (or value dimensions) per register block

int64_t padded(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// Floats of one thread's work buffer for `keys` keys of `dim` dimensions.
int64_t work_floats(int64_t keys, int64_t dim) {
  return dim * padded(keys)       // keys transposed [dim, padded keys]
         + keys * padded(dim)     // values [keys, padded dim]
         + kRows * dim            // a block of queries [kRows, dim]
         + kRows * padded(keys);  // their scores, then weights [kRows, padded keys]
}

struct Head {
  int64_t queries, keys, dim;
  int64_t q_stride, k_stride, v_stride, out_stride;  // between rows (queries, keys, values, outputs)
  float scale;
};

// kLanes floats as one value (GCC/Clang vector extensions): one AVX-512 register in attend_bf16,
// the only build of the kernel.
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t LaneBits __attribute__((vector_size(kLanes * sizeof(int32_t))));

LETHE_INLINE Lanes load_lanes(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
LETHE_INLINE void store_lanes(float* p, Lanes v) { std::memcpy(p, &v, sizeof v); }
LETHE_INLINE Lanes max_lanes(Lanes a, Lanes b) {
  const LaneBits a_larger = a > b;  // all ones where a > b
  return reinterpret_cast<Lanes>((reinterpret_cast<LaneBits>(a) & a_larger) | (reinterpret_cast<LaneBits>(b) & ~a_larger));
}

// The largest lane and the sum of the lanes, by halving (four shuffles each).
static_assert(kLanes == 16, "the reductions below fold 16 lanes");
LETHE_INLINE Lanes fold(Lanes v, int step) {
  switch (step) {
    case 8: return __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    case 4: return __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    case 2: return __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    default: return __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  }
}
LETHE_INLINE float largest_lane(Lanes v) {
  for (int step : {8, 4, 2, 1}) v = max_lanes(v, fold(v, step));
  return v[0];
}
LETHE_INLINE float lane_sum(Lanes v) {
  for (int step : {8, 4, 2, 1}) v += fold(v, step);
  return v[0];
}

// One (sample, head): q [queries, dim], k, v [keys, dim] (rows `*_stride` apart, dimensions
// contiguous) -> out [queries, dim] (rows out_stride apart).
template <typename T>
LETHE_INLINE void attend(const T* __restrict q, const T* __restrict k, const T* __restrict v, T* __restrict out,
                         const Head& head, float* __restrict work) {
  const int64_t keys = head.keys, dim = head.dim, key_span = padded(keys), dim_span = padded(dim);
  float* __restrict keys_t = work;                      // [dim, key_span], zero past `keys`
  float* __restrict values = keys_t + dim * key_span;  // [keys, dim_span], zero past `dim`
  float* __restrict block = values + keys * dim_span;  // [kRows, dim]
  float* __restrict weights = block + kRows * dim;     // [kRows, key_span]
  for (int64_t c = 0; c < dim; ++c) {
    for (int64_t j = 0; j < keys; ++j) keys_t[c * key_span + j] = load(k[j * head.k_stride + c]);
    for (int64_t j = keys; j < key_span; ++j) keys_t[c * key_span + j] = 0.0f;
  }
  for (int64_t j = 0; j < keys; ++j) {
    for (int64_t c = 0; c < dim; ++c) values[j * dim_span + c] = load(v[j * head.v_stride + c]);
    for (int64_t c = dim; c < dim_span; ++c) values[j * dim_span + c] = 0.0f;
  }
  // The last block of keys: -inf added to the scores past `keys`, their weights then times 0.
  Lanes last_shift, last_keep;
  for (int64_t l = 0; l < kLanes; ++l) {
    const bool real = key_span - kLanes + l < keys;
    last_shift[l] = real ? 0.0f : -std::numeric_limits<float>::infinity();
    last_keep[l] = real ? 1.0f : 0.0f;
  }
  for (int64_t first = 0; first < head.queries; first += kRows) {
    const int64_t rows = std::min(kRows, head.queries - first);
    for (int64_t r = 0; r < rows; ++r) {
      const T* __restrict query = q + (first + r) * head.q_stride;
      for (int64_t c = 0; c < dim; ++c) block[r * dim + c] = load(query[c]);
    }
    std::fill(block + rows * dim, block + kRows * dim, 0.0f);
    // Scores: kRows x kLanes sums in registers, over the dimensions.
    for (int64_t j0 = 0; j0 < key_span; j0 += kLanes) {
      Lanes s[kRows] = {};
      for (int64_t c = 0; c < dim; ++c) {
        const Lanes column = load_lanes(keys_t + c * key_span + j0);
        for (int64_t r = 0; r < kRows; ++r) s[r] += block[r * dim + c] * column;
      }
      for (int64_t r = 0; r < kRows; ++r) store_lanes(weights + r * key_span + j0, s[r]);
    }
    // Softmax of each row, in place: e^((s - max) scale), zero past `keys`; 1 / sum kept.
    float inverse_sum[kRows];
    for (int64_t r = 0; r < kRows; ++r) {
      float* __restrict w = weights + r * key_span;
      float* __restrict last = w + key_span - kLanes;
      store_lanes(last, load_lanes(last) + last_shift);
      Lanes top = load_lanes(w);
      for (int64_t j0 = kLanes; j0 < key_span; j0 += kLanes) top = max_lanes(top, load_lanes(w + j0));
      const float most = largest_lane(top);
      for (int64_t j = 0; j < key_span; ++j) w[j] = exp_approx((w[j] - most) * head.scale);
      store_lanes(last, load_lanes(last) * last_keep);
      Lanes partial = {};
      for (int64_t j0 = 0; j0 < key_span; j0 += kLanes) partial += load_lanes(w + j0);
      inverse_sum[r] = 1.0f / lane_sum(partial);
    }
    // Outputs: kRows x kLanes sums in registers, over the keys.
    for (int64_t c0 = 0; c0 < dim_span; c0 += kLanes) {
      Lanes o[kRows] = {};
      for (int64_t j = 0; j < keys; ++j) {
        const Lanes value = load_lanes(values + j * dim_span + c0);
        for (int64_t r = 0; r < kRows; ++r) o[r] += weights[r * key_span + j] * value;
      }
      const int64_t width = std::min(kLanes, dim - c0);
      for (int64_t r = 0; r < rows; ++r) {
        T* __restrict row = out + (first + r) * head.out_stride + c0;
        float scaled[kLanes];
        store_lanes(scaled, o[r] * inverse_sum[r]);
        if (width == kLanes)  // a constant bound: vectorised
          for (int64_t l = 0; l < kLanes; ++l) store(scaled[l], row[l]);
        else
          for (int64_t l = 0; l < width; ++l) store(scaled[l], row[l]);
      }
    }
  }
}

// AVX-512 only (small_attention_available): built for AVX2 its register blocks spill, and it ran
// 3.3x slower than libtorch's bf16 flash attention at the bench UNet's self-attention.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LETHE_AVX512 __attribute__((target("arch=x86-64-v4")))
#else
#define LETHE_AVX512
#endif

// The kernel is the inlined template above, so that Clang accepts its vector helpers without
// the AVX-512 attribute each (only this entry point carries it).
LETHE_AVX512 void attend_bf16(const uint16_t* q, const uint16_t* k, const uint16_t* v, uint16_t* out,
                                  const Head& head, float* work) {
  attend(q, k, v, out, head, work);
}

bool shapes_fit(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) return false;
  if (k.sizes() != v.sizes() || q.size(0) != k.size(0) || q.size(1) != k.size(1) || q.size(3) != k.size(3)) return false;
  return k.size(2) >= 1 && k.size(2) <= kSmallAttentionMaxKeys && q.size(3) >= 1 &&
         q.size(3) <= kSmallAttentionMaxHeadDim;
}

}  // namespace

bool small_attention_available() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                             __builtin_cpu_supports("avx512cd");
  return avx512;
#else
  return false;
#endif
}

bool small_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (!small_attention_available() || !c10::InferenceMode::is_enabled() || !q.defined() || !k.defined() || !v.defined()) return false;
  if (!q.is_cpu() || !k.is_cpu() || !v.is_cpu()) return false;
  if (q.scalar_type() != at::kBFloat16 || k.scalar_type() != at::kBFloat16 || v.scalar_type() != at::kBFloat16)
    return false;
  return shapes_fit(q, k, v);
}

at::Tensor small_attention(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in) {
  check(small_attention_available(), "small_attention: this CPU lacks AVX-512, which the kernel needs");
  check(small_attention_applies(q_in, k_in, v_in), "small_attention: expected, under inference mode, bf16 CPU tensors ",
        "q [B, h, Nq, d], k and v [B, h, Nk, d] with Nk <= ", kSmallAttentionMaxKeys,
        " and d <= ", kSmallAttentionMaxHeadDim, ", got q ", q_in.sizes(), " ", q_in.scalar_type(), ", k ", k_in.sizes(),
        " ", k_in.scalar_type(), ", v ", v_in.sizes(), " ", v_in.scalar_type());
  RECORD_FUNCTION("lethe::small_attention", std::vector<c10::IValue>());  // named in op profiles
  // Rows may be any distance apart; each row's dimensions must be contiguous.
  auto rows_contiguous = [](const at::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); };
  const at::Tensor q = rows_contiguous(q_in), k = rows_contiguous(k_in), v = rows_contiguous(v_in);
  const int64_t batch = q.size(0), heads = q.size(1), queries = q.size(2), keys = k.size(2), dim = q.size(3);
  at::Tensor out = at::empty({batch, queries, heads * dim}, q.options());  // [B, Nq, h d]
  const Head head{queries, keys, dim, q.stride(2), k.stride(2), v.stride(2), heads * dim,
                  static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim)))};
  // bf16 values as their bits (models/cpu_kernel_math.hpp)
  const auto* q_base = reinterpret_cast<const uint16_t*>(q.const_data_ptr<at::BFloat16>());
  const auto* k_base = reinterpret_cast<const uint16_t*>(k.const_data_ptr<at::BFloat16>());
  const auto* v_base = reinterpret_cast<const uint16_t*>(v.const_data_ptr<at::BFloat16>());
  auto* out_base = reinterpret_cast<uint16_t*>(out.mutable_data_ptr<at::BFloat16>());
  at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> work(static_cast<size_t>(work_floats(keys, dim)));
    for (int64_t index = begin; index < end; ++index) {
      const int64_t b = index / heads, h = index % heads;
      attend_bf16(q_base + b * q.stride(0) + h * q.stride(1), k_base + b * k.stride(0) + h * k.stride(1),
                  v_base + b * v.stride(0) + h * v.stride(1), out_base + b * queries * heads * dim + h * dim, head,
                  work.data());
    }
  });
  return out;
}

}  // namespace lethe::models
