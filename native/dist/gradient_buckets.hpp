// Sums the trained parameters' gradients over the ranks while the backward still runs, as
// torch's DistributedDataParallel does: the parameters are split into buckets of about
// kBucketBytes in reverse order (the backward reaches the last layers first); once every
// parameter of a bucket holds its gradient, a hook (autograd's post-accumulate-grad hook) starts
// the bucket's all-reduce and the backward goes on. Buckets start in index order on every rank,
// whatever order the hooks fire in, so the ranks' collectives match.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "dist/group.hpp"

namespace lethe::dist {

class GradientBuckets {
 public:
  // Small enough that the last layers' sums start early in a small model's backward, large
  // enough that a big model's few hundred buckets each move megabytes (DDP uses 25 MB).
  static constexpr int64_t kBucketBytes = int64_t{4} << 20;

  // Hooks `parameters` (leaf tensors that require grad; kept hooked until destruction).
  GradientBuckets(const std::vector<at::Tensor>& parameters, const Group& group);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  size_t count() const { return buckets_.size(); }
  // How many bucket sums a hook started while a backward still ran (the others started in finish()).
  int64_t started_during_backward() const { return started_during_backward_; }

  // The next backward is the step's last one over these parameters: its gradients are final, so
  // each bucket's sum starts once the bucket is complete. Each parameter may receive one gradient
  // in it (the objectives that use this back-propagate once per micro-batch).
  void arm();
  // After that backward: starts the buckets still waiting (parameters the loss did not reach sum
  // zeros, as on every other rank), waits for all sums and writes them into .grad; disarms.
  void finish();
  // The hook: parameter `index` holds its gradient.
  void ready(size_t index);

 private:
  struct Bucket {
    std::vector<size_t> members;  // parameter indices
    size_t waiting = 0;           // members without their gradient yet
    PendingSum sum;
    bool started = false;
  };
  void start(Bucket& bucket);

  std::vector<at::Tensor> parameters_;
  const Group& group_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;    // parameter index -> bucket index
  std::vector<bool> received_;       // parameter index -> gradient received since arm()
  size_t next_ = 0;                  // the next bucket to start
  bool armed_ = false;
  int64_t started_during_backward_ = 0;
};

}  // namespace lethe::dist
