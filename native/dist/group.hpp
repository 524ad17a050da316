// The processes one run spans: a single process, or the ranks of a torch.distributed process
// group (c10d: Gloo on CPUs, NCCL on GPUs) that the caller created (Python's
// torch.distributed.init_process_group under torchrun; docs/distributed.md). Lethe adds no
// protocol of its own: every collective below is one c10d call, waited on with the group's
// timeout, so a rank that failed, was cancelled or hangs ends the others with an Error instead
// of a hang.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

namespace c10d {
class ProcessGroup;
class Work;
}

namespace lethe::dist {

class Group;

// A sum over the ranks that was started and not yet waited for (Group::start_all_reduce_sum).
// Dropping it unwaited is safe (the collective keeps its buffer) but leaves the tensors as they were.
class PendingSum {
 public:
  PendingSum();
  ~PendingSum();
  PendingSum(PendingSum&&) noexcept;
  PendingSum& operator=(PendingSum&&) noexcept;
  bool pending() const;
  // Waits (at most the group's timeout) and writes the sums back into the tensors.
  void wait();

 private:
  friend class Group;
  const Group* group_ = nullptr;
  c10::intrusive_ptr<c10d::Work> work_;
  at::Tensor buffer_;  // [sum of numels], the tensors flattened
  std::vector<at::Tensor> tensors_;
  std::string what_;
};

class Group {
 public:
  Group() = default;  // one process: rank 0 of 1, every collective a no-op
  Group(c10::intrusive_ptr<c10d::ProcessGroup> group, std::chrono::milliseconds timeout);
  ~Group();
  Group(const Group&);
  Group& operator=(const Group&);

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool single() const { return size_ == 1; }
  bool leader() const { return rank_ == 0; }  // writes the run's files and checkpoints
  double timeout_seconds() const { return static_cast<double>(timeout_.count()) / 1000.0; }

  // This rank's rows [first, end) of `rows` split into size() contiguous shares, the first
  // rows % size() shares one row longer. Every rank gets at least one row when rows >= size().
  std::pair<int64_t, int64_t> share(int64_t rows) const { return share_of(rank_, rows); }
  // Every rank's share (this rank's is `mine`, rows from share(rows)) concatenated along dim 0:
  // [rows, ...] on every rank. `what` names the collective in errors.
  at::Tensor all_gather_rows(const at::Tensor& mine, int64_t rows, const std::string& what) const;
  // Sums the tensors over the ranks in place (one flat buffer per dtype, so one collective).
  void all_reduce_sum(const std::vector<at::Tensor>& tensors, const std::string& what) const;
  // Starts summing the tensors (one dtype and device) over the ranks, copied into one flat
  // buffer now; the caller goes on (e.g. with the backward) and waits later. Every rank must
  // start the same sums in the same order.
  PendingSum start_all_reduce_sum(const std::vector<at::Tensor>& tensors, const std::string& what) const;
  // Rank 0's text, on every rank.
  std::string broadcast_text(const std::string& text, const std::string& what) const;
  void barrier(const std::string& what) const;

  // What this group's collectives moved so far (copies of the group add to the same record), by
  // kind (all_gather, all_reduce, broadcast, barrier): calls, the bytes this rank contributed
  // and the seconds this rank waited for them (for a sum started before the backward finished:
  // from the wait's start, the part the backward did not hide).
  struct Traffic {
    int64_t calls = 0;
    int64_t bytes = 0;
    double seconds = 0.0;
  };
  std::map<std::string, Traffic> traffic() const { return traffic_ ? *traffic_ : std::map<std::string, Traffic>{}; }

 private:
  // Rank `rank`'s rows of `rows` (share() is this rank's).
  std::pair<int64_t, int64_t> share_of(int rank, int64_t rows) const;
  // Waits for the collective `run` starts, recorded under `kind` with `bytes`; a failure or
  // timeout becomes an Error naming `what`.
  template <typename Run>
  void collective(const std::string& what, const char* kind, int64_t bytes, Run run) const;
  // Waits for `work` (the group's timeout), recorded as above from `started`.
  void wait_for(c10d::Work& work, const std::string& what, const char* kind, int64_t bytes,
                std::chrono::steady_clock::time_point started) const;
  // The Error of a collective that failed or timed out.
  [[noreturn]] void failed(const std::string& what) const;
  friend class PendingSum;

  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  int rank_ = 0;
  int size_ = 1;
  std::chrono::milliseconds timeout_{0};
  std::shared_ptr<std::map<std::string, Traffic>> traffic_;
};

// Whether `group` (null: one process) spans more than one rank.
inline bool spans_ranks(const Group* group) { return group && !group->single(); }
// Whether this process writes a run's files: one process always, else rank 0 only.
inline bool writes_files(const Group* group) { return !group || group->leader(); }

// The text `compute` returns, run by rank 0 alone (one process: by it) and received by the other
// ranks, e.g. the folder rank 0 claimed. `what` names the broadcast in errors.
template <typename Compute>
std::string from_leader(const Group* group, const std::string& what, Compute compute) {
  if (!spans_ranks(group)) return compute();
  return group->broadcast_text(group->leader() ? std::string(compute()) : std::string(), what);
}

}  // namespace lethe::dist
