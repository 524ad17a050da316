#include "eval/copy_detection.hpp"

#include <algorithm>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::eval {

CopyDetectionResult evaluate_copy_detection(const at::Tensor& queries, const at::Tensor& database,
                                            const at::Tensor& sources) {
  check(queries.dim() == 2 && database.dim() == 2 && queries.size(1) == database.size(1),
        "copy detection: descriptors must be [Q, D] and [N, D], got ", queries.sizes(), " and ", database.sizes());
  check(sources.dim() == 1 && sources.size(0) == queries.size(0), "copy detection: need one source per query");
  CopyDetectionResult result;
  result.queries = queries.size(0);
  result.database = database.size(0);
  at::Tensor scores = queries.to(at::kFloat).matmul(database.to(at::kFloat).t());  // [Q, N]
  at::Tensor source_index = sources.to(at::kLong).unsqueeze(1);                     // [Q, 1]
  at::Tensor copy = scores.gather(1, source_index).squeeze(1);                      // [Q]
  at::Tensor masked = scores.scatter(1, source_index, -2.0);                        // distractors only
  at::Tensor best_distractor = std::get<0>(masked.max(1));                          // [Q]
  result.recall_at_1 = (copy > best_distractor).to(at::kDouble).mean().item<double>();
  result.copy_scores.assign(copy.data_ptr<float>(), copy.data_ptr<float>() + copy.numel());
  at::Tensor best = best_distractor.contiguous();
  result.best_distractor_scores.assign(best.data_ptr<float>(), best.data_ptr<float>() + best.numel());

  // Micro AP over all pairs: rank every (query, database) score; positives are the copies.
  at::Tensor flat = scores.flatten();
  at::Tensor positive = at::zeros_like(scores, at::kBool).scatter_(1, source_index, true).flatten();
  at::Tensor order = std::get<1>(flat.sort(/*dim=*/0, /*descending=*/true));
  at::Tensor hits = positive.index_select(0, order).to(at::kDouble);  // 1 where the ranked pair is a copy
  at::Tensor true_positives = hits.cumsum(0);
  at::Tensor ranks = at::arange(1, hits.numel() + 1, at::kDouble);
  at::Tensor precision = true_positives / ranks;
  const double total_positives = hits.sum().item<double>();
  result.micro_average_precision = (precision * hits).sum().item<double>() / total_positives;
  // Threshold: the lowest ranked score at which precision is still >= 0.9.
  at::Tensor sorted_scores = flat.index_select(0, order);
  at::Tensor good = (precision >= 0.9).nonzero();
  result.threshold_at_90_precision = good.numel() > 0 ? sorted_scores[good.max().item<int64_t>()].item<double>() : 1.0;
  return result;
}

}  // namespace lethe::eval
