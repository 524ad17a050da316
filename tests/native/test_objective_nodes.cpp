// Objective nodes (graph/nodes/objective_nodes.cpp): what a node's widgets become in the
// objective's config.
#include <gtest/gtest.h>

#include "graph/node_registry.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "unlearn/objective.hpp"

namespace lethe {
namespace {

// The objective config LetheObjectivePreference gives for `method` with the beta widget at `beta`
// (the other widgets at their schema defaults).
nlohmann::json preference_config(const std::string& method, double beta) {
  const graph::NodeSchema& schema = graph::node_schema("LetheObjectivePreference");
  std::map<std::string, graph::Value> values;
  for (const auto& input : schema.inputs)
    if (input.is_widget()) values[input.name] = graph::Value::json(input.type, input.default_value);
  values["method"] = graph::Value::json("COMBO", method);
  values["beta"] = graph::Value::json("FLOAT", beta);
  graph::NodeContext context;
  context.node_id = "4";
  const auto outputs = graph::run_node("LetheObjectivePreference", context, graph::NodeInputs(schema, values, "4"));
  return outputs.at(0).as<graph::nodes::ObjectiveSpec>("objective").config;
}

double default_beta(const std::string& method) {
  return unlearn::make_objective(method, nlohmann::json::object(), "test")->config_json().at("beta").get<double>();
}

}  // namespace

TEST(ObjectiveNodes, ThePreferenceNodesBetaZeroIsTheChosenMethodsOwnDefault) {
  // One widget serves both methods, whose defaults are orders of magnitude apart: a DPO node left
  // at the widget's default must not run with NPO's beta.
  ASSERT_GT(default_beta("dpo") / default_beta("npo"), 100.0);
  EXPECT_EQ(preference_config("dpo", 0.0).at("beta").get<double>(), default_beta("dpo"));
  EXPECT_EQ(preference_config("npo", 0.0).at("beta").get<double>(), default_beta("npo"));
  // A beta the user sets is used as given.
  EXPECT_EQ(preference_config("dpo", 2500.0).at("beta").get<double>(), 2500.0);
  EXPECT_EQ(preference_config("npo", 0.5).at("beta").get<double>(), 0.5);
}

}  // namespace lethe
