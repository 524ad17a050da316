// Scoring images against reference images with a copy descriptor (the SSCD Score node):
// each image's best cosine similarity, the reference it matched, the memorization rate at
// a threshold, and a preview of the images framed by verdict (docs/evaluation.md §2).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include <ATen/core/Tensor.h>

#include "eval/descriptor.hpp"

namespace lethe::eval {

struct CopyScores {
  at::Tensor best;     // [N] best score of each image
  at::Tensor matched;  // [N] int64: the reference it was scored against
  double threshold = 0.0;
  double memorization_rate = 0.0;  // share of images with best >= threshold
  // {"memorization_rate", "threshold", "descriptor" (kind), "descriptor_file", "descriptor_sha256",
  // "scores": [{"image", "reference", "score"}, ...]}
  nlohmann::json json;
};

// images [N, C, H, W], references [R, C, H, W] in [0, 1]. paired: image i is scored against
// reference floor(i R / N) (N generations of R references, in order); otherwise against the
// best-matching reference.
CopyScores score_copies(Descriptor& descriptor, const at::Tensor& images, const at::Tensor& references, double threshold,
                        bool paired);

// The node's one-line result: "memorization rate 0.67 at threshold 0.5: 2 of 3 images are
// copies (descriptor torchscript sscd_disc_mixup.torchscript.pt)".
std::string copy_scores_line(const CopyScores& scores, const std::string& descriptor_label);
// The per-image scores as CSV: image,reference,score,copy (1 when score >= threshold).
std::string copy_scores_csv(const CopyScores& scores);

// The images in a grid, each framed red (a copy: score >= threshold) or green, labelled with
// its score and matched reference. -> [1, 3, H, W] in [0, 1]
at::Tensor draw_copy_scores(const at::Tensor& images, const CopyScores& scores);

}  // namespace lethe::eval
