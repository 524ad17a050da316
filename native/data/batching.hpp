// Deterministic, seeded batching: epoch e of a dataset of n items is a permutation that
// depends only on (seed, e), so a resumed run sees exactly the batches it would have seen.
#pragma once

#include <cstdint>
#include <vector>

namespace lethe::data {

// A 64-bit PRNG with a fixed, documented algorithm (splitmix64), so sequences are the
// same on every platform and standard library.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  // Uniform integer in [0, bound), bound > 0 (rejection sampling, no modulo bias).
  uint64_t below(uint64_t bound);
  // Uniform double in [0, 1).
  double uniform();

 private:
  uint64_t state_;
};

// The permutation of 0..n-1 used for `epoch` (Fisher-Yates with SplitMix64).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

class Batcher {
 public:
  struct State {
    int64_t epoch = 0;
    int64_t position = 0;  // index into the epoch's permutation
  };

  Batcher(int64_t dataset_size, int64_t batch_size, uint64_t seed, bool shuffle = true);
  // The next batch of indices. A batch that runs past the end of an epoch continues
  // with the next epoch's permutation, so every batch is full.
  std::vector<int64_t> next();
  State state() const { return state_; }
  void restore(const State& state);

 private:
  const std::vector<int64_t>& order();
  int64_t size_;
  int64_t batch_;
  uint64_t seed_;
  bool shuffle_;
  State state_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_order_;
};

}  // namespace lethe::data
