#include "unlearn/objective.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"
#include "dist/gradient_buckets.hpp"
#include "dist/group.hpp"
#include "unlearn/caption_variants.hpp"

namespace lethe::unlearn {

namespace {

struct Entry {
  std::string description;
  ObjectiveFactory factory;
};

std::map<std::string, Entry>& objective_registry() {
  static std::map<std::string, Entry> registry;
  return registry;
}

std::vector<std::string> registered_objective_names() {
  std::vector<std::string> names;
  for (const auto& [name, entry] : objective_registry()) names.push_back(name);
  return names;
}

}  // namespace

void register_objective(const std::string& name, const std::string& description, ObjectiveFactory factory) {
  auto& registry = objective_registry();
  check(!registry.count(name), "objective '", name, "' is registered twice; known objectives: ",
        join(registered_objective_names()));
  registry.emplace(name, Entry{description, std::move(factory)});
}

std::vector<std::string> objective_names() {
  register_builtin_objectives();
  return registered_objective_names();
}

std::string objective_description(const std::string& name) {
  register_builtin_objectives();
  auto found = objective_registry().find(name);
  check(found != objective_registry().end(), "unknown objective '", name, "'; known: ", join(objective_names()));
  return found->second.description;
}

std::unique_ptr<Objective> make_objective(const std::string& name, const nlohmann::json& config, const std::string& where) {
  register_builtin_objectives();
  auto found = objective_registry().find(name);
  check(found != objective_registry().end(), where, ": unknown objective '", name, "'; known: ", join(objective_names()));
  return found->second.factory(config.is_null() ? nlohmann::json::object() : config, where);
}

// ---------------------------------------------------------------- context
ExampleBatch ObjectiveContext::next_from(const std::string& name, const ExampleSet& set) {
  check(!set.empty(), "this objective needs a ", name, " set, but it is empty");
  auto found = batchers_.find(name);
  if (found == batchers_.end()) {
    const uint64_t stream = name == "forget" ? 1 : name == "retain" ? 2 : 3;
    found = batchers_.emplace(name, data::Batcher(set.size(), batch_size, seed_ * 1000003ULL + stream)).first;
  }
  return set.batch(found->second.next());
}

ExampleBatch ObjectiveContext::next_forget() { return next_from("forget", data->forget); }
ExampleBatch ObjectiveContext::next_retain() {
  ExampleBatch batch = next_from("retain", data->retain);
  if (retain_caption_dropout > 0 && batch.conditioning.defined()) {
    // Precomputed conditioning: dropped rows take the empty prompt's (context and pooled
    // output; sizes belong to the image and stay).
    const models::Conditioning& empty = data->retain.empty_conditioning;
    check(empty.defined(), "trainer.retain_caption_dropout = ", retain_caption_dropout,
          ": the retain set has precomputed conditioning but no empty prompt's conditioning (give it, or set the "
          "dropout to 0)");
    at::Tensor drop = at::rand({batch.size()}, generator, at::kDouble) < retain_caption_dropout;  // [B]
    const at::Tensor sizes = batch.conditioning.sizes;
    batch.conditioning = batch.conditioning.where(drop, empty);
    batch.conditioning.sizes = sizes;
  } else if (retain_caption_dropout > 0) {
    at::Tensor drop = at::rand({batch.size()}, generator, at::kDouble) < retain_caption_dropout;  // [B]
    auto dropped = drop.accessor<bool, 1>();
    for (int64_t i = 0; i < batch.size(); ++i)
      if (dropped[i]) batch.captions[i].clear();
  }
  return batch;
}
ExampleBatch ObjectiveContext::next_anchor() { return next_from("anchor", data->anchor); }

models::Conditioning ObjectiveContext::context(const ExampleBatch& batch) {
  if (batch.conditioning.defined()) return batch.conditioning;
  check(static_cast<bool>(encode_captions), "captions given but this model has no text encoder");
  std::vector<std::string> captions;
  captions.reserve(batch.captions.size());
  for (const std::string& caption : batch.captions) captions.push_back(choose_caption_variant(caption, generator));
  return encode_captions(captions);
}

models::Conditioning ObjectiveContext::target_context(int64_t count) {
  if (data->target_conditioning.defined()) {
    const models::Conditioning& target = data->target_conditioning;
    return target.size() == 1 ? target.expand(count) : target.first(count);
  }
  check(!data->target_captions.empty(), "concept unlearning needs a target caption (the concept to erase)");
  std::vector<std::string> captions;
  for (int64_t i = 0; i < count; ++i)
    captions.push_back(choose_caption_variant(data->target_captions[i % data->target_captions.size()], generator));
  return encode_captions(captions);
}

models::Conditioning ObjectiveContext::empty_context(int64_t count) {
  for (const ExampleSet* set : {&data->anchor, &data->retain, &data->forget})
    if (set->empty_conditioning.defined()) return set->empty_conditioning.expand(count);
  check(static_cast<bool>(encode_captions), "this objective needs the empty prompt's conditioning: give the data "
                                            "set's empty conditioning (host models) or use a model with a text encoder");
  return encode_captions(std::vector<std::string>(static_cast<size_t>(count), ""));
}

at::Tensor ObjectiveContext::noise_like(const at::Tensor& x) {
  return at::randn(x.sizes(), generator, at::kFloat).to(x.options());
}

at::Tensor ObjectiveContext::training_timesteps(int64_t count) {
  if (distribution != nullptr) return distribution->sample(count, generator);
  return at::randint(0, schedule->num_timesteps(), {count}, generator, at::kLong);
}

std::map<std::string, data::Batcher::State> ObjectiveContext::stream_states() const {
  std::map<std::string, data::Batcher::State> out;
  for (const auto& [name, batcher] : batchers_) out[name] = batcher.state();
  return out;
}

void ObjectiveContext::restore_streams(const std::map<std::string, data::Batcher::State>& states) {
  for (const auto& [name, state] : states) {
    const ExampleSet& set = name == "forget" ? data->forget : name == "retain" ? data->retain : data->anchor;
    next_from(name, set);  // creates the batcher
    batchers_.at(name).restore(state);
  }
}

void ObjectiveContext::reset_streams(uint64_t seed) {
  batchers_.clear();
  seed_ = seed;
}

// ---------------------------------------------------------------- helpers
at::Tensor forget_timesteps(ObjectiveContext& context, int64_t count) {
  return context.timesteps ? context.timesteps->sample(count, context.generator) : context.training_timesteps(count);
}

at::Tensor forget_time_weight(const ObjectiveContext& context, const at::Tensor& t) {
  return context.timesteps ? context.timesteps->weight(t) : at::ones({t.size(0)});
}

const FrequencySelection& frequency_of(const ObjectiveContext& context) {
  static const FrequencySelection none{FrequencySelectionConfig{}};
  return context.frequency ? *context.frequency : none;
}

int64_t elements_per_sample(const at::Tensor& x) { return x.numel() / std::max<int64_t>(1, x.size(0)); }

bool same_condition(const ExampleBatch& a, const ExampleBatch& b) {
  if (a.conditioning.defined() || b.conditioning.defined())
    return a.conditioning.defined() && b.conditioning.defined() && a.conditioning.equal(b.conditioning);
  return a.captions == b.captions;
}

at::Tensor time_fraction(const ObjectiveContext& context, const at::Tensor& t) {
  return t.to(at::kFloat) / static_cast<double>(std::max<int64_t>(context.schedule->num_timesteps() - 1, 1));
}

at::Tensor forget_error(const at::Tensor& residual, const at::Tensor& masks, const FrequencySelection& frequency,
                        const at::Tensor& tau) {
  at::Tensor masked = masks.defined() ? residual * masks.to(residual.dtype()) : residual;  // [B, C, H, W]
  return frequency.filtered_energy(masked, tau);                                              // [B]
}

std::vector<at::Tensor> take_gradients(const std::vector<at::Tensor>& parameters) {
  std::vector<at::Tensor> out;
  out.reserve(parameters.size());
  for (const at::Tensor& parameter : parameters) {
    at::Tensor grad = parameter.grad();
    out.push_back(grad.defined() ? grad : at::zeros_like(parameter));
    parameter.mutable_grad().reset();  // the next backward allocates a fresh one
  }
  return out;
}

void add_gradients(const std::vector<at::Tensor>& parameters, const std::vector<at::Tensor>& buffers, double scale) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters.size(); ++i) {
    at::Tensor parameter = parameters[i];
    if (!parameter.grad().defined()) parameter.mutable_grad() = at::zeros_like(parameter);
    parameter.mutable_grad().add_(buffers[i], scale);
  }
}

void ObjectiveContext::backward(const at::Tensor& loss) {
  if (!buckets || !last_micro()) {
    scaled(loss).backward();
    return;
  }
  buckets->arm();
  scaled(loss).backward();
  buckets->finish();
  gradients_summed = true;
}

double norm_of(const std::vector<at::Tensor>& buffers) {
  if (buffers.empty()) return 0.0;
  at::NoGradGuard no_grad;
  // One multi-tensor call: each buffer's norm in double, then their root sum of squares.
  return at::stack(at::_foreach_norm(buffers, 2, at::kDouble)).pow(2).sum().sqrt().item<double>();
}

double dot_of(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double total = 0;
  for (size_t i = 0; i < a.size(); ++i) total += (a[i].to(at::kDouble) * b[i].to(at::kDouble)).sum().item<double>();
  return total;
}

double global_grad_norm(const std::vector<at::Tensor>& parameters) {
  std::vector<at::Tensor> grads;
  for (const at::Tensor& parameter : parameters)
    if (parameter.grad().defined()) grads.push_back(parameter.grad());
  return norm_of(grads);
}

void clip_gradients(const std::vector<at::Tensor>& parameters, double norm, double max_norm) {
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient >= 1.0) return;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const at::Tensor& parameter : parameters)
    if (parameter.grad().defined()) grads.push_back(parameter.grad());
  at::_foreach_mul_(grads, coefficient);
}

}  // namespace lethe::unlearn
