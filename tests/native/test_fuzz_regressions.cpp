// Every input with which a fuzz target (tests/fuzz) once crashed Lethe, replayed on the code
// path that target drives: each must now end in a lethe::Error or succeed, nothing else.
#include <gtest/gtest.h>

#include <filesystem>

#include "graph/workflow.hpp"
#include "io/atomic_file.hpp"
#include "io/json_config.hpp"
#include "io/safetensors_header.hpp"

namespace fs = std::filesystem;
using namespace lethe;

namespace {

std::vector<fs::path> regressions(const std::string& target) {
  std::vector<fs::path> files;
  const fs::path folder = fs::path(LETHE_SOURCE_DIR) / "tests" / "fuzz" / "regressions" / target;
  for (const auto& item : fs::directory_iterator(folder)) files.push_back(item.path());
  return files;
}

void only_lethe_errors(const fs::path& file, const std::function<void(const std::string&)>& body) {
  const std::string bytes = io::read_file(file);
  try {
    body(bytes);
  } catch (const Error&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << file.filename() << " raised a non-Lethe exception: " << e.what();
  }
}

}  // namespace

TEST(FuzzRegressions, SafetensorsHeaderFindings) {
  for (const auto& file : regressions("safetensors_header"))
    only_lethe_errors(file, [&](const std::string& bytes) {
      io::parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), file.string());
    });
}

TEST(FuzzRegressions, JsonConfigFindings) {
  for (const auto& file : regressions("json_config"))
    only_lethe_errors(file, [&](const std::string& bytes) { io::parse_json(bytes, file.string()); });
}

TEST(FuzzRegressions, WorkflowFindings) {
  for (const auto& file : regressions("workflow"))
    only_lethe_errors(file, [&](const std::string& bytes) {
      graph::parse_workflow(io::parse_json(bytes, file.string()), file.string());
    });
}
