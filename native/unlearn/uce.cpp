#include "unlearn/uce.hpp"

#include <algorithm>
#include <set>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "models/unet.hpp"
#include "unlearn/caption_variants.hpp"

namespace lethe::unlearn {

void UceConfig::validate(const std::string& where) const {
  check(lambda > 0, where, ".lambda: expected > 0, got ", lambda);
  check(erase_scale > 0, where, ".erase_scale: expected > 0, got ", erase_scale);
  check(preserve_scale >= 0, where, ".preserve_scale: expected >= 0 (0 = UCE's default), got ", preserve_scale);
  check(rows == "all_tokens" || rows == "from_last_token", where,
        ".rows: expected \"all_tokens\" or \"from_last_token\", got \"", rows, "\"");
}

at::Tensor uce_weight(const at::Tensor& weight, const at::Tensor& erase, const at::Tensor& destination,
                      const at::Tensor& preserve, double lambda, double erase_scale, double preserve_scale) {
  check(erase.sizes() == destination.sizes() && erase.dim() == 2 && erase.size(1) == weight.size(1),
        "UCE: erase and destination rows must both be [N, ", weight.size(1), "], got ", erase.sizes(), " and ",
        destination.sizes());
  const at::Tensor w = weight.to(at::kDouble);                                  // [out, D]
  const at::Tensor c = erase.to(at::kDouble), d = destination.to(at::kDouble);  // [N, D]
  at::Tensor left = lambda * w + erase_scale * at::matmul(at::matmul(w, d.t()), c);             // [out, D]
  at::Tensor right = lambda * at::eye(w.size(1), w.options()) + erase_scale * at::matmul(c.t(), c);  // [D, D]
  if (preserve.defined() && preserve.size(0) > 0) {
    const at::Tensor p = preserve.to(at::kDouble);  // [M, D]
    left = left + preserve_scale * at::matmul(at::matmul(w, p.t()), p);
    right = right + preserve_scale * at::matmul(p.t(), p);
  }
  // W' = left right^-1, right symmetric: W'^T = right^-1 left^T.
  return at::linalg_solve(right, left.t()).t().to(weight.scalar_type()).contiguous();
}

std::pair<at::Tensor, at::Tensor> uce_rows(const at::Tensor& context, int64_t tokens, const at::Tensor& destination_context,
                                           int64_t destination_tokens) {
  const int64_t length = context.size(0);
  const int64_t first = std::max<int64_t>(tokens - 1, 0), first_destination = std::max<int64_t>(destination_tokens - 1, 0);
  const int64_t farthest = std::max(first, first_destination);
  return {context.slice(0, first, length - (farthest - first)),
          destination_context.slice(0, first_destination, length - (farthest - first_destination))};
}

namespace {

std::vector<std::string> expanded(const std::vector<std::string>& captions) {
  std::vector<std::string> out;
  for (const auto& caption : captions)
    for (auto& variant : all_caption_variants(caption)) out.push_back(std::move(variant));
  return out;
}

// Contexts [N, L, D] and token counts of captions, by the model's token encoder.
std::pair<at::Tensor, std::vector<int64_t>> embed(models::DiffusionModel& model, const std::vector<std::string>& captions) {
  at::NoGradGuard no_grad;
  at::Tensor ids = model.text_encoder()->tokenize(captions);  // [N, L]
  at::Tensor counts = (ids != 0).sum(1).to(at::kLong);
  std::vector<int64_t> tokens(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel());
  return {model.text_encoder()->forward(ids).to(at::kDouble), tokens};
}

}  // namespace

UceReport uce_edit(models::DiffusionModel& model, const std::vector<std::string>& erase,
                   const std::vector<std::string>& destinations, const std::vector<std::string>& preserve,
                   const UceConfig& config) {
  check(model.has_text_encoder(), "UCE edits the cross-attention for the model's own text embeddings: this model has "
                                  "no text encoder (host-encoded conditioning cannot be edited this way)");
  check(!erase.empty(), "UCE: no caption to erase (the run's target captions)");
  check(!destinations.empty(), "UCE: no destination caption (the anchor set's captions)");
  const std::vector<std::string> erased = expanded(erase);
  std::set<std::string> erased_set(erased.begin(), erased.end());
  std::vector<std::string> kept;
  for (auto& caption : expanded(preserve))
    if (!erased_set.count(caption) && std::find(kept.begin(), kept.end(), caption) == kept.end()) kept.push_back(caption);

  const std::vector<std::string> targets = expanded(destinations);
  std::vector<std::string> paired;
  for (size_t i = 0; i < erased.size(); ++i) paired.push_back(targets[i % targets.size()]);
  const auto [erase_context, erase_tokens] = embed(model, erased);
  const auto [destination_context, destination_tokens] = embed(model, paired);
  // The rows of a caption pair: all positions aligned one to one (contexts are padded to one
  // length), or UCE's tails from the last token.
  const bool all_tokens = config.rows == "all_tokens";
  auto rows_of = [all_tokens](const at::Tensor& context, int64_t tokens, const at::Tensor& destination_context,
                              int64_t destination_tokens) {
    return all_tokens ? std::make_pair(context, destination_context)
                      : uce_rows(context, tokens, destination_context, destination_tokens);
  };
  std::vector<at::Tensor> erase_rows, destination_rows, preserve_rows;
  for (size_t i = 0; i < erased.size(); ++i) {
    auto [rows, destination] =
        rows_of(erase_context[i], erase_tokens[i], destination_context[i], destination_tokens[i]);
    erase_rows.push_back(rows);
    destination_rows.push_back(destination);
  }
  if (!kept.empty()) {
    const auto [keep_context, keep_tokens] = embed(model, kept);
    for (size_t j = 0; j < kept.size(); ++j)
      preserve_rows.push_back(rows_of(keep_context[j], keep_tokens[j], keep_context[j], keep_tokens[j]).first);
  }
  const at::Tensor c = at::cat(erase_rows), d = at::cat(destination_rows);
  const at::Tensor p = preserve_rows.empty() ? at::Tensor() : at::cat(preserve_rows);
  const double preserve_scale =
      config.preserve_scale > 0 ? config.preserve_scale : std::max(0.1, 1.0 / std::max<size_t>(kept.size(), 1));

  UceReport report{0, c.size(0), p.defined() ? p.size(0) : 0};
  at::NoGradGuard no_grad;
  for (auto& item : model.unet()->named_parameters()) {
    const std::string& name = item.key();
    const bool value = models::is_cross_attention_value(name);
    const bool key = config.edit_keys && models::is_cross_attention_key(name);
    if (!value && !key) continue;
    item.value().copy_(uce_weight(item.value(), c, d, p, config.lambda, config.erase_scale, preserve_scale));
    ++report.projections;
  }
  check(report.projections > 0, "UCE: the model has no cross-attention key/value projections to edit");
  return report;
}

}  // namespace lethe::unlearn
