// The embedded model's text encoder: captions are space-separated tokens from a small
// fixed vocabulary (`sneaker footwear`, `artist_lethe piece_03 sneaker footwear`).
// context = LayerNorm(token_embedding[ids] + position_embedding), padded with <pad> to a
// fixed length; the empty caption (all <pad>) is the unconditional context for
// classifier-free guidance. Real models take their context from the host's CLIP instead.
#pragma once

#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "io/json_config.hpp"
#include "models/layers.hpp"

namespace lethe::models {

struct TokenEncoderConfig {
  std::vector<std::string> vocabulary = {"<pad>"};  // id 0 must be "<pad>"
  int64_t max_tokens = 6;
  int64_t dim = 64;

  template <typename Visitor>
  void visit(Visitor& v) {
    v("vocabulary", vocabulary);
    v("max_tokens", max_tokens);
    v("dim", dim);
  }
  void validate(const std::string& where) const;
};

class TokenEncoderImpl : public torch::nn::Module {
 public:
  explicit TokenEncoderImpl(const TokenEncoderConfig& config, const at::TensorOptions& options = {});
  // Token ids [B, max_tokens] int64 for captions; errors name the caption and the unknown
  // word (listing the vocabulary) or the excess length.
  at::Tensor tokenize(const std::vector<std::string>& captions) const;
  // ids [B, L] -> context [B, L, dim]
  at::Tensor forward(const at::Tensor& ids);
  // forward split in two, for soft-prompt attacks that optimise the token embeddings:
  // ids [B, L] -> token embeddings [B, L, dim]; token embeddings [B, L, dim] -> context [B, L, dim].
  at::Tensor embed(const at::Tensor& ids);
  at::Tensor encode_embeddings(const at::Tensor& tokens);
  at::Tensor encode(const std::vector<std::string>& captions) { return forward(tokenize(captions)); }
  void initialize(uint64_t seed);
  const TokenEncoderConfig& config() const { return config_; }

 private:
  TokenEncoderConfig config_;
  at::Tensor token_embedding_;     // token_embedding.weight [V, dim]
  at::Tensor position_embedding_;  // position_embedding.weight [L, dim]
  LayerNormLayer norm_{nullptr};   // norm
};
TORCH_MODULE(TokenEncoder);

}  // namespace lethe::models
