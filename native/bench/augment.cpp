#include "bench/augment.hpp"

#include <cmath>

#include <ATen/ATen.h>

namespace lethe::bench {

namespace {

at::Tensor uniform(int64_t count, double low, double high, at::Generator& generator) {
  return at::rand({count}, generator, at::kFloat) * (high - low) + low;  // [B]
}

at::Tensor coin(int64_t count, double probability, at::Generator& generator) {
  return (at::rand({count}, generator, at::kFloat) < probability).to(at::kFloat);  // [B] of 0/1
}

// Per-sample affine warp: theta [B, 2, 3] maps output to input coordinates.
at::Tensor warp(const at::Tensor& images, const at::Tensor& theta) {
  at::Tensor grid = at::affine_grid_generator(theta, images.sizes(), /*align_corners=*/false);  // [B, H, W, 2]
  return at::grid_sampler(images, grid, /*bilinear*/ 0, /*zeros*/ 0, /*align_corners=*/false);
}

}  // namespace

at::Tensor copy_augment(const at::Tensor& images, at::Generator& generator, const AugmentStrength& s) {
  const int64_t count = images.size(0), height = images.size(2), width = images.size(3);
  at::Tensor x = images.to(at::kFloat);

  // Zoom, rotation, translation, flip in one warp.
  at::Tensor scale = uniform(count, s.min_scale, s.max_scale, generator);
  at::Tensor angle = uniform(count, -s.max_rotation_degrees, s.max_rotation_degrees, generator) * (M_PI / 180.0);
  at::Tensor tx = uniform(count, -s.max_translation, s.max_translation, generator);
  at::Tensor ty = uniform(count, -s.max_translation, s.max_translation, generator);
  at::Tensor flip = 1.0 - 2.0 * coin(count, s.flip_probability, generator);  // -1 flips
  at::Tensor cos_a = at::cos(angle) / scale, sin_a = at::sin(angle) / scale;
  at::Tensor theta = at::stack({at::stack({cos_a * flip, -sin_a, tx}, 1), at::stack({sin_a * flip, cos_a, ty}, 1)}, 1);
  x = warp(x, theta);  // [B, C, H, W]

  // Blur: a 3x3 Gaussian (sigma 0.8) blended in per sample.
  at::Tensor kernel1d = at::exp(-at::pow(at::arange(-1, 2, at::kFloat), 2) / (2 * 0.8 * 0.8));
  kernel1d = kernel1d / kernel1d.sum();
  at::Tensor kernel = (kernel1d.unsqueeze(1) * kernel1d.unsqueeze(0)).view({1, 1, 3, 3}).repeat({x.size(1), 1, 1, 1});
  at::Tensor blurred = at::conv2d(x, kernel, {}, 1, 1, 1, x.size(1));
  at::Tensor use_blur = coin(count, s.blur_probability, generator).view({count, 1, 1, 1});
  x = use_blur * blurred + (1 - use_blur) * x;

  // Contrast and brightness.
  at::Tensor use_tone = coin(count, s.tone_probability, generator).view({count, 1, 1, 1});
  at::Tensor contrast = uniform(count, 0.6, 1.4, generator).view({count, 1, 1, 1});
  at::Tensor brightness = uniform(count, -0.15, 0.15, generator).view({count, 1, 1, 1});
  x = use_tone * ((x - 0.5) * contrast + 0.5 + brightness) + (1 - use_tone) * x;

  // Additive noise.
  at::Tensor use_noise = coin(count, s.noise_probability, generator).view({count, 1, 1, 1});
  x = x + use_noise * at::randn(x.sizes(), generator, at::kFloat) * s.noise_std;

  // Occluding box.
  at::Tensor use_erase = coin(count, s.erase_probability, generator);
  at::Tensor box = uniform(count, 5, 10, generator).floor();
  at::Tensor top = (uniform(count, 0, 1, generator) * (height - box)).floor();
  at::Tensor left = (uniform(count, 0, 1, generator) * (width - box)).floor();
  at::Tensor grey = uniform(count, 0, 1, generator).view({count, 1, 1, 1});
  at::Tensor rows = at::arange(height, at::kFloat).view({1, height, 1});
  at::Tensor cols = at::arange(width, at::kFloat).view({1, 1, width});
  at::Tensor inside = ((rows >= top.view({count, 1, 1})) & (rows < (top + box).view({count, 1, 1})) &
                       (cols >= left.view({count, 1, 1})) & (cols < (left + box).view({count, 1, 1})))
                          .to(at::kFloat)
                          .unsqueeze(1) *
                      use_erase.view({count, 1, 1, 1});  // [B, 1, H, W]
  x = inside * grey + (1 - inside) * x;
  return x.clamp(0.0, 1.0);
}

at::Tensor shift_flip_augment(const at::Tensor& images, at::Generator& generator) {
  const int64_t count = images.size(0);
  const double pixel = 2.0 / images.size(3);  // one pixel in normalised coordinates
  at::Tensor tx = at::randint(-2, 3, {count}, generator, at::kLong).to(at::kFloat) * pixel;
  at::Tensor ty = at::randint(-2, 3, {count}, generator, at::kLong).to(at::kFloat) * pixel;
  at::Tensor flip = 1.0 - 2.0 * coin(count, 0.5, generator);
  at::Tensor zero = at::zeros({count});
  at::Tensor theta = at::stack({at::stack({flip, zero, tx}, 1), at::stack({zero, at::ones({count}), ty}, 1)}, 1);
  return warp(images.to(at::kFloat), theta);
}

}  // namespace lethe::bench
