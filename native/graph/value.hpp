// Values that travel along workflow links and sit in widgets. Widget values (INT, FLOAT,
// STRING, BOOLEAN, COMBO) are JSON scalars; everything else is a typed object: tensors in
// ComfyUI layout (IMAGE [B, H, W, C] in [0, 1], MASK [B, H, W], LATENT, CONDITIONING) and Lethe's own objects
// (models, datasets, selections, objectives, descriptors, reports), which pass between
// Lethe nodes without conversion.
#pragma once

#include <any>
#include <memory>
#include <string>
#include <typeinfo>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace lethe::graph {

class Value {
 public:
  Value() = default;
  Value(std::string type, std::any payload) : type_(std::move(type)), payload_(std::move(payload)) {}
  static Value json(std::string type, nlohmann::json value) { return Value(std::move(type), std::any(std::move(value))); }
  static Value tensor(std::string type, at::Tensor value) { return Value(std::move(type), std::any(std::move(value))); }

  const std::string& type() const { return type_; }
  bool empty() const { return !payload_.has_value(); }
  bool is_json() const { return payload_.type() == typeid(nlohmann::json); }

  // The payload as T; a mismatch is an error naming `where` and both types.
  template <typename T>
  const T& as(const std::string& where) const {
    const T* value = std::any_cast<T>(&payload_);
    check(value != nullptr, where, ": expected a value of type ", type_, " holding ", typeid(T).name(), ", got ",
          payload_.has_value() ? payload_.type().name() : "nothing");
    return *value;
  }

 private:
  std::string type_;
  std::any payload_;
};

// Socket types of Lethe's own objects.
namespace types {
inline constexpr const char* kModel = "LETHE_MODEL";
inline constexpr const char* kDataset = "LETHE_DATASET";
inline constexpr const char* kTimesteps = "LETHE_TIMESTEPS";
inline constexpr const char* kFrequency = "LETHE_FREQUENCY";
inline constexpr const char* kObjective = "LETHE_OBJECTIVE";
inline constexpr const char* kDescriptor = "LETHE_DESCRIPTOR";
inline constexpr const char* kReport = "LETHE_REPORT";
inline constexpr const char* kImage = "IMAGE";
inline constexpr const char* kMask = "MASK";
inline constexpr const char* kLora = "LETHE_LORA";
// ComfyUI's own types as native code sees them (the pack converts at the boundary):
// LATENT = its "samples" tensor [B, C, h, w] (unscaled VAE latents); CONDITIONING = a
// models::Conditioning: the entries' cross-attention tensors concatenated [N, L, D], with
// their pooled outputs and SDXL size values where every entry has a pooled output (sizes the
// entry does not give are NaN until a node that knows the image size completes them).
inline constexpr const char* kLatent = "LATENT";
inline constexpr const char* kConditioning = "CONDITIONING";
// A ComfyUI MODEL (ModelPatcher) stays in Python: native code drives it through callbacks
// (models/host_model.hpp) and returns patches for it.
inline constexpr const char* kHostModel = "MODEL";
}  // namespace types

// Whether a type name is a widget (has a value in widgets_values) rather than a socket.
bool is_widget_type(const std::string& type);

}  // namespace lethe::graph
