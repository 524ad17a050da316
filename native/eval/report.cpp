#include "eval/report.hpp"

#include <cstdio>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "core/runtime.hpp"
#include "draw/canvas.hpp"
#include "io/json_config.hpp"

namespace lethe::eval {

const std::vector<std::string>& report_metric_names() {
  static const std::vector<std::string> names = {
      "memorization_rate", "normalized_sscd", "sscd_mean",  "sscd_p95",        "sscd_margin_mean",
      "sscd_direction",    "fid",             "kid_mean",   "class_accuracy",  "forget_loss",
      "retain_loss",       "forget_probe_sscd", "retain_probe_sscd", "attack_prompt_success_rate",
      "attack_prompt_score_mean", "attack_relearn_steps"};
  return names;
}

nlohmann::json build_report(const Evaluator& evaluator, const std::vector<const ModelEvaluation*>& models,
                            double wall_seconds, const nlohmann::json& extra) {
  const EvalConfig& config = evaluator.config();
  const EvalData& data = evaluator.data();
  nlohmann::json report;
  report["schema"] = kReportSchema;
  report["lethe_version"] = version();
  report["wall_seconds"] = wall_seconds;
  report["normalized_sscd_definition"] = kNormalizedSscdDefinition;
  report["settings"] = io::to_json(config);
  report["settings"]["descriptor"] = {{"kind", evaluator.descriptor().kind()},
                                      {"path", evaluator.descriptor().path},
                                      {"sha256", evaluator.descriptor().sha256},
                                      {"preprocessing", evaluator.descriptor().preprocessing()}};
  report["settings"]["fid_features"] = "FD-lethecls: pooled features of the bench classifier";
  report["counts"] = {{"forget_images", data.forget_images.size(0)},
                      {"forget_generations", data.forget_images.size(0) * config.samples_per_forget_caption},
                      {"class_generations", static_cast<int64_t>(data.class_captions.size()) * config.samples_per_class},
                      {"fid_real_images", std::min<int64_t>(config.fid_real_images, data.real_images.size(0))},
                      {"retain_probes", std::min<int64_t>(config.retain_probes, data.retain_images.size(0))}};
  for (const ModelEvaluation* model : models) {
    nlohmann::json entry;
    for (const auto& [name, value] : model->metrics) entry[name] = value;
    for (const std::string& name : report_metric_names())
      if (!entry.contains(name)) entry[name] = nullptr;  // not applicable (e.g. normalized_sscd without a reference)
    // attack_relearn_steps is null also when the content did not return within the budget:
    // attacks.relearn.returned tells the two apart.
    entry["attacks"] = model->attacks;
    // A cached entry's stage timings are its original run's; entries written before they existed have none.
    if (!model->stage_seconds.empty()) entry["stage_seconds"] = model->stage_seconds;
    report["models"][model->name] = entry;
  }
  nlohmann::json per_caption = nlohmann::json::array();
  const int64_t k = config.samples_per_forget_caption;
  for (size_t i = 0; i < data.forget_captions.size(); ++i) {
    nlohmann::json row = {{"caption", data.forget_captions[i]}};
    for (const ModelEvaluation* model : models) {
      at::Tensor scores = model->forget_scores.narrow(0, static_cast<int64_t>(i) * k, k);
      row[model->name] = {{"memorization_rate", (scores >= config.threshold).to(at::kDouble).mean().item<double>()},
                          {"sscd_mean", scores.mean().item<double>()},
                          {"scores", std::vector<float>(scores.data_ptr<float>(), scores.data_ptr<float>() + k)}};
    }
    per_caption.push_back(row);
  }
  report["per_caption"] = per_caption;
  for (const auto& [key, value] : extra.items()) report[key] = value;
  return report;
}

namespace {

std::string fixed(double value, int digits = 2) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.*f", digits, value);
  return buffer;
}

std::string metric_text(const nlohmann::json& value, int digits = 3) {
  return value.is_number() ? fixed(value.get<double>(), digits) : "-";
}

// "20", "> 60" (did not return within the budget) or "-" (no attacks run).
std::string relearn_text(const nlohmann::json& entry) {
  const nlohmann::json& attacks = entry.value("attacks", nlohmann::json());
  if (!attacks.is_object()) return "-";
  const nlohmann::json& relearn = attacks.at("relearn");
  return relearn.at("returned").get<bool>() ? relearn.at("steps").dump() : "> " + relearn.at("budget").dump();
}

}  // namespace

void draw_report(const Evaluator& evaluator, const std::vector<const ModelEvaluation*>& models, const nlohmann::json& report,
                 const std::filesystem::path& png) {
  const EvalConfig& config = evaluator.config();
  const EvalData& data = evaluator.data();
  const int64_t forget_count = data.forget_images.size(0);
  const int64_t k = config.samples_per_forget_caption;
  const int shown = static_cast<int>(std::min<int64_t>(k, 4));
  const int scale = std::max(1, 72 / static_cast<int>(data.forget_images.size(2)));
  const int cell = static_cast<int>(data.forget_images.size(2)) * scale;
  const int gap = 6, row_height = cell + 22;
  const int left = 16, top = 78;
  const int caption_width = 230;
  // Each model's column is as wide as its samples or its header, whichever is wider (at 1 or 2
  // samples per caption the header is the wider one).
  std::vector<std::string> headers;
  std::vector<int> blocks;
  const draw::Canvas measure(1, 1);
  int grid_width = caption_width + cell + 24;
  for (const ModelEvaluation* model : models) {
    headers.push_back(str(model->name, " (memorized ", fixed(100 * model->metrics.at("memorization_rate"), 0), "%)"));
    blocks.push_back(std::max(shown * (cell + gap) + 18, measure.text_width(headers.back(), 13, true) + 18));
    grid_width += blocks.back();
  }
  const int width = grid_width + 560;
  const int height = std::max<int>(top + static_cast<int>(forget_count) * row_height + 40, 1380);

  draw::Canvas canvas(width, height);
  canvas.text("Lethe evaluation report", left, 14, 24, draw::colors::black, true);
  canvas.text(str("threshold ", fixed(config.threshold, 2), " | ", k, " samples per forget caption | ",
                  config.sampling.sampler, " ", config.sampling.steps, " steps, guidance ", fixed(config.sampling.guidance, 1),
                  ", seed ", config.sampling.seed, " | descriptor ", evaluator.descriptor().kind()),
              left, 44, 13, draw::colors::grey);

  // Column headers.
  int x = left + caption_width;
  canvas.text("forget", x, top - 18, 13, draw::colors::black, true);
  x += cell + 24;
  for (size_t m = 0; m < models.size(); ++m) {
    canvas.text(headers[m], x, top - 18, 13, draw::colors::black, true);
    x += blocks[m];
  }
  // Rows: caption, forget image, samples with their scores.
  for (int64_t i = 0; i < forget_count; ++i) {
    const int y = top + static_cast<int>(i) * row_height;
    canvas.text(data.forget_captions[i], left, y + cell / 2 - 8, 12);
    canvas.paste(data.forget_images[i], left + caption_width, y, scale);
    canvas.frame({left + caption_width - 1, y - 1, cell + 2, cell + 2}, draw::colors::black);
    int column_x = left + caption_width + cell + 24;
    for (size_t m = 0; m < models.size(); ++m) {
      const ModelEvaluation* model = models[m];
      for (int s = 0; s < shown; ++s) {
        const int64_t index = i * k + s;
        const double score = model->forget_scores[index].item<double>();
        const int cx = column_x + s * (cell + gap);
        canvas.paste(model->forget_samples[index], cx, y, scale);
        const draw::Color color = score >= config.threshold ? draw::colors::red : draw::colors::green;
        canvas.frame({cx - 1, y - 1, cell + 2, cell + 2}, color, 2);
        canvas.text_centered(fixed(score, 2), {cx, y + cell + 2, cell, 16}, 12, color, true);
      }
      column_x += blocks[m];
    }
  }

  // Right column: histogram, metric bars, table.
  const int panel_x = grid_width + 10, panel_width = width - panel_x - 16;
  std::vector<draw::Series> histogram;
  for (const ModelEvaluation* model : models) {
    at::Tensor scores = model->forget_scores.to(at::kDouble).contiguous();
    histogram.push_back({model->name, std::vector<double>(scores.data_ptr<double>(), scores.data_ptr<double>() + scores.numel()), {}});
  }
  draw::draw_histogram(canvas, {panel_x, top - 20, panel_width, 300}, "best SSCD of forget-caption samples", histogram, -0.2, 1.0,
                 30, std::make_pair(config.threshold, std::string("threshold")));

  std::vector<std::string> groups = {"memorized", "class acc.", "forget probe", "retain probe"};
  std::vector<draw::Series> bars;
  for (const ModelEvaluation* model : models)
    bars.push_back({model->name,
                    {model->metrics.at("memorization_rate"), model->metrics.at("class_accuracy"),
                     model->metrics.at("forget_probe_sscd"), model->metrics.at("retain_probe_sscd")},
                    {}});
  draw::draw_bar_chart(canvas, {panel_x, top + 300, panel_width, 280}, "rates and probe SSCD (higher = more)", groups, bars);

  int y = top + 600;
  canvas.text("metrics", panel_x + 4, y, 15, draw::colors::black, true);
  y += 24;
  const std::vector<std::pair<std::string, int>> rows = {
      {"memorization_rate", 3}, {"normalized_sscd", 3}, {"sscd_mean", 3},     {"sscd_direction", 3},
      {"fid", 2},               {"kid_mean", 4},        {"class_accuracy", 3}, {"forget_loss", 4},
      {"retain_loss", 4},       {"forget_probe_sscd", 3}, {"retain_probe_sscd", 3}, {"attack_prompt_success_rate", 3},
      {"attack_relearn_steps", 0}};
  int column = panel_x + 170;
  for (const ModelEvaluation* model : models) {
    canvas.text(model->name, column, y, 12, draw::colors::black, true);
    column += 120;
  }
  y += 18;
  for (const auto& [name, digits] : rows) {
    canvas.text(name, panel_x + 4, y, 12);
    column = panel_x + 170;
    for (const ModelEvaluation* model : models) {
      const nlohmann::json& entry = report["models"][model->name];
      canvas.text(name == "attack_relearn_steps" ? relearn_text(entry) : metric_text(entry[name], digits), column, y, 12);
      column += 120;
    }
    y += 17;
  }
  canvas.text(str("normalized_sscd: P1 retrain-anchored progress (1 = unchanged, 0 = like retrained)"), panel_x + 4, y + 6, 11,
              draw::colors::grey);
  // The relearning attack's curves: how fast the held-out targets come back under fine-tuning.
  std::vector<draw::Series> curves;
  for (const ModelEvaluation* model : models) {
    if (!model->attacks.is_object()) continue;
    const nlohmann::json& relearn = model->attacks.at("relearn");
    curves.push_back({model->name, relearn.at("held_out_success_rate").get<std::vector<double>>(),
                      relearn.at("checked_steps").get<std::vector<double>>()});
  }
  if (!curves.empty())
    draw::draw_line_chart(canvas, {panel_x, y + 30, panel_width, 270},
                          str("relearning attack: held-out ", config.erased_concept.empty() ? "memorization" : "concept share",
                              " vs fine-tuning steps"),
                          curves, "fine-tuning steps");
  canvas.save_png(png);
}

nlohmann::json write_report(const std::filesystem::path& directory, const Evaluator& evaluator,
                            const std::vector<const ModelEvaluation*>& models, double wall_seconds,
                            const nlohmann::json& extra) {
  std::filesystem::create_directories(directory);
  nlohmann::json report = build_report(evaluator, models, wall_seconds, extra);
  io::write_json_file(directory / "report.json", report);
  draw_report(evaluator, models, report, directory / "report.png");
  return report;
}

namespace {

// The report's key for the share of an erased concept's samples still classified as it.
std::string concept_key(const nlohmann::json& report, const std::string& erased_concept) {
  const std::string key = "class_accuracy_" + erased_concept;
  for (const auto& [name, metrics] : report.at("models").items())
    check(metrics.contains(key), "report: model '", name, "' has no ", key, " (expected the erased concept to be one of ",
          "the evaluated classes, got '", erased_concept, "')");
  return key;
}

}  // namespace

std::string report_summary(const nlohmann::json& report, const std::string& erased_concept) {
  const std::string key = erased_concept.empty() ? "" : concept_key(report, erased_concept);
  std::string summary;
  for (const auto& [name, metrics] : report.at("models").items()) {
    summary += str(name, ": memorization_rate ", metrics["memorization_rate"].dump(), ", fid ", metrics["fid"].dump(),
                   ", class_accuracy ", metrics["class_accuracy"].dump());
    if (!key.empty()) summary += str(", ", erased_concept, " still drawn as ", erased_concept, " ", metrics[key].dump());
    if (metrics.value("attacks", nlohmann::json()).is_object())
      summary += str(", attack_prompt_success_rate ", metrics["attack_prompt_success_rate"].dump(), ", relearned in ",
                     relearn_text(metrics), " steps");
    summary += "\n";
  }
  return summary;
}

std::string before_after_line(const nlohmann::json& report, const std::string& erased_concept) {
  const auto& models = report.at("models");
  if (!models.contains("baseline")) return "";
  const std::string key = erased_concept.empty() ? "memorization_rate" : concept_key(report, erased_concept);
  const std::string measure =
      erased_concept.empty() ? "memorization rate" : str(erased_concept, " still drawn as ", erased_concept);
  const auto &before = models["baseline"], &after = models["evaluated"];
  std::string line = str("before -> after: ", measure, " ", metric_text(before[key], 2), " -> ",
                         metric_text(after[key], 2), ", FID ", metric_text(before["fid"], 2), " -> ",
                         metric_text(after["fid"], 2));
  if (models.contains("reference"))
    line += str(" (retrained: ", metric_text(models["reference"][key], 2), ", ", metric_text(models["reference"]["fid"], 2), ")");
  return line;
}

}  // namespace lethe::eval
