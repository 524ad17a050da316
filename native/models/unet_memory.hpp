// How much memory a UNet forward pass takes, estimated from its configuration before
// running it, so that sampling and evaluation can refuse (or shrink their batches) instead of
// dying in the allocator. An estimate, meant to err high: tests compare it with the peak
// memory of real forward passes (tests/python/test_resource_guard.py).
#pragma once

#include <cstdint>
#include <string>

#include "models/unet_config.hpp"

namespace lethe::models {

// Peak bytes of the activations of one fp32 forward pass without autograd (sampling) for
// `batch` inputs of height x width: the skip connections the decoder keeps, plus the widest
// level's working tensors (a transformer's feed-forward is 8x the level's width).
int64_t unet_inference_bytes(const UNetConfig& config, int64_t batch, int64_t height, int64_t width);

// The batch size for sampling `samples` images of [channels, height, width] (`guided`: with
// classifier-free guidance, two inputs per image) in `available` bytes (-1 = unknown: the
// requested `batch` is kept): at most `batch`, smaller when its activations would not fit.
// Throws, naming `where` and the sizes, when the results alone or a single image's forward
// pass need more than is available.
int64_t sampling_batch_that_fits(const UNetConfig& config, int64_t samples, int64_t channels, int64_t height,
                                 int64_t width, bool guided, int64_t batch, int64_t available, const std::string& where);

}  // namespace lethe::models
