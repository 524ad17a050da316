#include "models/unet_memory.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace lethe::models {

int64_t unet_inference_bytes(const UNetConfig& config, int64_t batch, int64_t height, int64_t width) {
  const int64_t levels = static_cast<int64_t>(config.channel_mult.size());
  double skips = 0.0, widest = 0.0;  // in floats per input
  double area = static_cast<double>(height) * static_cast<double>(width);
  for (int64_t level = 0; level < levels; ++level) {
    const double channels = static_cast<double>(config.model_channels * config.channel_mult[level]);
    // conv_in (level 0), each ResBlock's output, and the downsample (all but the last level).
    const double kept = static_cast<double>(config.num_res_blocks) + (level == 0 ? 1.0 : 0.0) + (level + 1 < levels ? 1.0 : 0.0);
    skips += kept * channels * area;
    // ResBlocks: input, normed, conv output, the decoder's concatenation (2x); transformers:
    // q, k, v, attention output, the GEGLU projection (8x) and its halves, per block.
    const double working = config.has_attention(level) ? 20.0 : 6.0;
    widest = std::max(widest, working * channels * area);
    area /= 4.0;
  }
  // The tensors counted above are the ones alive at once by the layer structure; the allocator
  // holds about twice that at its peak (normalisation, activation and concatenation
  // temporaries): measured 1.7x to 2.2x on SD-like configurations (tests/python/
  // test_resource_guard.py), so the estimate takes 3x.
  constexpr double kAllocatorPeak = 3.0;
  return static_cast<int64_t>(kAllocatorPeak * 4.0 * static_cast<double>(batch) * (skips + widest));
}

int64_t unet_widest_activation(const UNetConfig& config, int64_t height, int64_t width) {
  const int64_t levels = static_cast<int64_t>(config.channel_mult.size());
  const int64_t mc = config.model_channels;
  // The encoder's outputs the decoder concatenates, as (channels, area), in the order kept (unet.cpp).
  std::vector<std::pair<int64_t, int64_t>> skips = {{mc, height * width}};
  int64_t widest = 0, ch = mc, h = height, w = width;
  for (int64_t level = 0; level < levels; ++level) {
    for (int64_t r = 0; r < config.num_res_blocks; ++r) {
      ch = config.channel_mult[level] * mc;
      skips.emplace_back(ch, h * w);
      if (config.has_attention(level)) widest = std::max(widest, 8 * ch * h * w);
    }
    if (level != levels - 1) {
      h = (h + 1) / 2;
      w = (w + 1) / 2;
      skips.emplace_back(ch, h * w);
    }
  }
  for (int64_t level = levels - 1; level >= 0; --level) {
    for (int64_t r = 0; r <= config.num_res_blocks; ++r) {
      const auto [skip, area] = skips.back();
      skips.pop_back();
      widest = std::max(widest, (ch + skip) * area);  // [B, ch + skip, h, w]
      ch = config.channel_mult[level] * mc;
    }
  }
  return widest;
}

int64_t rows_per_forward(const UNetConfig& config, int64_t height, int64_t width, int64_t element_bytes,
                         int64_t reused_bytes) {
  constexpr int64_t kFewestRows = 8;
  if (reused_bytes <= 0) return 0;
  const int64_t rows = reused_bytes / std::max<int64_t>(1, unet_widest_activation(config, height, width) * element_bytes);
  return rows < kFewestRows ? 0 : rows;
}

std::vector<int64_t> row_chunks(int64_t total, int64_t limit) {
  if (total <= 0) return {};
  const int64_t count = limit <= 0 ? 1 : (total + limit - 1) / limit;
  std::vector<int64_t> chunks(count, total / count);
  for (int64_t i = 0; i < total % count; ++i) ++chunks[i];
  return chunks;
}

namespace {

std::string gib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return text;
}

}  // namespace

int64_t sampling_batch_that_fits(const UNetConfig& config, int64_t samples, int64_t channels, int64_t height,
                                 int64_t width, bool guided, int64_t batch, int64_t available, const std::string& where) {
  if (available < 0) return batch;
  // The samples, kept in model space and handed on as an IMAGE (3 channels, float).
  const double results = 4.0 * static_cast<double>(samples) * static_cast<double>(height) * static_cast<double>(width) *
                         static_cast<double>(channels + 3);
  check(results < 0.8 * static_cast<double>(available), where, ": ", samples, " images of ", height, "x", width,
        " need about ", gib(results), " for the results alone, and this machine has ", gib(static_cast<double>(available)),
        " free; lower the number of samples or the size");
  const double per_image = static_cast<double>(unet_inference_bytes(config, guided ? 2 : 1, height, width));
  const double room = 0.8 * static_cast<double>(available) - results;
  check(per_image <= room, where, ": one image of ", height, "x", width, " needs about ", gib(per_image),
        " for the model's forward pass and this machine has ", gib(room), " left for it; lower the size");
  return std::max<int64_t>(1, std::min<int64_t>(batch, static_cast<int64_t>(room / per_image)));
}

}  // namespace lethe::models
