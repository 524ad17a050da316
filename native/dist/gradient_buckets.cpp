#include "dist/gradient_buckets.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "core/error.hpp"

namespace lethe::dist {

namespace {

struct ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(GradientBuckets* owner, size_t index) : owner(owner), index(index) {}
  void operator()(const torch::autograd::Variable&) override { owner->ready(index); }
  GradientBuckets* owner;
  size_t index;
};

}  // namespace

GradientBuckets::GradientBuckets(const std::vector<at::Tensor>& parameters, const Group& group)
    : parameters_(parameters), group_(group), bucket_of_(parameters.size()), received_(parameters.size(), false) {
  int64_t bytes = 0;
  for (size_t k = parameters_.size(); k-- > 0;) {
    const at::Tensor& p = parameters_[k];
    check(p.is_leaf() && p.requires_grad(), "gradient buckets: parameter ", k, " is not a trained leaf tensor");
    const int64_t size = p.numel() * static_cast<int64_t>(p.element_size());
    const bool fits = !buckets_.empty() && bytes + size <= kBucketBytes &&
                      parameters_[buckets_.back().members.front()].scalar_type() == p.scalar_type() &&
                      parameters_[buckets_.back().members.front()].device() == p.device();
    if (!fits) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().members.push_back(k);
    bytes += size;
    bucket_of_[k] = buckets_.size() - 1;
  }
  for (size_t k = 0; k < parameters_.size(); ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(parameters_[k], std::make_unique<ReadyHook>(this, k));
}

GradientBuckets::~GradientBuckets() {
  for (const at::Tensor& p : parameters_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradientBuckets::arm() {
  for (Bucket& bucket : buckets_) {
    bucket.waiting = bucket.members.size();
    bucket.sum = PendingSum();
    bucket.started = false;
  }
  std::fill(received_.begin(), received_.end(), false);
  next_ = 0;
  armed_ = true;
}

void GradientBuckets::start(Bucket& bucket) {
  std::vector<at::Tensor> gradients;
  for (size_t k : bucket.members) {
    at::Tensor p = parameters_[k];
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);  // the same buffer layout on every rank
    gradients.push_back(p.grad());
  }
  bucket.sum = group_.start_all_reduce_sum(gradients, "the gradient sum");
  bucket.started = true;
}

void GradientBuckets::ready(size_t index) {
  if (!armed_) return;
  check(!received_[index], "gradient buckets: parameter ", index, " received a second gradient in the step's last "
        "backward, after its sum had started");
  received_[index] = true;
  --buckets_[bucket_of_[index]].waiting;
  while (next_ < buckets_.size() && buckets_[next_].waiting == 0) {
    start(buckets_[next_++]);
    ++started_during_backward_;
  }
}

void GradientBuckets::finish() {
  check(armed_, "gradient buckets: finish() without arm()");
  armed_ = false;
  while (next_ < buckets_.size()) start(buckets_[next_++]);
  for (Bucket& bucket : buckets_) bucket.sum.wait();
}

}  // namespace lethe::dist
