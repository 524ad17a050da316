#include "models/conditioning.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "models/sdxl_vector.hpp"

namespace lethe::models {

namespace {
std::string shape_of(const at::Tensor& tensor) { return tensor.defined() ? str(tensor.sizes()) : std::string("none"); }
}  // namespace

void Conditioning::validate(const std::string& where) const {
  check(context.defined() && context.dim() == 3, where, ": expected a context [N, L, D], got ", shape_of(context));
  const int64_t n = context.size(0);
  check(pooled.defined() == sizes.defined(), where, ": the pooled output and the size conditioning go together, got ",
        shape_of(pooled), " and ", shape_of(sizes));
  if (!pooled.defined()) return;
  check(pooled.dim() == 2 && pooled.size(0) == n, where, ": expected the pooled output [", n, ", P], got ",
        shape_of(pooled));
  check(sizes.dim() == 2 && sizes.size(0) == n && sizes.size(1) == kSdxlSizeCount, where,
        ": expected the size conditioning [", n, ", ", kSdxlSizeCount, "], got ", shape_of(sizes));
}

Conditioning Conditioning::rows(const at::Tensor& index) const {
  if (size() == 1) return expand(index.size(0));
  return map([&](const at::Tensor& part) { return part.index_select(0, index.to(part.device())); });
}

Conditioning Conditioning::expand(int64_t count) const {
  return map([&](const at::Tensor& part) {
    std::vector<int64_t> shape(part.sizes().begin(), part.sizes().end());
    shape[0] = count;
    return part.expand(shape);
  });
}

Conditioning Conditioning::first(int64_t count) const { return slice(0, count); }

Conditioning Conditioning::slice(int64_t start, int64_t count) const {
  return map([&](const at::Tensor& part) { return part.narrow(0, start, count); });
}

Conditioning Conditioning::where(const at::Tensor& take, const Conditioning& other) const {
  check(has_vector() == other.has_vector(), "conditioning: replacing rows needs both with a pooled output or neither");
  auto pick = [&](const at::Tensor& mine, const at::Tensor& theirs) {
    if (!mine.defined()) return mine;
    std::vector<int64_t> shape(mine.dim(), 1);
    shape[0] = -1;
    return at::where(take.view(shape).to(mine.device()), theirs.to(mine.options()).expand_as(mine), mine);
  };
  return {pick(context, other.context), pick(pooled, other.pooled), pick(sizes, other.sizes)};
}

Conditioning Conditioning::to_float() const {
  return map([](const at::Tensor& part) { return part.to(at::kFloat).contiguous(); });
}

Conditioning Conditioning::to(const c10::Device& device) const {
  return map([&](const at::Tensor& part) { return part.to(device); });
}

bool Conditioning::equal(const Conditioning& other) const {
  auto same = [](const at::Tensor& a, const at::Tensor& b) {
    if (a.defined() != b.defined()) return false;
    return !a.defined() || (a.sizes() == b.sizes() && at::equal(a, b.to(a.device())));
  };
  return same(context, other.context) && same(pooled, other.pooled) && same(sizes, other.sizes);
}

Conditioning cat(const std::vector<Conditioning>& parts) {
  check(!parts.empty(), "conditioning: nothing to concatenate");
  std::vector<at::Tensor> contexts, pooled, sizes;
  for (const Conditioning& part : parts) {
    check(part.has_vector() == parts.front().has_vector(),
          "conditioning: concatenating prompts with and without a pooled output");
    contexts.push_back(part.context);
    if (part.has_vector()) {
      pooled.push_back(part.pooled);
      sizes.push_back(part.sizes);
    }
  }
  if (pooled.empty()) return {at::cat(contexts), {}, {}};
  return {at::cat(contexts), at::cat(pooled), at::cat(sizes)};
}

}  // namespace lethe::models
