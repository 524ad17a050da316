#include "eval/copy_scores.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "data/image.hpp"
#include "draw/canvas.hpp"
#include "eval/sscd_metrics.hpp"

namespace lethe::eval {

CopyScores score_copies(Descriptor& descriptor, const at::Tensor& images, const at::Tensor& references, double threshold,
                        bool paired) {
  at::Tensor similarity = similarity_matrix(embed_batched(descriptor, images), embed_batched(descriptor, references));  // [N, R]
  const int64_t count = images.size(0), refs = references.size(0);
  at::Tensor assigned = paired ? (at::arange(count, at::kLong) * refs).div(count, "floor") : at::full({count}, -1, at::kLong);
  CopyScores scores;
  scores.best = best_match(similarity, assigned);                                   // [N]
  scores.matched = paired ? assigned : std::get<1>(similarity.max(1)).to(at::kLong);  // [N]
  scores.threshold = threshold;
  scores.memorization_rate = memorization_rate(scores.best, threshold);
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t i = 0; i < count; ++i)
    rows.push_back({{"image", i}, {"reference", scores.matched[i].item<int64_t>()}, {"score", scores.best[i].item<double>()}});
  scores.json = {{"memorization_rate", scores.memorization_rate}, {"threshold", threshold}, {"descriptor", descriptor.kind()},
                 {"descriptor_file", std::filesystem::path(descriptor.path).filename().string()},
                 {"descriptor_sha256", descriptor.sha256}, {"scores", rows}};
  return scores;
}

std::string copy_scores_line(const CopyScores& scores, const std::string& descriptor_label) {
  const int64_t count = scores.best.size(0);
  const int64_t copies = scores.best.ge(scores.threshold).sum().item<int64_t>();
  return str("memorization rate ", scores.memorization_rate, " at threshold ", scores.threshold, ": ", copies, " of ", count,
             count == 1 ? " image is a copy" : " images are copies", " (descriptor ", descriptor_label, ")");
}

std::string copy_scores_csv(const CopyScores& scores) {
  std::ostringstream out;
  out << "image,reference,score,copy\n";
  char score[32];
  for (int64_t i = 0; i < scores.best.size(0); ++i) {
    const double value = scores.best[i].item<double>();
    std::snprintf(score, sizeof(score), "%.6f", value);
    out << i << "," << scores.matched[i].item<int64_t>() << "," << score << "," << (value >= scores.threshold ? 1 : 0) << "\n";
  }
  return out.str();
}

at::Tensor draw_copy_scores(const at::Tensor& images, const CopyScores& scores) {
  const int64_t count = images.size(0);
  const int cell = 84, gap = 6, label = 22;
  const int columns = static_cast<int>(std::clamp<int64_t>(count, 1, 8));
  const int rows = static_cast<int>((count + columns - 1) / columns);
  draw::Canvas canvas(columns * (cell + gap) + gap, rows * (cell + label) + 10);
  for (int64_t i = 0; i < count; ++i) {
    const int x = gap + static_cast<int>(i % columns) * (cell + gap), y = 4 + static_cast<int>(i / columns) * (cell + label);
    canvas.paste(data::resize_image(images[i], cell, cell), x, y);
    const double score = scores.best[i].item<double>();
    const draw::Color color = score >= scores.threshold ? draw::colors::red : draw::colors::green;
    canvas.frame({x - 1, y - 1, cell + 2, cell + 2}, color, 2);
    char text[48];
    std::snprintf(text, sizeof(text), "ref %lld: %.2f", static_cast<long long>(scores.matched[i].item<int64_t>()), score);
    canvas.text_centered(text, {x, y + cell + 2, cell, 16}, 12, color, true);
  }
  return canvas.tensor().unsqueeze(0);  // [1, 3, H, W]
}

}  // namespace lethe::eval
