// Compute precision of the denoiser: fp32, or mixed precision (autocast) in bf16 or fp16 with
// fp32 master weights. Only the model's forward runs under autocast; its output is cast back to
// the caller's dtype, so losses, importance weights, divergences, optimizer state and every
// reduction after the model stay fp32 by construction. Backward runs each op in the dtype
// its forward used. fp16 trains with dynamic loss scaling (core/loss_scaling.hpp): its 5
// exponent bits would flush small gradients to zero.
//
// An entry point (an unlearning run, sampling, an evaluation) resolves the setting once
// (`resolve_precision`) and holds a `PrecisionScope` while it works; models read the
// current precision of their thread (`current_precision`) and switch autocast on around
// their forward (`ForwardAutocast`). The setting is not stored in models, so a model shared
// between nodes is never changed by one of them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace lethe {

enum class Precision { automatic, fp32, bf16, fp16 };

// The default of every precision setting (runs, sampling, evaluation, their nodes): the
// machine's faster precision, since bf16 holds fp32's quality within its seed-to-seed spread
// (make precision-check, docs/performance.md §Quality parity).
inline constexpr const char* kDefaultPrecision = "auto";

// The one list of setting names, in the order nodes show them: "auto", "fp32", "bf16", "fp16".
const std::vector<std::string>& precision_names();
// One of precision_names(); anything else is an error naming `where`, the choices and what was
// given.
Precision parse_precision(const std::string& text, const std::string& where);
std::string precision_name(Precision precision);

struct ResolvedPrecision {
  Precision precision = Precision::fp32;  // fp32, bf16 or fp16, never automatic
  std::string reason;                     // one line: why (the CPU flags or the device)
};

// What `requested` means on `device`. auto: on a CUDA device bf16 where it has bf16 tensor cores
// (compute capability 8.0 on), else fp16 with loss scaling (Volta, Turing: fp16 tensor cores
// only); on a CPU bf16 with bf16 hardware: AMX bf16 tiles (cpuinfo's amx_bf16, where oneDNN's
// bf16 convolutions and matmuls ran 3-5x fp32) or AVX-512 bf16 dot products (avx512_bf16, e.g.
// AMD Zen 4: the bench step ran 1.5x fp32); fp32 elsewhere (without either, bf16 is converted in
// software and gains nothing; auto never picks fp16 on a CPU, where fp16 convolutions
// ran 12-26x slower than fp32 on an AVX2 CPU). bf16 or fp16 asked for explicitly is honoured
// anywhere (slow without hardware support).
ResolvedPrecision resolve_precision(Precision requested, c10::Device device = c10::kCPU);
// The same for a setting's text (parse_precision's errors name `where`).
ResolvedPrecision resolve_precision(const std::string& setting, const std::string& where,
                                    c10::Device device = c10::kCPU);

// auto on a CUDA device, given whether it has bf16 tensor cores (nullopt: not known, no CUDA in
// this process): bf16, or fp16 with loss scaling.
ResolvedPrecision resolve_cuda_precision(std::optional<bool> bf16_tensor_cores);

// The dtype a precision computes in: kFloat, kBFloat16 or kHalf.
c10::ScalarType compute_dtype(Precision precision);

// The precision models on this thread compute in (fp32 unless a PrecisionScope says otherwise).
Precision current_precision();

// Sets the calling thread's precision for its lifetime (nests; restores the previous one).
class PrecisionScope {
 public:
  explicit PrecisionScope(Precision resolved);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  Precision previous_;
};

// Autocast for one forward on `device` when the thread's precision is bf16 or fp16 (no-op in fp32).
// Restores the previous autocast state and drops autocast's weight-cast cache on exit, so
// weights changed by an optimizer step are cast afresh.
class ForwardAutocast {
 public:
  explicit ForwardAutocast(c10::Device device);
  ~ForwardAutocast();
  ForwardAutocast(const ForwardAutocast&) = delete;
  ForwardAutocast& operator=(const ForwardAutocast&) = delete;
  bool active() const { return active_; }
  c10::ScalarType dtype() const { return dtype_; }  // kFloat when not active

 private:
  bool active_ = false;
  c10::DeviceType type_ = c10::DeviceType::CPU;
  c10::ScalarType dtype_ = c10::ScalarType::Float;
  bool previous_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::Float;
};

}  // namespace lethe
