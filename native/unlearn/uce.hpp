// UCE, "Unified Concept Editing in Diffusion Models" (Gandikota et al. 2024;
// docs/methods.md §5.4): a closed-form edit, no training, of every cross-attention key and
// value projection W [out, D] so that the erased concept's text embeddings c_i map to what the
// destination's c*_i mapped to, while preserved concepts' embeddings c_j keep their outputs:
//   W' = (lambda W + s_e sum_i W c*_i c_i^T + s_p sum_j W c_j c_j^T)
//        (lambda I + s_e sum_i c_i c_i^T + s_p sum_j c_j c_j^T)^-1
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/diffusion_model.hpp"

namespace lethe::unlearn {

struct UceConfig {
  double lambda = 0.1;          // weight of the old projection (UCE's `lamb`)
  double erase_scale = 1.0;     // s_e
  double preserve_scale = 0.0;  // s_p; 0 = UCE's default max(0.1, 1 / number of preserved captions)
  bool edit_keys = true;        // to_k as well as to_v (UCE's default)
  // Which rows of a caption's context are edited: "all_tokens" (every position: for a text
  // encoder whose rows each carry only their own token, as the embedded model's does) or
  // "from_last_token" (UCE's rule for causal encoders such as CLIP, whose last token carries
  // the whole caption).
  std::string rows = "all_tokens";

  template <typename V>
  void visit(V& v) {
    v("lambda", lambda);
    v("erase_scale", erase_scale);
    v("preserve_scale", preserve_scale);
    v("edit_keys", edit_keys);
    v("rows", rows);
  }
  void validate(const std::string& where) const;
};

// The edited projection (float64 solve, returned in weight's dtype). weight [out, D]; erase and
// destination [N, D] (row i of destination is where row i of erase should go); preserve [M, D]
// (M may be 0).
at::Tensor uce_weight(const at::Tensor& weight, const at::Tensor& erase, const at::Tensor& destination,
                      const at::Tensor& preserve, double lambda, double erase_scale, double preserve_scale);

// The embedding rows UCE edits for a caption pair, from their contexts [L, D] and token counts:
// each caption's last token and every position after it (padding included), the longer tail
// cut so both have the same count, as UCE aligns an erased and a destination prompt.
std::pair<at::Tensor, at::Tensor> uce_rows(const at::Tensor& context, int64_t tokens, const at::Tensor& destination_context,
                                           int64_t destination_tokens);

struct UceReport {
  int64_t projections = 0;  // matrices edited
  int64_t erase_rows = 0, preserve_rows = 0;
};

// Edits `model`'s UNet in place (its own token encoder embeds the captions): every erase
// caption ({a|b} variants expanded) goes to a destination caption (cycled), the preserve
// captions keep their outputs. Errors name what is missing.
UceReport uce_edit(models::DiffusionModel& model, const std::vector<std::string>& erase,
                   const std::vector<std::string>& destinations, const std::vector<std::string>& preserve,
                   const UceConfig& config);

}  // namespace lethe::unlearn
