// Unlearning objectives: the loss terms of one (micro-)batch and how their gradients are
// combined. Objectives are created by name from a registry with a JSON config (unknown
// keys rejected); docs/methods.md gives every formula.
//
// The trainer calls, per optimizer step: begin_step, micro_step once per gradient-
// accumulation micro-batch (each accumulates into the parameters' .grad or the
// objective's own buffers), then finish_step, which leaves the final gradient in .grad.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "data/batching.hpp"
#include "diffusion/schedule.hpp"
#include "diffusion/timestep_distribution.hpp"
#include "models/denoiser.hpp"
#include "unlearn/example_set.hpp"
#include "unlearn/frequency_selection.hpp"
#include "unlearn/timestep_selection.hpp"

namespace lethe::models {
class DiffusionModel;
}
namespace lethe::dist {
class Group;
class GradientBuckets;
}

namespace lethe::unlearn {

using LossTerms = std::map<std::string, double>;

// What an unlearning run works on.
struct TaskData {
  ExampleSet forget;                        // data to remove (data unlearning)
  ExampleSet retain;                        // data to keep
  ExampleSet anchor;                        // concept unlearning: x_0 sources, with the anchor condition c
  std::vector<std::string> target_captions; // concept unlearning: the erased condition c* (1 or N)
  models::Conditioning target_conditioning; // ... or as host-encoded conditioning (1 or N rows)
};

// The state an objective sees. Streams of examples are deterministic (seeded batchers
// whose state the trainer checkpoints).
class ObjectiveContext {
 public:
  models::Denoiser* model = nullptr;        // trainable
  models::Denoiser* reference = nullptr;    // frozen copy of the starting model, when needed
  const diffusion::NoiseSchedule* schedule = nullptr;
  const TaskData* data = nullptr;
  const TimestepSelection* timesteps = nullptr;
  const diffusion::TimestepDistribution* distribution = nullptr;  // how t is drawn (null: uniform)
  const FrequencySelection* frequency = nullptr;
  at::Generator generator;                  // t, eps, Bernoulli draws
  int64_t batch_size = 1;                   // micro-batch size
  int64_t accumulation_steps = 1;
  int64_t step = 0;                         // optimizer step being computed
  double retain_caption_dropout = 0.0;      // next_retain: probability of a sample's caption becoming ""
  std::vector<at::Tensor> parameters;       // trainable tensors
  // The ranks of a data-parallel run (null: one process). Every rank draws the same global
  // batch; model and reference compute their share of each prediction (dist/sharded_denoiser.hpp)
  // and the trainer sums the parameters' gradients over the ranks after finish_step, unless they
  // were summed already (backward() below, or an objective that sums the gradients it combines
  // itself; either sets gradients_summed).
  const dist::Group* group = nullptr;
  bool gradients_summed = false;
  // The trainer's buckets of a data-parallel run (null otherwise): backward() sums the
  // gradients as the step's last backward runs.
  dist::GradientBuckets* buckets = nullptr;
  int64_t micro = 0;                        // the micro-batch being computed, 0 .. accumulation_steps - 1
  bool last_micro() const { return micro + 1 == accumulation_steps; }
  // Loss scaling (fp16, core/loss_scaling.hpp): every backward of the trained model back-propagates
  // loss * loss_scale (backward() below, or scaled() for objectives that run their own), so the
  // gradients are loss_scale times too large until divided. The trainer divides the parameters'
  // .grad after finish_step, unless the objective divided its sums itself (to combine gradients
  // by their norms) and set gradients_unscaled. 1 outside fp16.
  double loss_scale = 1.0;
  bool gradients_unscaled = false;
  at::Tensor scaled(const at::Tensor& loss) const { return loss_scale == 1.0 ? loss : loss * loss_scale; }
  // Back-propagates a micro-batch's loss (times loss_scale) into the trained parameters' .grad,
  // for objectives that do so once per micro-batch. In a data-parallel run, the last micro-batch's
  // backward sums the gradients over the ranks while it runs (overlapped,
  // dist/gradient_buckets.hpp) and marks them summed.
  void backward(const at::Tensor& loss);
  // Resolves captions to contexts (the embedded token encoder); host models give contexts.
  std::function<at::Tensor(const std::vector<std::string>&)> encode_captions;

  ExampleBatch next_forget();
  ExampleBatch next_retain();
  ExampleBatch next_anchor();
  // Conditioning for a batch: its own, or its encoded captions ({a|b} variants drawn per
  // sample from the run's generator).
  models::Conditioning context(const ExampleBatch& batch);
  // Conditioning of the erased concept c* for `count` samples ({a|b} caption variants are
  // drawn per sample).
  models::Conditioning target_context(int64_t count);
  // The empty prompt's conditioning for `count` samples: a set's precomputed one (anchor,
  // retain, forget, the first that has it), else the encoded empty caption.
  models::Conditioning empty_context(int64_t count);

  // Gaussian noise, and timesteps over the full range drawn from the run's distribution
  // (uniform without one), from the run's generator.
  at::Tensor noise_like(const at::Tensor& x);
  at::Tensor training_timesteps(int64_t count);

  // Batcher state (for checkpoints): name -> (epoch, position).
  std::map<std::string, data::Batcher::State> stream_states() const;
  void restore_streams(const std::map<std::string, data::Batcher::State>& states);
  void reset_streams(uint64_t seed);

 private:
  ExampleBatch next_from(const std::string& name, const ExampleSet& set);
  std::map<std::string, data::Batcher> batchers_;
  uint64_t seed_ = 0;
};

class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::string name() const = 0;
  virtual nlohmann::json config_json() const = 0;
  virtual bool needs_reference() const { return false; }
  virtual bool needs_forget() const { return false; }
  virtual bool needs_retain() const { return false; }
  virtual bool needs_anchor() const { return false; }
  virtual void begin_step(ObjectiveContext& context) {}
  // Computes one micro-batch: accumulates gradients, returns its loss terms (already
  // divided by the accumulation count, so the trainer sums them).
  virtual LossTerms micro_step(ObjectiveContext& context) = 0;
  // Combines what the micro-steps accumulated into the parameters' .grad; may add terms
  // (gradient norms, rescale factors).
  virtual void finish_step(ObjectiveContext& context, LossTerms& terms) {}
  // State that must survive a resume (e.g. a temperature fixed at step 0); saved in
  // training checkpoints.
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
  virtual void restore(const nlohmann::json& state) {}
  // The tensors of that state (a critic's weights and optimizer moments) by name, saved in
  // checkpoints as "objective/<name>"; restore_tensors gets them back after restore().
  virtual std::map<std::string, at::Tensor> tensor_state() const { return {}; }
  virtual void restore_tensors(const std::map<std::string, at::Tensor>& tensors, const std::string& where) {}
  // A closed-form edit instead of training (UCE): the run calls edit() once on its copy of the
  // model and trains nothing; edit() returns what it did, for the run's summary.
  virtual bool edits_in_closed_form() const { return false; }
  virtual nlohmann::json edit(models::DiffusionModel& model, const TaskData& data) { return nullptr; }
};

using ObjectiveFactory = std::function<std::unique_ptr<Objective>(const nlohmann::json& config, const std::string& where)>;

// Registry keyed by name. Unknown or duplicate names are errors listing the known ones.
void register_objective(const std::string& name, const std::string& description, ObjectiveFactory factory);
std::unique_ptr<Objective> make_objective(const std::string& name, const nlohmann::json& config = nlohmann::json::object(),
                                          const std::string& where = "objective");
std::vector<std::string> objective_names();
std::string objective_description(const std::string& name);
// Registers Lethe's built-in objectives (idempotent).
void register_builtin_objectives();

// ---- helpers shared by objectives ----

// Forget-term timesteps: drawn from the timestep selection's window (full range without
// one), and the per-sample forget weight m(t) (ones without a selection).
at::Tensor forget_timesteps(ObjectiveContext& context, int64_t count);
at::Tensor forget_time_weight(const ObjectiveContext& context, const at::Tensor& t);
// The frequency selection in force ("none" when the context has none).
const FrequencySelection& frequency_of(const ObjectiveContext& context);
// Elements per sample of x [B, ...].
int64_t elements_per_sample(const at::Tensor& x);
// Whether two batches carry the same conditions (so one forward can serve both).
bool same_condition(const ExampleBatch& a, const ExampleBatch& b);

// Per-sample forget-term error of a residual [B, C, H, W] -> [B]: the spatial masks
// multiply the residual, then the frequency selection's filtered energy (or sum_d r^2);
// `tau` [B] = t / (T - 1) for a time-dependent cutoff.
at::Tensor forget_error(const at::Tensor& residual, const at::Tensor& masks, const FrequencySelection& frequency,
                        const at::Tensor& tau = {});
// t / (T - 1) per sample, float [B] (what a time-dependent frequency cutoff reads).
at::Tensor time_fraction(const ObjectiveContext& context, const at::Tensor& t);

// .grad of each parameter, moved out (undefined grads become zeros); .grad is left undefined.
std::vector<at::Tensor> take_gradients(const std::vector<at::Tensor>& parameters);
// Adds `scale * buffers[i]` into parameters[i].grad.
void add_gradients(const std::vector<at::Tensor>& parameters, const std::vector<at::Tensor>& buffers, double scale);
// The L2 norm of all buffers together, accumulated in double.
double norm_of(const std::vector<at::Tensor>& buffers);
double dot_of(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b);
// norm_of the parameters' .grad (parameters without one count as zero).
double global_grad_norm(const std::vector<at::Tensor>& parameters);
// Scales every .grad by max_norm / (norm + 1e-6) when that is below 1 (`norm`: their
// global_grad_norm), as torch.nn.utils.clip_grad_norm_ does.
void clip_gradients(const std::vector<at::Tensor>& parameters, double norm, double max_norm);

}  // namespace lethe::unlearn
