// Copy-style image augmentations for training and validating the copy descriptor
// (docs/evaluation.md §1.6, adapted to Fashion-MNIST: crop/zoom, +-15 degree
// rotation, flips, blur, noise, contrast/brightness and occluding boxes; no colour jitter).
// Batched on tensors, each sample with its own parameters from the generator.
#pragma once

#include <ATen/core/Tensor.h>

namespace lethe::bench {

struct AugmentStrength {
  double min_scale = 0.7, max_scale = 1.15;  // zoom (>1 crops in)
  double max_rotation_degrees = 15.0;
  double max_translation = 0.15;             // fraction of the half-width
  double flip_probability = 0.5;
  double blur_probability = 0.3;
  double noise_probability = 0.3;
  double noise_std = 0.05;
  double tone_probability = 0.6;             // contrast in [0.6, 1.4], brightness in +-0.15
  double erase_probability = 0.25;           // a 5-9 px box of a random grey
};

// images [B, C, H, W] in [0, 1] -> augmented copies, same shape, in [0, 1].
at::Tensor copy_augment(const at::Tensor& images, at::Generator& generator, const AugmentStrength& strength = {});

// Light augmentation for the classifier: +-2 px shifts and horizontal flips.
at::Tensor shift_flip_augment(const at::Tensor& images, at::Generator& generator);

}  // namespace lethe::bench
