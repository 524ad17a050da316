// Node schema tables (graph/node_table.hpp): what a table entry becomes, where defaults and
// options come from, and the errors that name the node, the input and what was wrong.
#include <gtest/gtest.h>

#include <limits>

#include "graph/node_table.hpp"
#include "test_helpers.hpp"

using lethe::graph::NodeTable;
using lethe::graph::NodeTableValues;
using lethe::testing::expect_error;

namespace {

NodeTableValues values() {
  NodeTableValues v;
  v.defaults = {{"trainer", {{"steps", 160}, {"rate", 3e-5}}}};
  v.option_lists = {{"colors", {"red", "green"}}};
  return v;
}

// A one-node table with `inputs` (JSON text of the list).
NodeTable table_with(const std::string& inputs) {
  return NodeTable(R"({"LetheProbe": {"category": "Lethe/test", "inputs": )" + inputs + "}}", "probe.json", values());
}

}  // namespace

TEST(NodeTable, AnEntryBecomesTheSchemaWithCommentsAllowed) {
  NodeTable table(R"(// a comment
    {"LetheProbe": {"display_name": "Probe", "category": "Lethe/test", "description": "d", "output_node": true,
      "inputs": [{"name": "model", "type": "LETHE_MODEL", "tooltip": "m"},
                 {"name": "steps", "type": "INT", "default": 3, "min": 1, "max": 9, "tooltip": "s"},
                 {"name": "mode", "type": "COMBO", "options": ["a", "b"], "default": "b"},
                 {"name": "prompt", "type": "STRING", "required": false, "force_input": true}],
      "outputs": [{"name": "out", "type": "IMAGE", "tooltip": "o"}]}})",
                  "probe.json", values());
  const auto& schema = table.schema("LetheProbe");
  EXPECT_EQ(schema.display_name, "Probe");
  EXPECT_TRUE(schema.output_node);
  EXPECT_FALSE(schema.headless_only);
  ASSERT_EQ(schema.inputs.size(), 4u);
  EXPECT_FALSE(schema.inputs[0].is_widget());
  EXPECT_EQ(schema.inputs[1].default_value, 3);
  EXPECT_EQ(*schema.inputs[1].step, 1.0);  // INT steps by 1 unless told
  EXPECT_EQ(schema.inputs[2].options, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(schema.inputs[2].default_value, "b");
  EXPECT_FALSE(schema.inputs[3].required);
  EXPECT_FALSE(schema.inputs[3].is_widget());
  ASSERT_EQ(schema.outputs.size(), 1u);
  EXPECT_EQ(schema.outputs[0].type, "IMAGE");
}

TEST(NodeTable, DefaultsAndOptionsComeFromTheCodeWhenTheTableSaysSo) {
  const auto schema = table_with(R"([{"name": "steps", "type": "INT", "default_from": "/trainer/steps", "min": 1, "max": 1000},
                                     {"name": "rate", "type": "FLOAT", "default_from": "/trainer/rate", "min": 0, "max": 1, "step": 1e-6},
                                     {"name": "color", "type": "COMBO", "options_from": "colors"},
                                     {"name": "seed", "type": "INT", "seed": true}])")
                         .schema("LetheProbe");
  EXPECT_EQ(schema.inputs[0].default_value, 160);
  EXPECT_EQ(schema.inputs[1].default_value, 3e-5);
  EXPECT_EQ(schema.inputs[2].options, (std::vector<std::string>{"red", "green"}));
  EXPECT_EQ(schema.inputs[2].default_value, "red");  // the first option unless told
  EXPECT_TRUE(schema.inputs[3].seed);
  EXPECT_EQ(schema.inputs[3].default_value, 0);
  EXPECT_EQ(*schema.inputs[3].max, static_cast<double>(std::numeric_limits<int64_t>::max()));
}

TEST(NodeTable, MistakesAreErrorsNamingTheNodeAndInput) {
  expect_error([] { table_with(R"([{"name": "steps", "type": "INT", "defualt": 3, "min": 1, "max": 9}])"); },
               {"probe.json: LetheProbe.inputs[0]", "unknown key 'defualt'", "known keys"});
  expect_error([] { table_with(R"([{"name": "steps", "type": "INT", "default": 30, "min": 1, "max": 9}])"); },
               {"LetheProbe.inputs[0] ('steps')", "the default 30 is outside [1, 9]"});
  expect_error([] { table_with(R"([{"name": "steps", "type": "INT", "default": 2.5, "min": 1, "max": 9}])"); },
               {"('steps')", "expected a whole number default, got 2.5"});
  expect_error([] { table_with(R"([{"name": "rate", "type": "FLOAT", "default": 0.5}])"); },
               {"('rate')", "needs \"min\", \"max\""});
  expect_error([] { table_with(R"([{"name": "mode", "type": "COMBO", "options": ["a"], "default": "z"}])"); },
               {"('mode')", "the default \"z\" is not one of the options: a"});
  expect_error([] { table_with(R"([{"name": "steps", "type": "INT", "default_from": "/trainer/stpes", "min": 1, "max": 9}])"); },
               {"('steps').default_from", "the code's defaults have no '/trainer/stpes'"});
  expect_error([] { table_with(R"([{"name": "color", "type": "COMBO", "options_from": "colours"}])"); },
               {"('color').options_from", "no option list named 'colours'"});
  expect_error([] { table_with(R"([{"name": "model", "type": "LETHE_MODEL", "default": 1}])"); },
               {"('model')", "a socket of type LETHE_MODEL has no default"});
  expect_error([] { table_with(R"([{"name": "a", "type": "IMAGE"}, {"name": "a", "type": "MASK"}])"); },
               {"LetheProbe.inputs[1]", "input 'a' is declared twice"});
  expect_error([] { NodeTable(R"({"LetheProbe": {"category": "Other"}})", "probe.json", values()); },
               {"LetheProbe.category", "expected \"Lethe/...\", got 'Other'"});
  expect_error([] { NodeTable("{\"LetheProbe\": ", "probe.json", values()); },
               {"probe.json", "does not parse at byte"});
  expect_error([] { table_with("[]").schema("LetheOther"); }, {"probe.json: no node 'LetheOther'", "LetheProbe"});
}
