// One node per objective family; each outputs the objective's registry name and config,
// validated by the objective registry (unlearn/objective.hpp) when the node runs.
#include "core/text.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "unlearn/objective.hpp"

namespace lethe::graph::nodes {

namespace {

// Unknown names and out-of-range settings fail at this node, not later.
std::vector<Value> objective_value(const std::string& name, const nlohmann::json& config, const std::string& where) {
  auto objective = unlearn::make_objective(name, config, where);
  return {Value(types::kObjective, ObjectiveSpec{name, objective->config_json()})};
}

std::vector<Value> siss_objective(NodeContext&, const NodeInputs& in) {
  nlohmann::json config = {{"lambda", in.number("lambda")}, {"scaling_norm", in.number("scaling_norm")}};
  if (in.has("ablation_weight") && in.number("ablation_weight") > 0) {
    check(in.text("method") == "siss", in.where("ablation_weight"),
          ": caption ablation is implemented for method siss only (importance sampling), got method ", in.text("method"));
    config["ablation_weight"] = in.number("ablation_weight");
    config["ablation_words"] = word_list(in.has("ablation_words") ? in.text("ablation_words") : "");
    if (in.has("ablation_inputs")) config["ablation_inputs"] = in.text("ablation_inputs");
    if (in.has("preservation_weight")) config["preservation_weight"] = in.number("preservation_weight");
  }
  return objective_value(in.text("method"), config, in.where("method"));
}

std::vector<Value> baseline_objective(NodeContext&, const NodeInputs& in) {
  const std::string method = in.text("method");
  nlohmann::json config = nlohmann::json::object();
  if (method == "neggrad") config["scale"] = in.number("scale");
  if (method == "erasediff") config["eta"] = in.number("eta");
  return objective_value(method, config, in.where("method"));
}

// beta 0 leaves the method's own default: one widget serves NPO and DPO, whose betas differ by
// orders of magnitude, so no single number could be the widget's default for both.
std::vector<Value> preference_objective(NodeContext&, const NodeInputs& in) {
  const std::string method = in.text("method");
  nlohmann::json config = nlohmann::json::object();
  if (in.number("beta") > 0) config["beta"] = in.number("beta");
  if (method == "npo") {
    config["beta_k"] = in.number("beta_k");
    config["retain_weight"] = in.number("retain_weight");
  }
  return objective_value(method, config, in.where("method"));
}

std::vector<Value> divergence_objective(NodeContext&, const NodeInputs& in) {
  nlohmann::json config = {{"divergence", in.text("divergence")},
                           {"tau", in.number("tau")},
                           {"tau_auto", in.flag("tau_auto")},
                           {"alpha", in.number("alpha")},
                           {"preservation_weight", in.number("preservation_weight")}};
  if (in.has("form")) config["form"] = in.text("form");
  if (in.has("critic_learning_rate")) config["critic_learning_rate"] = in.number("critic_learning_rate");
  if (in.has("critic_warmup_steps")) config["critic_warmup_steps"] = in.integer("critic_warmup_steps");
  return objective_value("f_divergence", config, in.where("divergence"));
}

std::vector<Value> erasure_objective(NodeContext&, const NodeInputs& in) {
  const std::string method = in.text("method");
  if (method == "uce") {
    nlohmann::json config = {{"lambda", in.number("lambda")}, {"preserve_scale", in.number("preserve_scale")}};
    if (in.has("uce_rows")) config["rows"] = in.text("uce_rows");
    return objective_value(method, config, in.where("method"));
  }
  return objective_value(method,
                         {{"negative_guidance", in.number("negative_guidance")},
                          {"x_t", in.text("x_t")},
                          {"sampling_steps", in.integer("sampling_steps")},
                          {"start_guidance", in.number("start_guidance")}},
                         in.where("method"));
}

}  // namespace

void register_objective_nodes() {
  register_table_node("LetheObjectiveSISS", siss_objective);
  register_table_node("LetheObjectiveBaseline", baseline_objective);
  register_table_node("LetheObjectivePreference", preference_objective);
  register_table_node("LetheObjectiveFDivergence", divergence_objective);
  register_table_node("LetheObjectiveErasure", erasure_objective);
}

}  // namespace lethe::graph::nodes
