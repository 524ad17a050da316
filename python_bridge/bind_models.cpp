#include "bindings.hpp"
#include <ATen/CPUGeneratorImpl.h>

#include "models/lora_kohya.hpp"
#include "models/patch_critic.hpp"
#include "io/json_config.hpp"
#include "models/sdxl_vector.hpp"
#include "models/state_dict.hpp"
#include "models/unet_file.hpp"
#include "models/unet_memory.hpp"

namespace lethe::bridge {

void bind_models(py::module_& m) {
  using models::UNetImpl;
  m.def(
      "detect_unet_config",
      [](const models::ShapeTable& shapes, std::optional<int64_t> num_heads, std::optional<int64_t> num_head_channels,
         std::optional<int64_t> norm_groups) {
        return io::to_json(models::detect_unet_config(shapes, {num_heads, num_head_channels, norm_groups}, "shape table"))
            .dump();
      },
      py::arg("shapes"), py::arg("num_heads") = py::none(), py::arg("num_head_channels") = py::none(),
      py::arg("norm_groups") = py::none(), "Detect the UNet config (JSON) from a {key: shape} table.");

  py::class_<models::PatchCritic>(m, "PatchCritic", "The variational f-divergence objective's critic.")
      .def(py::init([](int64_t input_channels, int64_t channels, int64_t layers, bool spectral_norm, uint64_t seed) {
             return models::PatchCritic(input_channels, {channels, layers, spectral_norm},
                                        at::make_generator<at::CPUGeneratorImpl>(seed));
           }),
           py::arg("input_channels"), py::arg("channels") = 64, py::arg("layers") = 3, py::arg("spectral_norm") = true,
           py::arg("seed") = 0)
      .def("forward", &models::PatchCritic::forward, py::arg("x"), py::arg("mask"), py::arg("update"),
           "Patch logits [B, 1, h, w]; update: a training forward (one power iteration).")
      .def("state", &models::PatchCritic::state, "Weights, biases and u/v vectors by name.")
      .def("parameters", &models::PatchCritic::parameters, "The trainable tensors (live, they require grad).");

  py::class_<UNetImpl, std::shared_ptr<UNetImpl>>(m, "UNet", "The native LDM-layout UNet.")
      .def_static(
          "create",
          [](const std::string& config_json, uint64_t seed) {
            auto config = io::read_config<models::UNetConfig>(io::parse_json(config_json, "UNet config"), "UNet config");
            auto unet = models::UNet(config);
            unet->initialize(seed);
            return unet.ptr();
          },
          py::arg("config_json"), py::arg("seed") = 0, "A freshly initialised UNet from a JSON config.")
      .def_static(
          "load",
          [](const std::string& path, std::optional<int64_t> num_heads, std::optional<int64_t> num_head_channels,
             std::optional<int64_t> norm_groups) {
            models::UNetHints hints{num_heads, num_head_channels, norm_groups};
            py::gil_scoped_release release;
            return models::load_unet(path, hints).unet.ptr();
          },
          py::arg("path"), py::arg("num_heads") = py::none(), py::arg("num_head_channels") = py::none(),
          py::arg("norm_groups") = py::none(),
          "Load the UNet of a .safetensors checkpoint strictly, config detected from the weights.")
      .def(
          "forward",
          [](UNetImpl& self, const at::Tensor& x, const at::Tensor& t, const at::Tensor& context,
             std::optional<at::Tensor> y) {
            py::gil_scoped_release release;
            return self.forward(x, t, context, y.value_or(at::Tensor()));
          },
          py::arg("x"), py::arg("t"), py::arg("context"), py::arg("y") = py::none(),
          "x_t [B,C,H,W], t [B], context [B,L,D], y [B,adm_in_channels] (SDXL only) -> [B,C,H,W]")
      .def("config_json", [](const UNetImpl& self) { return io::to_json(self.config()).dump(); })
      .def("state_dict", [](const UNetImpl& self) { return models::state_dict(self); },
           "Detached views of the weights, by checkpoint key.")
      .def(
          "named_parameters",
          [](const UNetImpl& self) {
            std::map<std::string, at::Tensor> out;
            for (const auto& item : self.named_parameters()) out[item.key()] = item.value();
            return out;
          },
          "The parameter tensors themselves (they carry .grad after backward).")
      .def_readwrite("gradient_checkpointing", &UNetImpl::gradient_checkpointing);

  m.def(
      "unet_inference_bytes",
      [](const std::string& config_json, int64_t batch, int64_t height, int64_t width) {
        auto config = io::read_config<models::UNetConfig>(io::parse_json(config_json, "UNet config"), "UNet config");
        return models::unet_inference_bytes(config, batch, height, width);
      },
      py::arg("config_json"), py::arg("batch"), py::arg("height"), py::arg("width"),
      "The estimated peak activation bytes of one fp32 forward pass without autograd (the sampling guard's estimate).");

  m.def(
      "sdxl_vector",
      [](const at::Tensor& pooled, const at::Tensor& sizes, int64_t size_embedding_dim) {
        return models::sdxl_vector(pooled, sizes, size_embedding_dim);
      },
      py::arg("pooled"), py::arg("sizes"), py::arg("size_embedding_dim") = models::kSdxlSizeEmbeddingDim,
      "SDXL's y: pooled [B,P] and sizes [B,6] (height, width, crop top, crop left, target height, target width) -> "
      "[B, P + 6 size_embedding_dim].");

  m.def("complete_sdxl_sizes", &models::complete_sdxl_sizes, py::arg("sizes"), py::arg("height"), py::arg("width"),
        "SDXL sizes [B,6] with NaN where a prompt gave none -> [B,6] as ComfyUI completes them for an image of "
        "height x width pixels (height/width the image's, crops 0, target = height/width).");

  m.def(
      "kohya_module_name",
      [](const std::string& ldm_path, const std::string& config_json) {
        auto config = io::read_config<models::UNetConfig>(io::parse_json(config_json, "UNet config"), "UNet config");
        return models::kohya_module_name(ldm_path, config);
      },
      py::arg("ldm_path"), py::arg("config_json"),
      "The kohya LoRA name (lora_unet_<diffusers path>) of an LDM UNet module path, for a UNet config.");
}

}  // namespace lethe::bridge
