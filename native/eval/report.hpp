// The evaluation report: report.json (schema "lethe-report/1", documented in docs/evaluation.md §6) and
// report.png, a picture a person can read at a glance: each forget image next to samples
// before and after with their SSCD scores, a score histogram with the threshold, metric
// bars and a table.
#pragma once

#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/evaluation.hpp"

namespace lethe::eval {

inline constexpr const char* kReportSchema = "lethe-report/1";

// The metrics every model entry carries.
const std::vector<std::string>& report_metric_names();

// models: the evaluated model first, then optional "baseline" and "reference" entries.
nlohmann::json build_report(const Evaluator& evaluator, const std::vector<const ModelEvaluation*>& models,
                            double wall_seconds, const nlohmann::json& extra = nlohmann::json::object());

// Draws report.png.
void draw_report(const Evaluator& evaluator, const std::vector<const ModelEvaluation*>& models, const nlohmann::json& report,
                 const std::filesystem::path& png);

// Writes report.json and report.png into `directory`; returns the report.
nlohmann::json write_report(const std::filesystem::path& directory, const Evaluator& evaluator,
                            const std::vector<const ModelEvaluation*>& models, double wall_seconds,
                            const nlohmann::json& extra = nlohmann::json::object());

}  // namespace lethe::eval
