// JSON configs: defaults, type errors and unknown keys (listing the known ones).
#include <gtest/gtest.h>

#include "io/json_config.hpp"
#include "test_helpers.hpp"

using lethe::io::json;
using lethe::testing::expect_error;

namespace {

struct Inner {
  double cutoff = 0.5;
  template <typename V>
  void visit(V& v) {
    v("cutoff", cutoff);
  }
};

struct Example {
  int64_t steps = 100;
  double learning_rate = 1e-4;
  std::string objective = "siss";
  bool enabled = true;
  std::vector<int64_t> window = {250, 750};
  std::optional<double> tau;
  Inner frequency;
  template <typename V>
  void visit(V& v) {
    v("steps", steps);
    v("learning_rate", learning_rate);
    v("objective", objective);
    v("enabled", enabled);
    v("window", window);
    v("tau", tau);
    v("frequency", frequency);
  }
  void validate(const std::string& where) const {
    lethe::check(steps > 0, where, ".steps: expected > 0, got ", steps);
  }
};

}  // namespace

TEST(JsonConfig, MissingKeysKeepTheirDefaults) {
  auto config = lethe::io::read_config<Example>(json::parse(R"({"steps": 5})"), "run.json");
  EXPECT_EQ(config.steps, 5);
  EXPECT_EQ(config.learning_rate, 1e-4);
  EXPECT_EQ(config.objective, "siss");
  EXPECT_EQ(config.window, (std::vector<int64_t>{250, 750}));
  EXPECT_FALSE(config.tau.has_value());
}

TEST(JsonConfig, NestedAndOptionalFieldsAreRead) {
  auto config = lethe::io::read_config<Example>(json::parse(R"({"tau": 2.0, "frequency": {"cutoff": 0.25}})"), "c");
  EXPECT_EQ(*config.tau, 2.0);
  EXPECT_EQ(config.frequency.cutoff, 0.25);
}

TEST(JsonConfig, UnknownKeyIsAnErrorListingTheKnownKeys) {
  expect_error([] { lethe::io::read_config<Example>(json::parse(R"({"step": 5})"), "run.json: trainer"); },
               {"run.json: trainer", "unknown key 'step'", "known keys: steps, learning_rate, objective"});
  expect_error([] { lethe::io::read_config<Example>(json::parse(R"({"frequency": {"cutof": 1}})"), "run.json"); },
               {"run.json.frequency", "unknown key 'cutof'", "known keys: cutoff"});
}

TEST(JsonConfig, WrongTypesNameTheField) {
  expect_error([] { lethe::io::read_config<Example>(json::parse(R"({"steps": "10"})"), "run.json"); },
               {"run.json.steps", "expected an integer", "\"10\""});
  expect_error([] { lethe::io::read_config<Example>(json::parse(R"({"steps": 1.5})"), "run.json"); },
               {"run.json.steps", "expected an integer"});
  expect_error([] { lethe::io::read_config<Example>(json::parse(R"({"window": [1, "a"]})"), "run.json"); },
               {"run.json.window[1]", "expected an integer"});
  expect_error([] { lethe::io::read_config<Example>(json::parse(R"({"enabled": 1})"), "run.json"); },
               {"run.json.enabled", "expected true or false"});
  expect_error([] { lethe::io::read_config<Example>(json::parse(R"([1])"), "run.json"); }, {"expected an object"});
}

TEST(JsonConfig, ValidateRunsAfterReading) {
  expect_error([] { lethe::io::read_config<Example>(json::parse(R"({"steps": 0})"), "run.json"); },
               {"run.json.steps: expected > 0, got 0"});
}

TEST(JsonConfig, WrittenConfigReadsBackIdentically) {
  Example config;
  config.steps = 7;
  config.tau = 3.0;
  json written = lethe::io::to_json(config);
  EXPECT_EQ(written["steps"], 7);
  EXPECT_TRUE(written["tau"] == 3.0);
  EXPECT_EQ(lethe::io::to_json(lethe::io::read_config<Example>(written, "x")), written);
  EXPECT_EQ(lethe::io::config_keys<Example>().front(), "steps");
}

TEST(JsonConfig, ParseErrorsGiveLineAndColumn) {
  expect_error([] { lethe::io::parse_json("{\n  \"a\": 1,\n  oops\n}", "w.json"); }, {"w.json", "line 3"});
}
