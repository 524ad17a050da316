// Attention over few keys on a CPU, without autograd: softmax(q k^T / sqrt(d)) v for the short
// sequences of small UNets (the bench UNet: 49 queries and keys of 32 dimensions in
// self-attention, 6 keys in cross-attention). libtorch's CPU flash attention, built for long
// sequences, took 1.5x this kernel's time there in bf16 (self-attention) and 2.3x
// (cross-attention), at 128 samples on an AMD EPYC with 2 threads (docs/performance.md
// §Precision, "Attention in bf16 inference"). Per (sample, head): the keys transposed and the
// values in fp32, then blocks of 8 queries: their scores against 16 keys at a time held in
// registers, the softmax in fp32 (the maximum subtracted, e^x by a polynomial of relative error
// below 1e-8), the weighted sum of the values in fp32, one rounding to bf16. bf16 only (fp32
// sampling keeps the numbers it had), and only on x86-64 CPUs with AVX-512 (every CPU on which
// `auto` picks bf16 has it: AMX and AVX-512 bf16 come with AVX-512); elsewhere libtorch's
// attention runs as before.
#pragma once

#include <ATen/ATen.h>

namespace lethe::models {

// Most keys and widest head small_attention takes; longer sequences keep libtorch's attention.
inline constexpr int64_t kSmallAttentionMaxKeys = 256, kSmallAttentionMaxHeadDim = 256;

// Whether this CPU runs the kernel: x86-64 with AVX-512 (F, BW, VL, DQ, CD).
bool small_attention_available();

// Whether small_attention applies: the kernel available, inference mode on, q [B, h, Nq, d], k and v [B, h, Nk, d]
// bf16 CPU tensors, Nk <= kSmallAttentionMaxKeys and d <= kSmallAttentionMaxHeadDim.
bool small_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// softmax(q k^T / sqrt(d)) v for q [B, h, Nq, d], k, v [B, h, Nk, d] (any strides) ->
// [B, Nq, h d] (the heads side by side, the layout an attention's output projection takes),
// bf16. Throws (naming the shapes) where small_attention_applies does not hold.
at::Tensor small_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace lethe::models
