// Bounded, checked reading of untrusted input: JSON nesting and size limits (no stack
// overflow, no quadratic output), widget values parsed as whole strings with ranges checked
// before any cast, UI workflows of the wrong shape, and safetensors shapes whose byte count
// overflows. Every message names the file, node and field and carries no library text.
#include <gtest/gtest.h>

#include <cstring>

#include "graph/node_registry.hpp"
#include "graph/workflow.hpp"
#include "io/json_config.hpp"
#include "io/safetensors.hpp"
#include "io/safetensors_header.hpp"
#include "test_helpers.hpp"

using lethe::testing::expect_error;
using lethe::testing::TempDir;
using nlohmann::json;
namespace graph = lethe::graph;
namespace io = lethe::io;

namespace {

// `depth` nested arrays around a 1, as a widget value of node 7's input 'steps'.
std::string deep_api_workflow(int depth) {
  std::string value = std::string(depth, '[') + "1" + std::string(depth, ']');
  return R"({"7": {"class_type": "LetheSample", "inputs": {"steps": )" + value + "}}}";
}

void expect_clean(const std::function<void()>& body, const std::vector<std::string>& fragments) {
  try {
    body();
    FAIL() << "expected an error";
  } catch (const lethe::Error& e) {
    const std::string message = e.what();
    for (const auto& fragment : fragments) EXPECT_NE(message.find(fragment), std::string::npos) << message;
    for (const char* leak : {"json.exception", "map::at", "basic_string", "Exception raised from"})
      EXPECT_EQ(message.find(leak), std::string::npos) << message;
    EXPECT_LT(message.size(), 600u) << message;
  }
}

const graph::InputSpec& spec(const std::string& node, const std::string& input) {
  return *graph::node_schema(node).input(input);
}

}  // namespace

TEST(UntrustedInput, DeeplyNestedJsonIsRefusedNamingThePath) {
  for (int depth : {100, 100000}) {
    expect_clean([&] { io::parse_json(deep_api_workflow(depth), "deep.json"); },
                 {"deep.json", "nested deeper than 64 levels", "7.inputs.steps"});
  }
  // Strings do not count: brackets inside them are text.
  EXPECT_NO_THROW(io::parse_json(R"({"a": ")" + std::string(1000, '[') + R"("})", "ok.json"));
  EXPECT_NO_THROW(io::parse_json(std::string(60, '[') + std::string(60, ']'), "ok.json"));
}

TEST(UntrustedInput, InvalidJsonSaysWhereWithoutLibraryText) {
  expect_clean([] { io::parse_json("{\"a\": tru}", "bad.json"); }, {"bad.json", "line 1, column"});
}

TEST(UntrustedInput, NumbersAreParsedWholeAndRangeCheckedBeforeAnyCast) {
  const auto& t_min = spec("LetheTimestepSelection", "t_min");
  expect_clean([&] { graph::check_widget_value(t_min, "250abc", "node 3 (LetheTimestepSelection) input 't_min'"); },
               {"node 3", "t_min", "expected an integer", "250abc"});
  EXPECT_EQ(graph::check_widget_value(t_min, "250", "t_min"), json(250));
  EXPECT_EQ(graph::check_widget_value(t_min, 250.0, "t_min"), json(250));
  const auto& steps = spec("LetheUnlearn", "steps");
  expect_clean([&] { graph::check_widget_value(steps, json::parse("1000000000000000000000000000000"), "node 7 input 'steps'"); },
               {"node 7", "steps", "above the maximum"});
  expect_clean([&] { graph::check_widget_value(steps, -1e30, "steps"); }, {"below the minimum"});
  const auto& seed = spec("LetheUnlearn", "seed");
  expect_clean([&] { graph::check_widget_value(seed, json(UINT64_MAX), "node 7 input 'seed'"); },
               {"18446744073709551615", "above the maximum"});
  expect_clean([&] { graph::check_widget_value(steps, 2.5, "steps"); }, {"expected an integer", "2.5"});
  const auto& rate = spec("LetheUnlearn", "learning_rate");
  expect_clean([&] { graph::check_widget_value(rate, "1e-4x", "rate"); }, {"expected a number"});
  EXPECT_EQ(graph::check_widget_value(rate, "1e-4", "rate"), json(1e-4));
  expect_clean([&] { graph::check_widget_value(rate, "nan", "rate"); }, {"expected"});
}

TEST(UntrustedInput, MalformedUiWorkflowsNameTheFileNodeAndField) {
  auto ui = [](json nodes, json links = json::array()) {
    return json{{"version", 0.4}, {"nodes", std::move(nodes)}, {"links", std::move(links)}};
  };
  expect_clean([&] { graph::parse_workflow(ui(json::array({{{"id", 3}}})), "wf.json"); },
               {"wf.json", "node 3", "'type' is missing"});
  expect_clean(
      [&] {
        graph::parse_workflow(ui(json::array({{{"id", 4}, {"type", "LetheUnlearn"}, {"widgets_values", "oops"}}})), "wf.json");
      },
      {"wf.json", "node 4 (LetheUnlearn)", "widgets_values", "\"oops\""});
  // A link from a node that is not in the workflow (hand-edited or truncated files).
  json node = {{"id", 5}, {"type", "LetheSaveModel"}, {"widgets_values", {"x"}},
               {"inputs", {{{"name", "model"}, {"type", "LETHE_MODEL"}, {"link", 9}}}}};
  expect_clean([&] { graph::parse_workflow(ui({node}, {{9, 77, 0, 5, 0, "LETHE_MODEL"}}), "wf.json"); },
               {"wf.json", "node 5 (LetheSaveModel)", "'model'", "link 9", "node 77", "not in the workflow"});
  // A link id of the wrong type.
  expect_clean([&] { graph::parse_workflow(ui({node}, {{"nine", 77, 0, 5, 0, "LETHE_MODEL"}}), "wf.json"); },
               {"wf.json", "links[0] id", "expected an integer"});
  node["inputs"][0]["link"] = "nine";
  expect_clean([&] { graph::parse_workflow(ui({node}), "wf.json"); }, {"node 5", "link", "expected an integer"});
}

TEST(UntrustedInput, SafetensorsShapesWhoseBytesOverflowAreRefusedAtReadTime) {
  // [2^62] F32 needs 2^64 bytes, which wraps to 0 in 64-bit arithmetic and would match empty offsets.
  const std::string header = R"({"x": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})";
  std::string file(8, '\0');
  const uint64_t size = header.size();
  std::memcpy(file.data(), &size, 8);
  file += header;
  expect_clean([&] { io::parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), file.size(), "big.safetensors"); },
               {"big.safetensors", "tensor 'x'", "more bytes than a tensor can hold"});
  const std::string elements = R"({"x": {"dtype": "U8", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})";
  file = std::string(8, '\0');
  const uint64_t size2 = elements.size();
  std::memcpy(file.data(), &size2, 8);
  file += elements;
  expect_clean([&] { io::parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), file.size(), "big.safetensors"); },
               {"more elements than a tensor can hold"});
}

TEST(UntrustedInput, AFolderWhereAModelFileIsExpectedSaysSo) {
  TempDir dir;
  expect_clean([&] { io::SafetensorsFile::open(dir.path()); }, {dir.path().string(), "is a folder, expected a .safetensors file"});
}

TEST(UntrustedInput, AMissingMetadataKeyNamesTheKeyAndTheFile) {
  TempDir dir;
  io::save_safetensors(dir / "d.safetensors", {}, {{"lethe.format", "lethe-descriptor/1"}});
  const auto file = io::SafetensorsFile::open(dir / "d.safetensors");
  expect_clean([&] { file.metadata_value("lethe.descriptor_config", "a Lethe descriptor file"); },
               {"d.safetensors", "'lethe.descriptor_config'", "missing", "a Lethe descriptor file"});
}

TEST(UntrustedInput, TheTorchFreeDtypeTableAgreesWithTorch) {
  for (const std::string& name : io::safetensors_dtype_names())
    EXPECT_EQ(io::safetensors_dtype_size(name, "t"),
              c10::elementSize(io::scalar_type_from_safetensors(name, "t"))) << name;
}

TEST(UntrustedInput, NumbersBeyondADoubleAreAnErrorNotALibraryException) {
  expect_clean([] { io::parse_json(R"({"seed": 18446744073709551615e615})", "config.json"); },
               {"config.json", "cannot be read", "number overflow"});
}
