#include "data/batching.hpp"

#include <numeric>

#include "core/error.hpp"

namespace lethe::data {

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t bound) {
  check(bound > 0, "SplitMix64::below: bound must be > 0");
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t value;
  do value = next();
  while (value >= limit);
  return value % bound;
}

double SplitMix64::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  SplitMix64 rng(seed ^ (0xD1B54A32D192ED03ULL * static_cast<uint64_t>(epoch + 1)));
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<uint64_t>(i + 1))]);
  return order;
}

Batcher::Batcher(int64_t dataset_size, int64_t batch_size, uint64_t seed, bool shuffle)
    : size_(dataset_size), batch_(batch_size), seed_(seed), shuffle_(shuffle) {
  check(dataset_size > 0, "Batcher: dataset is empty");
  check(batch_size > 0, "Batcher: batch size must be > 0, got ", batch_size);
}

const std::vector<int64_t>& Batcher::order() {
  if (cached_epoch_ != state_.epoch) {
    if (shuffle_) {
      cached_order_ = epoch_permutation(size_, seed_, state_.epoch);
    } else {
      cached_order_.resize(size_);
      std::iota(cached_order_.begin(), cached_order_.end(), 0);
    }
    cached_epoch_ = state_.epoch;
  }
  return cached_order_;
}

std::vector<int64_t> Batcher::next() {
  std::vector<int64_t> batch;
  batch.reserve(batch_);
  while (static_cast<int64_t>(batch.size()) < batch_) {
    if (state_.position >= size_) {
      ++state_.epoch;
      state_.position = 0;
    }
    batch.push_back(order()[state_.position++]);
  }
  return batch;
}

void Batcher::restore(const State& state) {
  check(state.epoch >= 0 && state.position >= 0 && state.position <= size_, "Batcher: invalid state (epoch ",
        state.epoch, ", position ", state.position, ") for a dataset of ", size_);
  state_ = state;
}

}  // namespace lethe::data
