#include "bench/bench_data.hpp"

#include <algorithm>

#include <ATen/ATen.h>

#include <charconv>

#include "bench/fashion_bench.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "data/image.hpp"
#include "data/idx.hpp"

namespace lethe::bench {

unlearn::TaskData bench_task_data(const unlearn::DataConfig& config) {
  config.validate("data");
  for (int64_t piece : config.forget_pieces)
    check(piece >= 0 && piece < 10, "data.forget_pieces: artist pieces are 0..9, got ", piece);
  unlearn::TaskData data;
  FashionBench fashion = build_fashion_bench();
  data.retain = fashion.train_clean;
  if (config.task == "data") {
    std::vector<int64_t> pieces = config.forget_pieces;
    if (pieces.empty())
      for (int64_t i = 0; i < fashion.forget.size(); ++i) pieces.push_back(i);
    data.forget = fashion.forget.subset(pieces, "forget set (bench artist pieces)");
  } else {
    // Concept: erase a class; x_t from real images of the anchor (a class, or the other
    // classes of a superclass), captioned with the anchor.
    const auto& classes = data::fashion_mnist_classes();
    int64_t target = -1;
    for (int64_t label = 0; label < 10; ++label)
      if (classes[label] == config.concept_name) target = label;
    check(target >= 0, "data.concept: unknown class '", config.concept_name, "'; known: ", join(classes));
    std::vector<int64_t> anchor_labels;
    std::string anchor_caption;
    for (int64_t label = 0; label < 10; ++label)
      if (classes[label] == config.anchor) anchor_labels = {label};
    if (!anchor_labels.empty()) {
      check(anchor_labels[0] != target, "data.anchor: the anchor must differ from the erased class '", config.concept_name, "'");
      anchor_caption = class_caption(anchor_labels[0]);
    } else {
      for (int64_t label = 0; label < 10; ++label)
        if (label != target && superclass_of(label) == config.anchor) anchor_labels.push_back(label);
      check(!anchor_labels.empty(), "data.anchor: '", config.anchor,
            "' is neither a class nor a superclass with other classes (superclasses: top, bottom, onepiece, "
            "footwear, accessory)");
      anchor_caption = config.anchor;
    }
    std::vector<int64_t> rows;
    auto labels = fashion.train_labels.accessor<int64_t, 1>();
    for (int64_t i = 0; i < fashion.train_labels.size(0) && rows.size() < 2000; ++i)
      for (int64_t label : anchor_labels)
        if (labels[i] == label) rows.push_back(i);
    at::Tensor pixels = train_pixels(fashion, rows);
    data.anchor.name = "anchor set (" + config.anchor + ")";
    data.anchor.images = data::to_model_space(pixels);
    data.anchor.masks = unlearn::full_masks(pixels.size(0), pixels.size(2), pixels.size(3));
    data.anchor.captions.assign(rows.size(), anchor_caption);
    data.target_captions = {"{" + class_caption(target) + "|" + classes[target] + "}"};
  }
  unlearn::limit_retain(data, config.retain_limit);
  return data;
}

std::vector<int64_t> parse_forget_pieces(const std::string& text, const std::string& where) {
  std::vector<int64_t> pieces;
  if (text == "all" || text.empty()) return pieces;
  for (const std::string& item : comma_list(text)) {
    int64_t piece = -1;
    const auto parsed = std::from_chars(item.data(), item.data() + item.size(), piece);
    check(parsed.ec == std::errc() && parsed.ptr == item.data() + item.size() && piece >= 0 && piece < 10, where,
          ": expected 'all' or a comma-separated list of pieces 0..9, got '", text, "'");
    pieces.push_back(piece);
  }
  // comma_list drops empty items; "0,,3" or "0," is a typo, not the list 0,3.
  const size_t items = static_cast<size_t>(std::count(text.begin(), text.end(), ',')) + 1;
  check(!pieces.empty() && pieces.size() == items, where,
        ": expected 'all' or a comma-separated list of pieces 0..9, got '", text, "'");
  return pieces;
}

std::vector<std::string> anchor_names() {
  std::vector<std::string> names = data::fashion_mnist_classes();
  for (const char* superclass : {"top", "bottom", "onepiece", "footwear", "accessory"}) names.push_back(superclass);
  return names;
}

}  // namespace lethe::bench
