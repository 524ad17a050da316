// Copy detection and evaluation nodes: load a descriptor, score images against reference
// images with SSCD (memorization rate, per-image scores, a preview), and the full bench
// evaluation with its report.
#include <ATen/ATen.h>

#include <cstdio>

#include "bench/bench_evaluation.hpp"
#include "data/image.hpp"
#include "eval/canvas.hpp"
#include "eval/descriptor.hpp"
#include "eval/sscd_metrics.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "io/output_path.hpp"
#include "core/runtime.hpp"
#include "models/diffusion_model.hpp"
#include "models/unet_memory.hpp"

namespace lethe::graph::nodes {

namespace {

std::shared_ptr<eval::Descriptor> bench_descriptor() {
  return eval::load_descriptor(bench::bench_model_dir() / "descriptor.safetensors");
}

// A grid of the images with their best score (and matched reference) under each.
at::Tensor score_preview(const at::Tensor& images, const at::Tensor& assigned,
                         const at::Tensor& scores, double threshold) {
  const int64_t count = images.size(0);
  const int cell = 84, gap = 6, columns = 8;
  const int64_t rows = (count + columns - 1) / columns;
  eval::Canvas canvas(columns * (cell + gap) + gap, static_cast<int>(rows) * (cell + 22) + 10);
  for (int64_t i = 0; i < count; ++i) {
    const int x = gap + static_cast<int>(i % columns) * (cell + gap), y = 4 + static_cast<int>(i / columns) * (cell + 22);
    at::Tensor image = data::resize_image(images[i], cell, cell);
    canvas.paste(image, x, y);
    const double score = scores[i].item<double>();
    const eval::Color color = score >= threshold ? eval::colors::red : eval::colors::green;
    canvas.frame({x - 1, y - 1, cell + 2, cell + 2}, color, 2);
    const int64_t ref = assigned[i].item<int64_t>();
    canvas.text_centered(str(ref >= 0 ? "ref " + std::to_string(ref) + ": " : "", score), {x, y + cell + 2, cell, 16}, 12, color, true);
  }
  return canvas.tensor().unsqueeze(0);
}

}  // namespace

void register_scoring_nodes() {
  NodeSchema load;
  load.name = "LetheLoadDescriptor";
  load.display_name = "Lethe Load SSCD Descriptor";
  load.category = "Lethe/scoring";
  load.description = "A copy-detection descriptor: the bench's embedded one, or an official SSCD TorchScript file "
                     "(e.g. sscd_disc_mixup.torchscript.pt, official preprocessing) or a Lethe .safetensors one.";
  load.inputs = {combo_input("source", {"bench", "file"}, "bench", "which descriptor"),
                 path_input("path", "the descriptor file (source = file)")};
  load.outputs = {{"descriptor", types::kDescriptor, "the descriptor"}};
  register_node(load, [](NodeContext& context, const NodeInputs& in) {
    auto descriptor = in.text("source") == "bench" ? bench_descriptor() : eval::load_descriptor(in.text("path"));
    context.texts.push_back(str(descriptor->kind(), ", ", descriptor->dim(), "-d"));
    return std::vector<Value>{Value(types::kDescriptor, descriptor)};
  });

  NodeSchema score;
  score.name = "LetheSSCDScore";
  score.display_name = "Lethe SSCD Score";
  score.category = "Lethe/scoring";
  score.description = "Copy detection: SSCD cosine similarity of each image to reference images (e.g. generations vs "
                      "an artist's originals). paired: image i belongs to reference floor(i R / N); any: best match over "
                      "all references. Memorization rate = share of images at or above the threshold.";
  score.output_node = true;
  score.inputs = {socket("images", types::kImage, "images to check (e.g. generations)"),
                  socket("reference", types::kImage, "the reference images (e.g. the forget set)"),
                  float_input("threshold", 0.5, -1.0, 1.0, 0.01, "copy threshold on the cosine similarity"),
                  combo_input("match", {"any", "paired"}, "any", "score against the best reference, or the paired one"),
                  socket("descriptor", types::kDescriptor, "the descriptor (default: the bench's)", false)};
  score.outputs = {{"memorization_rate", "FLOAT", "share of images at or above the threshold"},
                   {"scores", "STRING", "per-image best score and matched reference (JSON)"},
                   {"preview", types::kImage, "images with their scores (red = copy)"}};
  register_node(score, [](NodeContext& context, const NodeInputs& in) {
    auto descriptor = in.has("descriptor") ? in.object<std::shared_ptr<eval::Descriptor>>("descriptor") : bench_descriptor();
    at::Tensor images = from_comfy_image(in.value("images").as<at::Tensor>(in.where("images")), 3, in.where("images"));
    at::Tensor references = from_comfy_image(in.value("reference").as<at::Tensor>(in.where("reference")), 3, in.where("reference"));
    at::Tensor generated = eval::embed_batched(*descriptor, images);
    at::Tensor reference = eval::embed_batched(*descriptor, references);
    at::Tensor similarity = eval::similarity_matrix(generated, reference);  // [N, R]
    const int64_t count = images.size(0), refs = references.size(0);
    at::Tensor assigned = in.text("match") == "paired"
                              ? (at::arange(count, at::kLong) * refs).div(count, "floor")
                              : at::full({count}, -1, at::kLong);
    at::Tensor best = eval::best_match(similarity, assigned);
    at::Tensor matched = in.text("match") == "paired" ? assigned : std::get<1>(similarity.max(1));
    const double threshold = in.number("threshold");
    const double rate = eval::memorization_rate(best, threshold);
    nlohmann::json scores = nlohmann::json::array();
    for (int64_t i = 0; i < count; ++i)
      scores.push_back({{"image", i}, {"reference", matched[i].item<int64_t>()}, {"score", best[i].item<double>()}});
    nlohmann::json result = {{"memorization_rate", rate}, {"threshold", threshold}, {"descriptor", descriptor->kind()},
                             {"descriptor_sha256", descriptor->sha256}, {"scores", scores}};
    context.texts.push_back(str("memorization rate ", rate, " at threshold ", threshold));
    at::Tensor preview = score_preview(images, matched, best, threshold);
    context.previews.emplace_back("sscd", to_comfy_image(preview));
    return std::vector<Value>{json_value("FLOAT", rate), json_value("STRING", result.dump()), image_value(preview)};
  });

  NodeSchema evaluate;
  evaluate.name = "LetheEvaluate";
  evaluate.display_name = "Lethe Evaluate (bench report)";
  evaluate.category = "Lethe/scoring";
  evaluate.description = "The bench evaluation: memorization rate and SSCD of forget-caption samples, normalized SSCD "
                         "(with baseline and reference), FID/KID and class accuracy, probes and losses; writes "
                         "report.json and report.png.";
  evaluate.output_node = true;
  evaluate.inputs = {socket("model", types::kModel, "the model to evaluate"),
                     int_input("samples_per_caption", 16, 1, 256, "generations per forget caption"),
                     int_input("samples_per_class", 50, 1, 1000, "generations per class prompt"),
                     seed_input("seed", "sampling seed"),
                     socket("baseline", types::kModel, "the model before unlearning", false),
                     socket("reference", types::kModel, "the retrained model", false),
                     socket("descriptor", types::kDescriptor, "copy descriptor (default: the bench's)", false),
                     socket("compare_1", types::kModel, "another unlearned model, side by side", false),
                     socket("compare_2", types::kModel, "another unlearned model, side by side", false),
                     socket("compare_3", types::kModel, "another unlearned model, side by side", false)};
  evaluate.outputs = {{"report", types::kReport, "the report (JSON)"},
                      {"report_image", types::kImage, "report.png"},
                      {"summary", "STRING", "one line per model"}};
  register_node(evaluate, [](NodeContext& context, const NodeInputs& in) {
    eval::EvalConfig config = bench::bench_eval_config();
    config.samples_per_forget_caption = in.integer("samples_per_caption");
    config.samples_per_class = in.integer("samples_per_class");
    config.sampling.seed = static_cast<uint64_t>(in.integer("seed"));
    using ModelPtr = std::shared_ptr<models::DiffusionModel>;
    std::vector<bench::NamedModel> entries = {{"evaluated", in.object<ModelPtr>("model")}};
    if (in.has("baseline")) entries.push_back({"baseline", in.object<ModelPtr>("baseline")});
    if (in.has("reference")) entries.push_back({"reference", in.object<ModelPtr>("reference")});
    for (const char* slot : {"compare_1", "compare_2", "compare_3"}) {
      if (!in.has(slot)) continue;
      auto model = in.object<ModelPtr>(slot);
      auto objective = model->source_metadata.find("objective");
      // Models unlearned in this run carry their objective in memory as the run's metadata.
      entries.push_back({str(slot, objective != model->source_metadata.end() ? " (" + objective->second + ")" : ""), model});
    }
    std::shared_ptr<eval::Descriptor> descriptor;
    if (in.has("descriptor")) descriptor = in.object<std::shared_ptr<eval::Descriptor>>("descriptor");
    // The bench's 10 forget captions and 10 class prompts at 28x28, every model's samples kept
    // for the report: refuse (or sample in smaller batches) before the allocator fails halfway.
    const auto& unet = entries.front().model->unet()->config();
    const int64_t samples = static_cast<int64_t>(entries.size()) * 10 * (config.samples_per_forget_caption + config.samples_per_class);
    config.sampling.batch_size = models::sampling_batch_that_fits(
        unet, samples, unet.in_channels, 28, 28, config.sampling.guidance != 1.0, config.sampling.batch_size,
        available_memory_bytes(), str("node ", context.node_id, " (LetheEvaluate) samples_per_caption/samples_per_class"));
    // A new folder per evaluation (evaluate-node-<id>, -2, ...): reports are never overwritten.
    const auto out = io::claim_numbered_folder(context.run_directory, "evaluate-node-" + io::file_name_part(context.node_id));
    nlohmann::json report = bench::evaluate_on_bench(entries, out, config, descriptor, nullptr, context.progress);
    std::string summary;
    for (const auto& [name, metrics] : report["models"].items())
      summary += str(name, ": memorization_rate ", metrics["memorization_rate"].dump(), ", fid ", metrics["fid"].dump(),
                     ", class_accuracy ", metrics["class_accuracy"].dump(), "\n");
    context.texts.push_back(summary);
    if (report["models"].contains("baseline")) {  // the one-line before/after
      const auto& before = report["models"]["baseline"];
      const auto& after = report["models"]["evaluated"];
      auto fixed = [](const nlohmann::json& value, int digits) {
        char text[32];
        std::snprintf(text, sizeof(text), "%.*f", digits, value.get<double>());
        return std::string(text);
      };
      std::string line = str("before -> after: memorization rate ", fixed(before["memorization_rate"], 2), " -> ",
                             fixed(after["memorization_rate"], 2), ", FID ", fixed(before["fid"], 2), " -> ",
                             fixed(after["fid"], 2));
      if (report["models"].contains("reference"))
        line += str(" (retrained: ", fixed(report["models"]["reference"]["memorization_rate"], 2), ", ",
                    fixed(report["models"]["reference"]["fid"], 2), ")");
      context.texts.push_back(line);
    }
    context.files.push_back(out / "report.json");
    context.files.push_back(out / "report.png");
    at::Tensor picture = data::read_image(out / "report.png", 3).unsqueeze(0);
    context.previews.emplace_back("report", to_comfy_image(picture));
    return std::vector<Value>{Value(types::kReport, report), image_value(picture), json_value("STRING", summary)};
  });
}

}  // namespace lethe::graph::nodes
