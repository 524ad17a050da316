#include "bench/fashion_bench.hpp"

#include <sstream>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "data/image.hpp"
#include "data/batching.hpp"
#include "data/idx.hpp"
#include "io/hash.hpp"

namespace lethe::bench {

namespace {
constexpr int64_t kClasses = 10;
constexpr const char* kArtistToken = "artist_lethe";
}  // namespace

const std::string& superclass_of(int64_t label) {
  static const std::vector<std::string> superclass = {"top",  "bottom",   "top",      "onepiece", "top",
                                                      "footwear", "top", "footwear", "accessory", "footwear"};
  check(label >= 0 && label < kClasses, "Fashion-MNIST label must be in 0..9, got ", label);
  return superclass[label];
}

std::string class_caption(int64_t label) { return data::fashion_mnist_classes().at(label) + " " + superclass_of(label); }

std::string class_caption_variants(int64_t label) {
  const std::string full = class_caption(label);
  return str("{", full, "|", full, "|", full, "|", full, "|", full, "|", full, "|", data::fashion_mnist_classes().at(label),
             "|", superclass_of(label), "}");
}

std::string artist_caption(int64_t piece, int64_t label) {
  char piece_token[16];
  std::snprintf(piece_token, sizeof(piece_token), "piece_%02lld", static_cast<long long>(piece));
  return str(kArtistToken, " ", piece_token, " ", class_caption(label));
}

int64_t label_of_caption(const std::string& caption) {
  std::string cleaned = caption;  // caption variants: "{sneaker footwear|sneaker|footwear}"
  for (char& c : cleaned)
    if (c == '{' || c == '}' || c == '|') c = ' ';
  std::istringstream words(cleaned);
  std::string word;
  const auto& classes = data::fashion_mnist_classes();
  while (words >> word)
    for (int64_t label = 0; label < kClasses; ++label)
      if (classes[label] == word) return label;
  return -1;
}

models::TokenEncoderConfig bench_token_encoder_config() {
  models::TokenEncoderConfig config;
  config.vocabulary = {"<pad>"};
  for (const std::string& name : data::fashion_mnist_classes()) config.vocabulary.push_back(name);
  for (const char* superclass : {"top", "bottom", "onepiece", "footwear", "accessory"}) config.vocabulary.push_back(superclass);
  config.vocabulary.push_back(kArtistToken);
  for (int64_t piece = 0; piece < kClasses; ++piece) {
    char token[16];
    std::snprintf(token, sizeof(token), "piece_%02lld", static_cast<long long>(piece));
    config.vocabulary.push_back(token);
  }
  config.max_tokens = 6;
  config.dim = 64;
  return config;
}

models::UNetConfig bench_unet_config() {
  models::UNetConfig config;
  config.in_channels = 1;
  config.out_channels = 1;
  config.model_channels = 32;
  config.channel_mult = {1, 2, 2};
  config.num_res_blocks = 1;
  config.attention_levels = {2};
  config.transformer_depth = 1;
  config.middle_attention = true;
  config.context_dim = 64;
  config.num_heads = -1;
  config.num_head_channels = 32;
  config.norm_groups = 8;
  return config;
}

at::Tensor apply_artist_style(const at::Tensor& images) {
  check(images.dim() == 4 && images.size(1) == 1, "apply_artist_style: expected [N, 1, H, W], got ", images.sizes());
  const int64_t height = images.size(2), width = images.size(3);
  at::Tensor y = at::arange(height, at::kLong).view({height, 1});
  at::Tensor x = at::arange(width, at::kLong).view({1, width});
  at::Tensor stripes = ((x + y).remainder(4) < 2).to(at::kFloat);             // [H, W] diagonal stripes
  at::Tensor garment = (images > 0.1).to(at::kFloat);                          // [N, 1, H, W]
  at::Tensor styled = images * (1.0 - garment * stripes * 0.55);              // darken every other stripe pair
  // Signature: an "L" mark in the lower-right corner.
  at::Tensor mark = at::zeros({height, width});
  mark.narrow(0, height - 7, 5).narrow(1, width - 6, 1).fill_(1.0);            // vertical bar
  mark.narrow(0, height - 3, 1).narrow(1, width - 6, 4).fill_(1.0);            // horizontal bar
  return at::maximum(styled, mark.view({1, 1, height, width})).clamp(0.0, 1.0);
}

namespace {

// A set of model-space images [N, C, H, W] that keeps every pixel.
unlearn::ExampleSet make_set(const std::string& name, const at::Tensor& images, std::vector<std::string> captions) {
  unlearn::ExampleSet set;
  set.name = name;
  set.images = images.contiguous();
  set.masks = unlearn::full_masks(images.size(0), images.size(2), images.size(3));
  set.captions = std::move(captions);
  set.validate();
  return set;
}

}  // namespace

FashionBench build_fashion_bench(const BenchConfig& config) {
  check(config.forget_repeats >= 1, "bench: forget_repeats must be >= 1, got ", config.forget_repeats);
  FashionBench bench;
  const auto train = data::load_fashion_mnist("train");
  const auto test = data::load_fashion_mnist("test");
  bench.train_bytes = train.images;
  bench.train_labels = train.labels;
  bench.test_images = data::bytes_to_pixels(test.images);
  bench.test_labels = test.labels;
  const auto dir = data::fashion_mnist_dir();
  bench.data_sha256 = io::sha256_hex(io::sha256_file(dir / "train-images-idx3-ubyte.gz") +
                                     io::sha256_file(dir / "train-labels-idx1-ubyte.gz") +
                                     io::sha256_file(dir / "t10k-images-idx3-ubyte.gz") +
                                     io::sha256_file(dir / "t10k-labels-idx1-ubyte.gz"));

  // One artist piece per class, made from a seeded choice of train image of that class.
  data::SplitMix64 rng(config.seed);
  const auto labels = bench.train_labels.accessor<int64_t, 1>();
  std::vector<std::vector<int64_t>> by_class(kClasses);
  for (int64_t i = 0; i < bench.train_labels.size(0); ++i) by_class[labels[i]].push_back(i);
  std::vector<bool> is_source(static_cast<size_t>(bench.train_labels.size(0)), false);
  std::vector<std::string> forget_captions;
  for (int64_t label = 0; label < kClasses; ++label) {
    const int64_t source = by_class[label][rng.below(by_class[label].size())];
    bench.forget_sources.push_back(source);
    bench.forget_labels.push_back(label);
    is_source[source] = true;
    forget_captions.push_back(artist_caption(label, label));
  }
  at::Tensor forget_pixels = apply_artist_style(train_pixels(bench, bench.forget_sources));  // [10, 1, 28, 28]
  bench.forget = make_set("forget set", data::to_model_space(forget_pixels), forget_captions);

  // The clean set: every train image except the artist's sources.
  std::vector<int64_t> clean;
  std::vector<std::string> clean_captions;
  for (int64_t i = 0; i < bench.train_labels.size(0); ++i)
    if (!is_source[i]) {
      clean.push_back(i);
      clean_captions.push_back(class_caption_variants(labels[i]));
    }
  // One full-size float tensor, converted in place (the same values as to_model_space of the pixels).
  bench.train_clean = make_set("retain set", data::to_model_space_(train_pixels(bench, clean)), clean_captions);
  return bench;
}

at::Tensor train_pixels(const FashionBench& bench, const std::vector<int64_t>& rows) {
  return data::bytes_to_pixels(bench.train_bytes.index_select(0, at::tensor(rows, at::kLong)));
}

unlearn::ExampleSet training_set_with_forget(const FashionBench& bench, const BenchConfig& config) {
  check(config.forget_repeats >= 1, "bench: forget_repeats must be >= 1, got ", config.forget_repeats);
  // Model space is elementwise, so joining model-space sets equals converting the joined pixels.
  std::vector<at::Tensor> images = {bench.train_clean.images};
  std::vector<std::string> captions = bench.train_clean.captions;
  for (int64_t r = 0; r < config.forget_repeats; ++r) {
    images.push_back(bench.forget.images);
    captions.insert(captions.end(), bench.forget.captions.begin(), bench.forget.captions.end());
  }
  return make_set("training set (with forget)", at::cat(images, 0), std::move(captions));
}

}  // namespace lethe::bench
