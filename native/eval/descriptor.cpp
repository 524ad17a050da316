#include "eval/descriptor.hpp"

#include <fstream>

#include <ATen/ATen.h>
#include <torch/script.h>

#include "core/error.hpp"
#include "data/image.hpp"
#include "io/hash.hpp"
#include "io/safetensors.hpp"
#include "models/copy_descriptor.hpp"

namespace lethe::eval {

namespace fs = std::filesystem;

at::Tensor sscd_official_preprocess(const at::Tensor& images) {
  check(images.dim() == 4 && (images.size(1) == 1 || images.size(1) == 3),
        "SSCD preprocessing: expected [N, 1 or 3, H, W] in [0, 1], got ", images.sizes());
  at::Tensor x = images.to(at::kFloat);
  if (x.size(1) == 1) x = x.expand({-1, 3, -1, -1});
  x = at::_upsample_bilinear2d_aa(x.contiguous(), {320, 320}, /*align_corners=*/false);  // [N, 3, 320, 320]
  at::Tensor mean = at::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  at::Tensor std = at::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  return (x - mean) / std;
}

namespace {

class TorchScriptDescriptor : public Descriptor {
 public:
  TorchScriptDescriptor(torch::jit::Module module, int64_t dim) : module_(std::move(module)), dim_(dim) {}
  at::Tensor embed(const at::Tensor& images) override {
    return module_.forward({sscd_official_preprocess(images)}).toTensor();
  }
  int64_t dim() const override { return dim_; }
  std::string kind() const override { return "torchscript"; }
  std::string preprocessing() const override {
    return "skew_320: grayscale->3 channels, bilinear antialiased resize to 320x320, ImageNet mean/std";
  }

 private:
  torch::jit::Module module_;
  int64_t dim_;
};

// Largest difference between the channels of a pixel still taken as gray (JPEG chroma noise).
constexpr double kGrayTolerance = 0.02;

class EmbeddedDescriptor : public Descriptor {
 public:
  explicit EmbeddedDescriptor(std::shared_ptr<models::CopyDescriptorImpl> model) : model_(std::move(model)) {}
  at::Tensor embed(const at::Tensor& images) override { return model_->embed(images); }
  int64_t dim() const override { return model_->config().embedding_dim; }
  std::string kind() const override { return "lethe-embedded"; }
  std::string preprocessing() const override {
    return str("grayscale, bilinear antialiased resize to ", model_->config().input_size, "x", model_->config().input_size,
               ", (x - 0.5) / 0.5");
  }
  // Trained on input_size x input_size grayscale images: other sizes or colour give scores that
  // mean nothing (two 512 px noise images scored 0.85).
  std::string unsuited_to(const at::Tensor& images) const override {
    const int64_t size = model_->config().input_size;
    if (images.size(2) != size || images.size(3) != size)
      return str("it was trained on ", size, "x", size, " grayscale images, got ", images.size(2), "x", images.size(3));
    if (images.size(1) == 3 && images.numel() > 0) {
      const double spread = (images.amax(1) - images.amin(1)).max().item<double>();  // 0 for gray in 3 channels
      if (spread > kGrayTolerance)
        return str("it was trained on grayscale images, got colour (channels differ by up to ", spread, ")");
    }
    return "";
  }

 private:
  std::shared_ptr<models::CopyDescriptorImpl> model_;
};

// Runs a probe batch and checks dimension and unit norm.
void check_output(Descriptor& descriptor, int64_t expected_dim, const std::string& where) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(0);
  at::Tensor probe = at::rand({2, 3, 64, 48}, generator, at::kFloat);
  at::Tensor out;
  {
    c10::InferenceMode inference;
    out = descriptor.embed(probe);
  }
  check(out.dim() == 2 && out.size(0) == 2, where, ": output must be [N, D], got ", out.sizes());
  check(out.size(1) == expected_dim, where, ": output has dimension ", out.size(1), ", expected ", expected_dim);
  const double worst = (out.norm(2, {1}) - 1.0).abs().max().item<double>();
  check(worst < 1e-3, where, ": output is not L2-normalised (|norm - 1| up to ", worst,
        "); SSCD descriptors end with F.normalize");
}

// Why torch::jit::load refused `path`, in words about the file (TorchScript files are zip archives).
std::string torchscript_problem(const fs::path& path) {
  std::error_code error;
  if (fs::file_size(path, error) == 0 && !error) return "the file is empty";
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, sizeof(magic));
  if (in.gcount() < 4 || std::string(magic, 4) != std::string("PK\x03\x04", 4))
    return "it is not a zip archive, which every TorchScript file is";
  return "a zip archive, but not one TorchScript can load: truncated, or written by another program";
}

}  // namespace

std::shared_ptr<Descriptor> load_descriptor(const fs::path& path, std::optional<int64_t> expected_dim) {
  const std::string where = str("descriptor '", path.string(), "'");
  check(fs::exists(path), where, ": file does not exist (looked for ", fs::absolute(path).lexically_normal().string(), ")",
        path.extension() == ".safetensors"
            ? std::string()
            : std::string(". The official SSCD models are TorchScript files released by the SSCD authors "
                          "(sscd_disc_mixup.torchscript.pt, linked from github.com/facebookresearch/sscd-copy-detection): "
                          "download one and put it at that path, or change the path"));
  std::shared_ptr<Descriptor> descriptor;
  int64_t dim = 0;
  if (path.extension() == ".safetensors") {
    auto model = models::CopyDescriptorImpl::load(path);
    model->eval();
    dim = expected_dim.value_or(model->config().embedding_dim);
    descriptor = std::make_shared<EmbeddedDescriptor>(model);
  } else {
    torch::jit::Module module;
    try {
      module = torch::jit::load(path.string());
    } catch (const c10::Error&) {  // torch's text speaks of miniz and archives: say what is wrong with the file
      throw Error(str(where, ": not a TorchScript file (", torchscript_problem(path),
                      "); expected an official SSCD *.torchscript.pt or a Lethe .safetensors descriptor"));
    }
    module.eval();
    const bool large = path.filename().string().find("large") != std::string::npos;
    dim = expected_dim.value_or(large ? 1024 : 512);
    descriptor = std::make_shared<TorchScriptDescriptor>(std::move(module), dim);
  }
  descriptor->path = path.string();
  descriptor->sha256 = io::sha256_file(path);
  check_output(*descriptor, dim, where);
  return descriptor;
}

std::string Descriptor::label() const {
  return path.empty() ? kind() : str(kind(), " ", fs::path(path).filename().string());
}

void check_suited(const Descriptor& descriptor, const at::Tensor& images, const std::string& where) {
  const std::string reason = descriptor.unsuited_to(images);
  check(reason.empty(), where, ": the descriptor ", descriptor.label(), " cannot judge these images: ", reason,
        ". For real images load the official SSCD model with Lethe Load SSCD Descriptor (source 'file', path "
        "models/sscd/sscd_disc_mixup.torchscript.pt)");
}

at::Tensor embed_batched(Descriptor& descriptor, const at::Tensor& images, int64_t batch_size) {
  c10::InferenceMode inference;
  std::vector<at::Tensor> parts;
  for (int64_t first = 0; first < images.size(0); first += batch_size)
    parts.push_back(descriptor.embed(images.narrow(0, first, std::min(batch_size, images.size(0) - first))));
  return parts.empty() ? at::empty({0, descriptor.dim()}) : at::cat(parts);
}

namespace {

std::vector<std::pair<std::string, std::function<std::shared_ptr<Descriptor>()>>>& named() {
  static std::vector<std::pair<std::string, std::function<std::shared_ptr<Descriptor>()>>> entries;
  return entries;
}

}  // namespace

void register_named_descriptor(const std::string& name, std::function<std::shared_ptr<Descriptor>()> load) {
  for (const auto& [known, loader] : named()) check(known != name, "descriptor '", name, "' is registered twice");
  named().emplace_back(name, std::move(load));
}

std::vector<std::string> named_descriptor_names() {
  std::vector<std::string> names;
  for (const auto& [name, loader] : named()) names.push_back(name);
  return names;
}

std::shared_ptr<Descriptor> named_descriptor(const std::string& name, const std::string& where) {
  for (const auto& [known, loader] : named())
    if (known == name) return loader();
  throw Error(str(where, ": no descriptor named '", name, "'; known: ",
                  named().empty() ? "none (connect a descriptor loaded from a file)" : join(named_descriptor_names())));
}

std::shared_ptr<Descriptor> default_descriptor(const std::string& where) {
  check(!named().empty(), where, ": no descriptor given and none is built in; connect Lethe Load SSCD Descriptor");
  return named().front().second();
}

}  // namespace lethe::eval
