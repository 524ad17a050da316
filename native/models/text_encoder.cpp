#include "models/text_encoder.hpp"

#include <sstream>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::models {

void TokenEncoderConfig::validate(const std::string& where) const {
  check(!vocabulary.empty() && vocabulary[0] == "<pad>", where, ".vocabulary: the first token must be <pad>");
  for (size_t i = 0; i < vocabulary.size(); ++i)
    for (size_t j = i + 1; j < vocabulary.size(); ++j)
      check(vocabulary[i] != vocabulary[j], where, ".vocabulary: token '", vocabulary[i], "' appears twice");
  check(max_tokens >= 1, where, ".max_tokens: expected >= 1, got ", max_tokens);
  check(dim >= 1, where, ".dim: expected >= 1, got ", dim);
}

TokenEncoderImpl::TokenEncoderImpl(const TokenEncoderConfig& config, const at::TensorOptions& options)
    : config_(config) {
  config_.validate("token encoder");
  const int64_t vocabulary_size = static_cast<int64_t>(config.vocabulary.size());
  auto token = register_module("token_embedding", Slots());
  token_embedding_ = token->register_parameter("weight", at::empty({vocabulary_size, config.dim}, options));
  auto position = register_module("position_embedding", Slots());
  position_embedding_ = position->register_parameter("weight", at::empty({config.max_tokens, config.dim}, options));
  norm_ = register_module("norm", LayerNormLayer(config.dim, 1e-5, options));
}

void TokenEncoderImpl::initialize(uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::NoGradGuard no_grad;
  token_embedding_.normal_(0.0, 1.0, generator);
  position_embedding_.normal_(0.0, 0.02, generator);
  norm_->reset_parameters();
}

at::Tensor TokenEncoderImpl::tokenize(const std::vector<std::string>& captions) const {
  const int64_t length = config_.max_tokens;
  at::Tensor ids = at::zeros({static_cast<int64_t>(captions.size()), length}, at::kLong);
  auto accessor = ids.accessor<int64_t, 2>();
  for (size_t row = 0; row < captions.size(); ++row) {
    std::istringstream words(captions[row]);
    std::string word;
    int64_t position = 0;
    while (words >> word) {
      check(position < length, "caption '", captions[row], "' has more than ", length, " tokens");
      int64_t id = -1;
      for (size_t v = 1; v < config_.vocabulary.size() && id < 0; ++v)
        if (config_.vocabulary[v] == word) id = static_cast<int64_t>(v);
      check(id > 0, "caption '", captions[row], "': unknown token '", word, "'; the vocabulary is ",
            join(std::vector<std::string>(config_.vocabulary.begin() + 1, config_.vocabulary.end()), " "));
      accessor[row][position++] = id;
    }
  }
  return ids;
}

at::Tensor TokenEncoderImpl::forward(const at::Tensor& ids) {
  check(ids.dim() == 2 && ids.size(1) == config_.max_tokens, "token encoder: expected ids [B, ", config_.max_tokens,
        "], got ", ids.sizes());
  return encode_embeddings(embed(ids));
}

at::Tensor TokenEncoderImpl::embed(const at::Tensor& ids) {
  return at::embedding(token_embedding_, ids.to(token_embedding_.device()));  // [B, L, dim]
}

at::Tensor TokenEncoderImpl::encode_embeddings(const at::Tensor& tokens) {
  check(tokens.dim() == 3 && tokens.size(1) == config_.max_tokens && tokens.size(2) == config_.dim,
        "token encoder: expected token embeddings [B, ", config_.max_tokens, ", ", config_.dim, "], got ", tokens.sizes());
  return norm_(tokens + position_embedding_.unsqueeze(0));  // [B, L, dim]
}

}  // namespace lethe::models
