#include "test_helpers.hpp"

#include <atomic>
#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"

namespace lethe::testing {

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = std::filesystem::temp_directory_path() /
          ("lethe-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

ScopedThreads::ScopedThreads(int threads) : old_(at::get_num_threads()) { at::set_num_threads(threads); }
ScopedThreads::~ScopedThreads() { at::set_num_threads(old_); }

void expect_error(const std::function<void()>& body, const std::vector<std::string>& fragments) {
  try {
    body();
  } catch (const lethe::Error& error) {
    const std::string message = error.what();
    for (const std::string& fragment : fragments)
      EXPECT_NE(message.find(fragment), std::string::npos) << "message: " << message << "\nmissing: " << fragment;
    return;
  }
  ADD_FAILURE() << "expected a lethe::Error mentioning '" << (fragments.empty() ? "" : fragments[0]) << "'";
}

models::UNetConfig tiny_unet_config() {
  models::UNetConfig config;
  config.in_channels = 1;
  config.out_channels = 1;
  config.model_channels = 8;
  config.channel_mult = {1, 2};
  config.num_res_blocks = 1;
  config.attention_levels = {1};
  config.context_dim = 8;
  config.num_heads = 2;
  config.norm_groups = 4;
  return config;
}

models::UNet perturbed_unet(const models::UNetConfig& config, uint64_t noise_seed, double scale) {
  models::UNet unet(config);
  unet->initialize(3);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(noise_seed);
  at::NoGradGuard no_grad;
  for (at::Tensor& parameter : unet->parameters()) parameter.add_(at::randn(parameter.sizes(), generator) * scale);
  return unet;
}

}  // namespace lethe::testing
