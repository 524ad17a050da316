// Time and frequency selection nodes; each previews what it selects.
#include <ATen/ATen.h>

#include "diffusion/schedule.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "unlearn/frequency_selection.hpp"
#include "unlearn/timestep_selection.hpp"

namespace lethe::graph::nodes {

namespace {

std::vector<Value> select_timesteps(NodeContext& context, const NodeInputs& in) {
  unlearn::TimestepSelectionConfig config;
  config.t_min = in.integer("t_min");
  config.t_max = in.integer("t_max");
  config.weighting = in.text("weighting");
  if (in.has("sigma_min")) config.sigma_min = in.number("sigma_min");
  if (in.has("sigma_max")) config.sigma_max = in.number("sigma_max");
  config.validate(in.where(config.in_sigma() ? "sigma_max" : "t_min"));
  // A window in noise levels: the preview shows it on Stable Diffusion's schedule (SD1.x/2.x,
  // SDXL); each unlearn node resolves it for its own model and says which t it became.
  const diffusion::NoiseSchedule schedule = config.in_sigma()
                                                ? diffusion::NoiseSchedule(diffusion::ScheduleConfig::stable_diffusion())
                                                : diffusion::NoiseSchedule{};
  unlearn::TimestepSelection selection(config, schedule);
  if (config.in_sigma())
    context.texts.push_back(str("window in noise levels sigma [", config.sigma_min, ", ", config.sigma_max,
                                "]: on SD1.x/SDXL's schedule t [", selection.config().t_min, ", ",
                                selection.config().t_max, "); the unlearn node resolves it for its model"));
  return {Value(types::kTimesteps, config), image_value(selection.draw_weights())};
}

std::vector<Value> select_frequencies(NodeContext&, const NodeInputs& in) {
  unlearn::FrequencySelectionConfig config;
  config.filter = in.text("filter");
  config.shape = in.text("shape");
  config.profile = in.text("profile");
  config.cutoff = in.number("cutoff");
  config.cutoff_high = in.number("cutoff_high");
  config.order = in.integer("order");
  if (in.has("cutoff_end")) config.cutoff_end = in.number("cutoff_end");
  unlearn::FrequencySelection selection(config);
  const int64_t size = in.integer("preview_size");
  return {Value(types::kFrequency, config), image_value(selection.preview(size, size).unsqueeze(0))};  // [1, 1, S, S or 2S+2]
}

}  // namespace

void register_selection_nodes() {
  register_table_node("LetheTimestepSelection", select_timesteps);
  register_table_node("LetheFrequencySelection", select_frequencies);
}

}  // namespace lethe::graph::nodes
