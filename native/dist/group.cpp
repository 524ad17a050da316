#include "dist/group.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "core/error.hpp"

namespace lethe::dist {

Group::Group(c10::intrusive_ptr<c10d::ProcessGroup> group, std::chrono::milliseconds timeout)
    : group_(std::move(group)), timeout_(timeout) {
  check(group_.defined(), "distributed run: no process group given");
  check(timeout_.count() > 0, "distributed run: the collective timeout must be > 0 s, got ", timeout_.count() / 1000.0);
  rank_ = group_->getRank();
  size_ = group_->getSize();
  traffic_ = std::make_shared<std::map<std::string, Traffic>>();
}

Group::~Group() = default;
Group::Group(const Group&) = default;
Group& Group::operator=(const Group&) = default;

void Group::failed(const std::string& what) const {
  // c10d's own text (a Gloo socket error, a timeout) names its sources, not the run: the other
  // ranks' messages say what happened to them.
  throw Error(str("distributed run, rank ", rank_, " of ", size_, ": ", what,
                  " failed: another rank stopped (it failed, was cancelled or was killed) or did not answer within ",
                  timeout_seconds(), " s; see the other ranks' messages"));
}

void Group::wait_for(c10d::Work& work, const std::string& what, const char* kind, int64_t bytes,
                     std::chrono::steady_clock::time_point started) const {
  try {
    work.wait(timeout_);
  } catch (const std::exception&) {
    failed(what);
  }
  Traffic& record = (*traffic_)[kind];
  record.calls += 1;
  record.bytes += bytes;
  record.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

template <typename Run>
void Group::collective(const std::string& what, const char* kind, int64_t bytes, Run run) const {
  const auto started = std::chrono::steady_clock::now();
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = run();
  } catch (const std::exception&) {
    failed(what);
  }
  wait_for(*work, what, kind, bytes, started);
}

PendingSum::PendingSum() = default;
PendingSum::~PendingSum() = default;
PendingSum::PendingSum(PendingSum&&) noexcept = default;
PendingSum& PendingSum::operator=(PendingSum&&) noexcept = default;

bool PendingSum::pending() const { return work_.defined(); }

void PendingSum::wait() {
  if (!pending()) return;
  c10::intrusive_ptr<c10d::Work> work = std::move(work_);
  group_->wait_for(*work, what_, "all_reduce", buffer_.nbytes(), std::chrono::steady_clock::now());
  int64_t offset = 0;
  for (const auto& tensor : tensors_) {
    const int64_t count = tensor.numel();
    tensor.detach().copy_(buffer_.narrow(0, offset, count).view(tensor.sizes()));
    offset += count;
  }
  tensors_.clear();
  buffer_ = at::Tensor();
}

PendingSum Group::start_all_reduce_sum(const std::vector<at::Tensor>& tensors, const std::string& what) const {
  PendingSum sum;
  if (single() || tensors.empty()) return sum;
  std::vector<at::Tensor> flat_parts;
  for (const auto& tensor : tensors) {
    check(tensor.scalar_type() == tensors[0].scalar_type() && tensor.device() == tensors[0].device(), what,
          ": expected tensors of one dtype and device, got ", tensors[0].scalar_type(), " on ", tensors[0].device(),
          " and ", tensor.scalar_type(), " on ", tensor.device());
    flat_parts.push_back(tensor.detach().reshape({-1}));
  }
  std::vector<at::Tensor> buffer{at::cat(flat_parts)};
  try {
    sum.work_ = group_->allreduce(buffer);
  } catch (const std::exception&) {
    failed(what);
  }
  sum.group_ = this;
  sum.buffer_ = buffer[0];
  sum.tensors_ = tensors;
  sum.what_ = what;
  return sum;
}

std::pair<int64_t, int64_t> Group::share_of(int rank, int64_t rows) const {
  const int64_t base = rows / size_, extra = rows % size_;
  const int64_t first = rank * base + std::min<int64_t>(rank, extra);
  return {first, first + base + (rank < extra ? 1 : 0)};
}

at::Tensor Group::all_gather_rows(const at::Tensor& mine, int64_t rows, const std::string& what) const {
  if (single()) return mine;
  const auto [first, end] = share(rows);
  check(mine.size(0) == end - first, what, ": rank ", rank_, " holds ", mine.size(0), " rows, expected its share of ",
        end - first, " of ", rows);
  // Gloo gathers equal sizes: every share padded to the longest, in float32 (exact for bf16 and
  // fp16 values), trimmed after.
  const int64_t longest = (rows + size_ - 1) / size_;
  std::vector<int64_t> shape = mine.sizes().vec();
  shape[0] = longest;
  at::Tensor padded = at::zeros(shape, mine.options().dtype(at::kFloat));
  padded.narrow(0, 0, mine.size(0)).copy_(mine.detach());
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < size_; ++r) outputs[0].push_back(at::empty_like(padded));
  std::vector<at::Tensor> inputs{padded};
  collective(what, "all_gather", padded.nbytes(), [&] { return group_->allgather(outputs, inputs); });
  std::vector<at::Tensor> parts;
  for (int r = 0; r < size_; ++r) {
    const auto [rank_first, rank_end] = share_of(r, rows);
    parts.push_back(outputs[0][r].narrow(0, 0, rank_end - rank_first));
  }
  return at::cat(parts).to(mine.scalar_type());
}

void Group::all_reduce_sum(const std::vector<at::Tensor>& tensors, const std::string& what) const {
  if (single() || tensors.empty()) return;
  std::map<std::pair<at::ScalarType, std::string>, std::vector<at::Tensor>> by_kind;  // one flat buffer per dtype/device
  for (const auto& tensor : tensors) by_kind[{tensor.scalar_type(), tensor.device().str()}].push_back(tensor);
  for (auto& [kind, group] : by_kind) start_all_reduce_sum(group, what).wait();
}

std::string Group::broadcast_text(const std::string& text, const std::string& what) const {
  if (single()) return text;
  std::vector<at::Tensor> length{at::full({1}, static_cast<int64_t>(text.size()), at::kLong)};
  collective(what, "broadcast", length[0].nbytes(), [&] { return group_->broadcast(length); });
  const int64_t size = length[0].item<int64_t>();
  std::vector<at::Tensor> bytes{at::zeros({std::max<int64_t>(size, 1)}, at::kByte)};
  if (leader()) std::memcpy(bytes[0].data_ptr(), text.data(), text.size());
  collective(what, "broadcast", bytes[0].nbytes(), [&] { return group_->broadcast(bytes); });
  return std::string(static_cast<const char*>(bytes[0].data_ptr()), static_cast<size_t>(size));
}

void Group::barrier(const std::string& what) const {
  if (single()) return;
  // A one-element all-reduce: Gloo's barrier ignores the timeout of wait().
  std::vector<at::Tensor> token{at::zeros({1}, at::kFloat)};
  collective(what, "barrier", token[0].nbytes(), [&] { return group_->allreduce(token); });
}

}  // namespace lethe::dist
