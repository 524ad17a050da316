// One node per objective family; each outputs the objective's registry name and config.
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "unlearn/objective.hpp"

namespace lethe::graph::nodes {

namespace {

Value objective_value(const std::string& name, const nlohmann::json& config, const NodeInputs& in) {
  // Validate now (unknown names and out-of-range settings fail at this node, not later).
  auto objective = unlearn::make_objective(name, config, in.where("method"));
  return Value(types::kObjective, ObjectiveSpec{name, objective->config_json()});
}

NodeSchema objective_schema(const std::string& name, const std::string& display, const std::string& description) {
  NodeSchema schema;
  schema.name = name;
  schema.display_name = display;
  schema.category = "Lethe/objectives";
  schema.description = description;
  schema.outputs = {{"objective", types::kObjective, "the objective with its settings"}};
  return schema;
}

}  // namespace

void register_objective_nodes() {
  NodeSchema siss = objective_schema("LetheObjectiveSISS", "Lethe SISS Objective",
                                     "SISS (Alberti et al. 2025): importance-sampled data unlearning. The forget "
                                     "gradient is rescaled to scaling_norm and subtracted from the retain gradient.");
  siss.inputs = {combo_input("method", {"siss", "siss_no_is"}, "siss", "with importance sampling (one mixture forward) "
                                                                       "or without (two forwards)"),
                 float_input("lambda", 0.5, 0.01, 0.99, 0.01, "mixture weight: share of mixture samples from the forget set"),
                 float_input("scaling_norm", 30.0, 0.0, 10000.0, 0.1, "N_s: the forget gradient's norm after rescaling")};
  register_node(siss, [](NodeContext&, const NodeInputs& in) {
    return std::vector<Value>{objective_value(
        in.text("method"), {{"lambda", in.number("lambda")}, {"scaling_norm", in.number("scaling_norm")}}, in)};
  });

  NodeSchema baseline = objective_schema("LetheObjectiveBaseline", "Lethe Baseline Objective",
                                         "The SISS paper's baselines: NegGrad (gradient ascent on the forget set), naive "
                                         "deletion (fine-tune on the retain set) and EraseDiff.");
  baseline.inputs = {combo_input("method", {"neggrad", "naive_deletion", "erasediff"}, "neggrad", "which baseline"),
                     float_input("scale", 1.0, 0.0, 1000.0, 0.01, "NegGrad: the ascent scale s"),
                     float_input("eta", 1e-3, 0.0, 10.0, 1e-4, "EraseDiff: eta")};
  register_node(baseline, [](NodeContext&, const NodeInputs& in) {
    const std::string method = in.text("method");
    nlohmann::json config = nlohmann::json::object();
    if (method == "neggrad") config["scale"] = in.number("scale");
    if (method == "erasediff") config["eta"] = in.number("eta");
    return std::vector<Value>{objective_value(method, config, in)};
  });

  NodeSchema preference = objective_schema("LetheObjectivePreference", "Lethe Preference Objective (NPO / DPO)",
                                           "Preference objectives against a frozen copy of the starting model: NPO on "
                                           "the forget set, or Diffusion-DPO (forget = loser, retain = winner).");
  preference.inputs = {combo_input("method", {"npo", "dpo"}, "npo", "which objective"),
                       float_input("beta", 0.1, 1e-4, 100000.0, 0.01, "NPO beta (0.1) or DPO beta (5000, mean reduction)"),
                       float_input("beta_k", 2500.0, 1e-3, 1e7, 1.0, "NPO: beta * k, the ELBO-surrogate scale"),
                       float_input("retain_weight", 0.0, 0.0, 100.0, 0.01, "NPO: weight of a retain term (NPO+RT)")};
  register_node(preference, [](NodeContext&, const NodeInputs& in) {
    const std::string method = in.text("method");
    nlohmann::json config = {{"beta", in.number("beta")}};
    if (method == "npo") {
      config["beta_k"] = in.number("beta_k");
      config["retain_weight"] = in.number("retain_weight");
    }
    return std::vector<Value>{objective_value(method, config, in)};
  });

  NodeSchema divergence = objective_schema("LetheObjectiveFDivergence", "Lethe f-Divergence Objective (concept)",
                                           "Concept erasure (Novello et al.): pull the model's prediction under the "
                                           "erased concept towards the frozen model's under the anchor, with an "
                                           "f-divergence (mse = ESD/CA style).");
  divergence.inputs = {combo_input("divergence", {"js", "hellinger", "kl", "reverse_kl", "chi2", "mse", "alpha"}, "js",
                                   "which f-divergence"),
                       float_input("tau", 1.0, 1e-6, 1e6, 0.01, "temperature: q = mean squared gap / tau"),
                       bool_input("tau_auto", false, "set tau at the first step so the median q/4 is 1"),
                       float_input("alpha", 0.5, 0.01, 0.99, 0.01, "alpha divergence's alpha"),
                       float_input("preservation_weight", 0.0, 0.0, 100.0, 0.01,
                                   "weight of prior preservation on anchor images (Concept Ablation)")};
  register_node(divergence, [](NodeContext&, const NodeInputs& in) {
    nlohmann::json config = {{"divergence", in.text("divergence")},
                             {"tau", in.number("tau")},
                             {"tau_auto", in.flag("tau_auto")},
                             {"alpha", in.number("alpha")},
                             {"preservation_weight", in.number("preservation_weight")}};
    return std::vector<Value>{Value(types::kObjective,
                                    ObjectiveSpec{"f_divergence", unlearn::make_objective("f_divergence", config,
                                                                                          in.where("divergence"))
                                                                      ->config_json()})};
  });
}

}  // namespace lethe::graph::nodes
