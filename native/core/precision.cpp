#include "core/precision.hpp"

#include <optional>
#include <utility>

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/cpu/Utils.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/DeviceGuard.h>

#include "core/error.hpp"

namespace lethe {

namespace {

thread_local Precision thread_precision = Precision::fp32;

// Each precision with its setting name, in the order nodes show them.
constexpr std::pair<Precision, const char*> kNames[] = {
    {Precision::automatic, "auto"}, {Precision::fp32, "fp32"}, {Precision::bf16, "bf16"}, {Precision::fp16, "fp16"}};

bool cpu_flag(const std::string& name) {
  const auto capabilities = at::cpu::get_cpu_capabilities();
  const auto found = capabilities.find(name);
  return found != capabilities.end() && found->second.isBool() && found->second.toBool();
}

}  // namespace

const std::vector<std::string>& precision_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [precision, name] : kNames) out.emplace_back(name);
    return out;
  }();
  return names;
}

Precision parse_precision(const std::string& text, const std::string& where) {
  for (const auto& [precision, name] : kNames)
    if (text == name) return precision;
  throw Error(str(where, ": precision must be one of ", join(precision_names()), "; got '", text, "'"));
}

std::string precision_name(Precision precision) {
  for (const auto& [value, name] : kNames)
    if (value == precision) return name;
  return "fp32";
}

static std::optional<bool> cuda_has_bf16_tensor_cores(c10::Device device) {
  if (!device.is_cuda() || !at::hasCUDA()) return std::nullopt;
  const c10::DeviceGuard guard(device);
  // The device's compute capability is 8.0 or newer (Ampere on): bf16 tensor cores.
  return at::detail::getCUDAHooks().supportsBFloat16ConvolutionWithCuDNNv8();
}

ResolvedPrecision resolve_cuda_precision(std::optional<bool> bf16_tensor_cores) {
  if (!bf16_tensor_cores.has_value()) return {Precision::bf16, "auto: bf16 on a CUDA device"};
  if (*bf16_tensor_cores)
    return {Precision::bf16, "auto: bf16, the CUDA device has bf16 tensor cores (compute capability 8.0 or newer)"};
  return {Precision::fp16, "auto: fp16 with loss scaling, the CUDA device has no bf16 tensor cores (compute "
                           "capability below 8.0), where bf16 would not be faster"};
}

ResolvedPrecision resolve_precision(Precision requested, c10::Device device) {
  if (requested == Precision::fp32) return {Precision::fp32, "fp32 asked for"};
  if (requested == Precision::bf16) return {Precision::bf16, "bf16 asked for"};
  if (requested == Precision::fp16) return {Precision::fp16, "fp16 asked for (with loss scaling while training)"};
  if (device.is_cuda()) return resolve_cuda_precision(cuda_has_bf16_tensor_cores(device));
  if (cpu_flag("amx_bf16")) return {Precision::bf16, "auto: bf16, the CPU has AMX bf16 tiles (amx_bf16)"};
  if (cpu_flag("avx512_bf16"))
    return {Precision::bf16, "auto: bf16, the CPU has AVX-512 bf16 dot products (avx512_bf16)"};
  return {Precision::fp32, "auto: fp32, the CPU has neither AMX bf16 tiles (amx_bf16) nor AVX-512 bf16 dot products "
                           "(avx512_bf16), where bf16 would not be faster"};
}

ResolvedPrecision resolve_precision(const std::string& setting, const std::string& where, c10::Device device) {
  return resolve_precision(parse_precision(setting, where), device);
}

Precision current_precision() { return thread_precision; }

PrecisionScope::PrecisionScope(Precision resolved) : previous_(thread_precision) {
  check(resolved != Precision::automatic, "internal: a PrecisionScope needs a resolved precision, not auto");
  thread_precision = resolved;
}

PrecisionScope::~PrecisionScope() { thread_precision = previous_; }

at::ScalarType compute_dtype(Precision precision) {
  switch (precision) {
    case Precision::bf16: return at::kBFloat16;
    case Precision::fp16: return at::kHalf;
    default: return at::kFloat;
  }
}

ForwardAutocast::ForwardAutocast(c10::Device device) {
  if (thread_precision != Precision::bf16 && thread_precision != Precision::fp16) return;
  type_ = device.type();
  dtype_ = compute_dtype(thread_precision);
  previous_enabled_ = at::autocast::is_autocast_enabled(type_);
  previous_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, dtype_);
  at::autocast::increment_nesting();
  active_ = true;
}

ForwardAutocast::~ForwardAutocast() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(type_, previous_enabled_);
  at::autocast::set_autocast_dtype(type_, previous_dtype_);
}

}  // namespace lethe
