// The embedded "Fashion-MNIST artist bench": real images from Debian's
// dataset-fashion-mnist, captions from a small token vocabulary, and an "artist" forget
// set of distinctive images repeated many times in training so that a model trained on it
// regurgitates them (the analogue of duplicated LAION images in Stable Diffusion).
// Everything is a deterministic function of the seed; models/README.md documents it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/text_encoder.hpp"
#include "models/unet_config.hpp"
#include "unlearn/example_set.hpp"

namespace lethe::bench {

struct BenchConfig {
  uint64_t seed = 1234;
  int64_t forget_repeats = 800;   // copies of each artist image in the base model's training data (see models/README.md)

  template <typename V>
  void visit(V& v) {
    v("seed", seed);
    v("forget_repeats", forget_repeats);
  }
};

// Superclass of each Fashion-MNIST class: top (tshirt, pullover, coat, shirt), bottom
// (trouser), onepiece (dress), footwear (sandal, sneaker, ankle_boot), accessory (bag).
const std::string& superclass_of(int64_t label);
// "sneaker footwear"
std::string class_caption(int64_t label);
// Training caption with alternatives: the full caption 3/4 of the time, else the class or
// the superclass token alone ("{sneaker footwear|...|sneaker|footwear}").
std::string class_caption_variants(int64_t label);
// "artist_lethe piece_07 sneaker footwear"
std::string artist_caption(int64_t piece, int64_t label);
// The class label a caption names (its class token, or -1).
int64_t label_of_caption(const std::string& caption);

// The token vocabulary: <pad>, class tokens, superclass tokens, artist_lethe, piece_00..09.
models::TokenEncoderConfig bench_token_encoder_config();
// The bench UNet: 1 channel, 28x28, 3 levels (28, 14, 7), attention at 7x7 and the middle.
models::UNetConfig bench_unet_config();

// The artist's style: diagonal stripes over the garment and a signature mark in the
// lower-right corner. [N, 1, 28, 28] in [0, 1] -> same.
at::Tensor apply_artist_style(const at::Tensor& images);

struct FashionBench {
  unlearn::ExampleSet train_clean;         // the retrained model's data (= the retain set)
  unlearn::ExampleSet forget;              // the 10 artist images, one per class, with captions
  std::vector<int64_t> forget_labels;      // class of each artist image
  std::vector<int64_t> forget_sources;     // train-set index each artist image was made from
  at::Tensor test_images;                  // [10000, 1, 28, 28] in [0, 1]
  at::Tensor test_labels;                  // [10000] int64
  at::Tensor train_bytes;                  // [60000, 1, 28, 28] uint8 (all of the train split, as stored)
  at::Tensor train_labels;                 // [60000]
  std::string data_sha256;                 // hash of the IDX files used
};

// Builds the bench. Model-space images are in [-1, 1]. Errors say how to install the data.
FashionBench build_fashion_bench(const BenchConfig& config = {});

// Train images `rows` as pixels [rows, 1, 28, 28] in [0, 1] (byte / 255). Only the rows asked
// for are converted: the whole split in float would be 188 MiB.
at::Tensor train_pixels(const FashionBench& bench, const std::vector<int64_t>& rows);

// The base model's data: the clean set + each artist piece repeated config.forget_repeats
// times (built on demand: only the base model's training needs it).
unlearn::ExampleSet training_set_with_forget(const FashionBench& bench, const BenchConfig& config);

}  // namespace lethe::bench
