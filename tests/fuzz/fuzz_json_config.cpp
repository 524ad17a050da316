// libFuzzer target: the JSON config reader (io/json_config.hpp): parse_json's limits, then
// read_config into a struct with every field kind Lethe's configs use (nested structs,
// vectors, optionals, maps, signed/unsigned integers, bools, doubles, strings, raw JSON),
// then to_json and back, which must round-trip. Only lethe::Error may escape.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "io/json_config.hpp"

namespace {

struct Inner {
  double learning_rate = 1e-5;
  std::string schedule = "constant";
  std::vector<int64_t> pieces;
  template <typename V>
  void visit(V& v) {
    v("learning_rate", learning_rate);
    v("schedule", schedule);
    v("pieces", pieces);
  }
  void validate(const std::string& where) const {
    lethe::check(learning_rate > 0, where, ".learning_rate: expected > 0, got ", learning_rate);
  }
};

struct Config {
  int64_t steps = 100;
  uint64_t seed = 0;
  bool resize = false;
  std::string objective = "siss";
  nlohmann::json objective_config = nlohmann::json::object();
  std::optional<double> cutoff;
  std::map<std::string, double> weights;
  std::vector<std::string> targets;
  Inner trainer;
  std::vector<Inner> stages;
  template <typename V>
  void visit(V& v) {
    v("steps", steps);
    v("seed", seed);
    v("resize", resize);
    v("objective", objective);
    v("objective_config", objective_config);
    v("cutoff", cutoff);
    v("weights", weights);
    v("targets", targets);
    v("trainer", trainer);
    v("stages", stages);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json document = lethe::io::parse_json(text, "fuzz.json");
    const Config config = lethe::io::read_config<Config>(document, "fuzz.json");
    const nlohmann::json written = lethe::io::to_json(config);
    const Config again = lethe::io::read_config<Config>(written, "written");
    if (lethe::io::to_json(again) != written) __builtin_trap();
    (void)lethe::io::json_excerpt(document);
  } catch (const lethe::Error&) {
  }
  return 0;
}
