// How much memory a UNet forward pass takes, estimated from its configuration before
// running it, so that sampling and evaluation can refuse (or shrink their batches) instead of
// dying in the allocator. An estimate, meant to err high: tests compare it with the peak
// memory of real forward passes (tests/python/test_resource_guard.py).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/unet_config.hpp"

namespace lethe::models {

// Peak bytes of the activations of one fp32 forward pass without autograd (sampling) for
// `batch` inputs of height x width: the skip connections the decoder keeps, plus the widest
// level's working tensors (a transformer's feed-forward is 8x the level's width).
int64_t unet_inference_bytes(const UNetConfig& config, int64_t batch, int64_t height, int64_t width);

// The largest single activation of one input's forward pass, in elements: the decoder's
// concatenations of the upsampled path with a skip connection, and at attention levels the
// transformer's feed-forward projection (8x the level's width, GEGLU).
int64_t unet_widest_activation(const UNetConfig& config, int64_t height, int64_t width);

// How many inputs one forward pass without autograd takes at most so that its widest
// activation (of `element_bytes` per element) stays within `reused_bytes`: the largest block
// the C allocator hands out again after it is freed (lethe::reused_allocation_bytes(),
// core/allocator.hpp). glibc serves larger ones from a fresh mapping each time (its mmap
// threshold, 32 MiB at most unless raised), whose pages fault in at every forward:
// the bench model's fp32 forward at 128 rows (38.5 MB concatenations) took 1.23x as long per
// row as at 64 on an AVX2 AMD EPYC (docs/performance.md §Precision, "Rows per forward").
// 0 = no limit: not even 8 inputs fit (a large model at a large size maps fresh memory at any
// batch; splitting it would only read its weights again).
int64_t rows_per_forward(const UNetConfig& config, int64_t height, int64_t width, int64_t element_bytes,
                         int64_t reused_bytes);

// The row counts, in order, that split a batch of `total` into the fewest chunks of at most
// `limit` rows, as even as can be (the first ones larger by one); `limit` 0 = one chunk.
std::vector<int64_t> row_chunks(int64_t total, int64_t limit);

// The batch size for sampling `samples` images of [channels, height, width] (`guided`: with
// classifier-free guidance, two inputs per image) in `available` bytes (-1 = unknown: the
// requested `batch` is kept): at most `batch`, smaller when its activations would not fit.
// Throws, naming `where` and the sizes, when the results alone or a single image's forward
// pass need more than is available.
int64_t sampling_batch_that_fits(const UNetConfig& config, int64_t samples, int64_t channels, int64_t height,
                                 int64_t width, bool guided, int64_t batch, int64_t available, const std::string& where);

}  // namespace lethe::models
