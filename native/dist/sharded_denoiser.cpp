#include "dist/sharded_denoiser.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::dist {

ShardedDenoiser::ShardedDenoiser(models::Denoiser& inner, const Group& group, std::string name)
    : inner_(inner), group_(group), name_(std::move(name)) {}

at::Tensor ShardedDenoiser::predict(const at::Tensor& x_t, const at::Tensor& t, const models::Conditioning& conditioning) {
  const int64_t rows = x_t.size(0);
  check(rows >= group_.size(), name_, ": a batch of ", rows, " samples cannot be split over ", group_.size(),
        " ranks (expected at least one sample per rank); use a batch_size of at least ", group_.size());
  const auto [first, end] = group_.share(rows);
  const at::Tensor index = at::arange(first, end, at::TensorOptions().dtype(at::kLong).device(x_t.device()));
  const models::Conditioning mine_conditioning = conditioning.defined() ? conditioning.rows(index) : conditioning;
  at::Tensor mine = inner_.predict(x_t.narrow(0, first, end - first), t.narrow(0, first, end - first),
                                   mine_conditioning);  // [share, C, H, W], with gradient
  at::Tensor all = group_.all_gather_rows(mine.detach(), rows, name_ + " prediction");  // [B, C, H, W], no gradient
  std::vector<at::Tensor> parts;
  if (first > 0) parts.push_back(all.narrow(0, 0, first));
  parts.push_back(mine);
  if (end < rows) parts.push_back(all.narrow(0, end, rows - end));
  return at::cat(parts);
}

}  // namespace lethe::dist
