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

// One line per model of a report: "<name>: memorization_rate <m>, fid <f>, class_accuracy <a>";
// with an erased concept (a class name) also ", <concept> still drawn as <concept> <share>".
std::string report_summary(const nlohmann::json& report, const std::string& erased_concept = "");

// "before -> after: memorization rate 0.99 -> 0.06, FID 0.81 -> 0.92 (retrained: 0.00, 0.80)"
// when the report has a baseline entry (the retrained part with a reference entry); "" otherwise.
// With an erased concept the first measure is the share of its prompt's samples the classifier
// still calls it ("sneaker still drawn as sneaker 0.97 -> 0.31") instead of the artist's rate.
std::string before_after_line(const nlohmann::json& report, const std::string& erased_concept = "");

}  // namespace lethe::eval
