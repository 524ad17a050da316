// Scalar building blocks of Lethe's own CPU kernels (models/group_norm_kernel.cpp,
// models/attention_kernel.cpp), written so that GCC and Clang vectorise the loops that call
// them: bf16 <-> fp32 as bit operations, e^x by a polynomial, and the attribute that compiles a
// kernel for AVX-512, AVX2 + FMA and baseline x86-64, picked once at load time by the CPU's
// features (function multiversioning). The translation units that use them are compiled with
// -fno-trapping-math and -fno-math-errno (CMakeLists.txt), without which the compares and floor
// below do not vectorise.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#define LETHE_INLINE inline __attribute__((always_inline))

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LETHE_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LETHE_CPU_CLONES
#endif

namespace lethe::models::kernel_math {

// A bf16 is the top half of an fp32.
LETHE_INLINE float load(float value) { return value; }
LETHE_INLINE float load(uint16_t value) { return std::bit_cast<float>(static_cast<uint32_t>(value) << 16); }
LETHE_INLINE void store(float value, float& out) { out = value; }
// Round to nearest even; a NaN stays a (quiet) NaN.
LETHE_INLINE void store(float value, uint16_t& out) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  out = static_cast<uint16_t>((bits & 0x7FFFFFFFu) > 0x7F800000u ? ((bits >> 16) | 0x40u) : rounded);
}

// e^x in fp32: x = k ln 2 + r with |r| <= ln2 / 2, e^r by its Taylor series to r^7 (relative
// error below 1e-8 there, under fp32's rounding), 2^k by building the exponent. x is clamped to
// [-87, 88], where 2^k stays a normal number: e^x of x below -87 comes out as e^-87 (1.6e-38),
// not 0, which the callers' sums and quotients do not see.
LETHE_INLINE float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float k = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - k * 0.693145751953125f) - k * 1.42860682030941723e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float two_k = std::bit_cast<float>(static_cast<uint32_t>(static_cast<int32_t>(k) + 127) << 23);
  return p * two_k;
}

}  // namespace lethe::models::kernel_math
