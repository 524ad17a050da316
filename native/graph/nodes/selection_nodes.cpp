// Time and frequency selection nodes; each previews what it selects.
#include <ATen/ATen.h>

#include "diffusion/schedule.hpp"
#include "draw/canvas.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "unlearn/frequency_selection.hpp"
#include "unlearn/timestep_selection.hpp"

namespace lethe::graph::nodes {

namespace {

at::Tensor canvas_image(const draw::Canvas& canvas) { return canvas.tensor().unsqueeze(0); }  // [1, 3, H, W]

}  // namespace

void register_selection_nodes() {
  NodeSchema timesteps;
  timesteps.name = "LetheTimestepSelection";
  timesteps.display_name = "Lethe Timestep Selection";
  timesteps.category = "Lethe/selection";
  timesteps.description = "Forget only inside a window of diffusion timesteps [t_min, t_max), optionally weighted "
                          "(the retain term keeps the full range). Paper (a): [250, 750) for pixel models, [750, 1000) "
                          "for SD latents.";
  timesteps.inputs = {int_input("t_min", 250, 0, 999, "first timestep of the window (0 = least noisy)"),
                      int_input("t_max", 750, 1, 1000, "end of the window (exclusive)"),
                      combo_input("weighting", {"uniform", "snr", "min_snr", "hann"}, "uniform",
                                  "weighting over t inside the window (mean 1)")};
  timesteps.outputs = {{"timesteps", types::kTimesteps, "the timestep selection"},
                       {"preview", types::kImage, "the forget weight over t"}};
  register_node(timesteps, [](NodeContext&, const NodeInputs& in) {
    unlearn::TimestepSelectionConfig config;
    config.t_min = in.integer("t_min");
    config.t_max = in.integer("t_max");
    config.weighting = in.text("weighting");
    config.validate(in.where("t_min"));
    unlearn::TimestepSelection selection(config, diffusion::NoiseSchedule{});
    std::vector<double> weights(selection.table().data_ptr<float>(),
                                selection.table().data_ptr<float>() + selection.table().numel());
    draw::Canvas canvas(520, 260);
    draw::draw_line_chart(canvas, {6, 6, 508, 248}, "forget weight m(t)", {{"m(t)", weights, {}}}, "t");
    return std::vector<Value>{Value(types::kTimesteps, config), Value::tensor(types::kImage,
                                                                               to_comfy_image(canvas_image(canvas)))};
  });

  NodeSchema frequency;
  frequency.name = "LetheFrequencySelection";
  frequency.display_name = "Lethe Frequency Selection";
  frequency.category = "Lethe/selection";
  frequency.description = "Forget only some spatial frequencies of the residual (2-D FFT mask on pixels or latents). "
                          "Paper (a): a hard low-pass keeps unlearning artifacts out of high-frequency detail.";
  frequency.inputs = {combo_input("filter", {"lowpass", "highpass", "bandpass", "none"}, "lowpass", "which band to forget"),
                      combo_input("shape", {"radial", "square"}, "radial", "radial |f| or square max(|fx|, |fy|)"),
                      combo_input("profile", {"hard", "butterworth", "gaussian"}, "hard", "edge of the mask"),
                      float_input("cutoff", 0.5, 0.01, 2.0, 0.01, "edge as a fraction of Nyquist (low edge for band-pass)"),
                      float_input("cutoff_high", 1.0, 0.01, 2.0, 0.01, "band-pass upper edge (fraction of Nyquist)"),
                      int_input("order", 2, 1, 16, "Butterworth order"),
                      int_input("preview_size", 28, 4, 256, "size of the mask preview (the data's H = W)")};
  frequency.outputs = {{"frequency", types::kFrequency, "the frequency selection"},
                       {"mask", types::kImage, "the mask, zero frequency at the centre"}};
  register_node(frequency, [](NodeContext&, const NodeInputs& in) {
    unlearn::FrequencySelectionConfig config;
    config.filter = in.text("filter");
    config.shape = in.text("shape");
    config.profile = in.text("profile");
    config.cutoff = in.number("cutoff");
    config.cutoff_high = in.number("cutoff_high");
    config.order = in.integer("order");
    unlearn::FrequencySelection selection(config);
    const int64_t size = in.integer("preview_size");
    at::Tensor mask = selection.mask_image(size, size).unsqueeze(0);  // [1, 1, S, S]
    return std::vector<Value>{Value(types::kFrequency, config), image_value(mask)};
  });
}

}  // namespace lethe::graph::nodes
