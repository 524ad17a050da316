// What a denoiser is conditioned on, per sample: the text encoder's token context and, for
// models with a vector input (SDXL's label_emb), what that vector is made from: the text
// encoder's pooled output and the image-size conditioning. The model turns the parts it uses
// into its own inputs (DiffusionModel: SDXL's y = sdxl_vector(pooled, sizes)); a model
// without a vector input ignores pooled and sizes.
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lethe::models {

struct Conditioning {
  at::Tensor context;  // [B, L, D]
  at::Tensor pooled;   // [B, P] the pooled text embedding, or undefined
  at::Tensor sizes;    // [B, 6] float pixels (sdxl_vector.hpp's order), defined iff pooled is

  Conditioning() = default;
  // A context alone (models without a vector input). Implicit: a context tensor is a conditioning.
  Conditioning(at::Tensor context) : context(std::move(context)) {}  // NOLINT(google-explicit-constructor)
  Conditioning(at::Tensor context, at::Tensor pooled, at::Tensor sizes)
      : context(std::move(context)), pooled(std::move(pooled)), sizes(std::move(sizes)) {}

  bool defined() const { return context.defined(); }
  bool has_vector() const { return pooled.defined(); }
  int64_t size() const { return context.size(0); }

  // Checks the parts agree: context [N, L, D], pooled [N, P] with sizes [N, 6] or neither.
  // Errors name `where`.
  void validate(const std::string& where) const;
  // The rows `index` [K] (int64) of every part; a one-row conditioning is broadcast instead.
  Conditioning rows(const at::Tensor& index) const;
  // One row (or `count` rows) as `count` rows.
  Conditioning expand(int64_t count) const;
  // The first `count` rows.
  Conditioning first(int64_t count) const;
  // Rows start .. start + count - 1 of every part.
  Conditioning slice(int64_t start, int64_t count) const;
  // Rows where `take` [B] (bool) is true come from `other` (one row, broadcast); the rest stay.
  Conditioning where(const at::Tensor& take, const Conditioning& other) const;
  // Every part as float32, contiguous.
  Conditioning to_float() const;
  // Every part on `device`.
  Conditioning to(const c10::Device& device) const;
  // Whether both hold the same values in every part.
  bool equal(const Conditioning& other) const;

 private:
  // f applied to every defined part (undefined parts stay undefined).
  template <typename F>
  Conditioning map(F f) const {
    auto apply = [&](const at::Tensor& part) { return part.defined() ? f(part) : part; };
    return {apply(context), apply(pooled), apply(sizes)};
  }
};

// The conditionings concatenated along the batch (all with a vector, or none).
Conditioning cat(const std::vector<Conditioning>& parts);

}  // namespace lethe::models
