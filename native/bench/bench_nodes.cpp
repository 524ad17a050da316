// The bench's own nodes: its data (the artist's forget set, class concepts with anchors),
// its two diffusion models (base, retrained) and its evaluation report. Registered into the
// core's node registry by register_bench().
#include <ATen/ATen.h>

#include <charconv>
#include <cstdio>
#include <sstream>

#include "bench/bench_data.hpp"
#include "bench/bench_evaluation.hpp"
#include "bench/bench_nodes.hpp"
#include "bench/fashion_bench.hpp"
#include "core/error.hpp"
#include "core/runtime.hpp"
#include "data/idx.hpp"
#include "data/image.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "io/output_path.hpp"
#include "models/diffusion_model.hpp"
#include "models/unet_memory.hpp"

namespace lethe::bench {

namespace {

using namespace graph;
using namespace graph::nodes;

std::vector<std::string> class_and_superclass_names() {
  std::vector<std::string> names = data::fashion_mnist_classes();
  for (const char* superclass : {"top", "bottom", "onepiece", "footwear", "accessory"}) names.push_back(superclass);
  return names;
}

std::vector<int64_t> parse_pieces(const std::string& text, const std::string& where) {
  std::vector<int64_t> pieces;
  if (text == "all" || text.empty()) return pieces;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    const size_t first = item.find_first_not_of(' '), last = item.find_last_not_of(' ');
    int64_t piece = -1;
    const char* begin = item.data() + (first == std::string::npos ? item.size() : first);
    const char* end = item.data() + (last == std::string::npos ? item.size() : last + 1);
    const auto parsed = std::from_chars(begin, end, piece);
    check(parsed.ec == std::errc() && parsed.ptr == end && begin != end && piece >= 0 && piece < 10, where,
          ": expected 'all' or a comma-separated list of pieces 0..9, got '", text, "'");
    pieces.push_back(piece);
  }
  return pieces;
}

unlearn::ExampleSet empty_set(const std::string& name) {
  unlearn::ExampleSet set;
  set.name = name;
  return set;
}

void register_bench_data() {
  NodeSchema schema;
  schema.name = "LetheBenchData";
  schema.display_name = "Lethe Bench Data (Fashion-MNIST artist)";
  schema.category = "Lethe/data";
  schema.description = "The embedded bench: the artist's forget set (data task) or a class concept with its anchor "
                       "(concept task), and the retain set. Real Fashion-MNIST images; nothing downloaded.";
  schema.inputs = {
      combo_input("task", {"data", "concept"}, "data", "data: forget the artist's images; concept: erase a class"),
      string_input("forget_pieces", "all", "artist pieces to forget: 'all' or e.g. '0,3,7' (data task)"),
      combo_input("concept", data::fashion_mnist_classes(), "sneaker", "the class to erase (concept task)"),
      combo_input("anchor", class_and_superclass_names(), "footwear",
                  "what the erased class should become: a near class (sandal) or a superclass (footwear)"),
      int_input("retain_limit", 0, 0, 1000000, "use at most this many retain images (0 = all 59990)"),
  };
  schema.outputs = {{"forget", types::kDataset, "the forget set (empty for the concept task)"},
                    {"retain", types::kDataset, "the retain set"},
                    {"anchor", types::kDataset, "anchor images with the anchor caption (concept task)"},
                    {"target_prompt", "STRING", "the erased concept's caption (concept task)"},
                    {"forget_images", types::kImage, "the forget images (or anchor images) as IMAGE"}};
  register_node(schema, [](NodeContext& context, const NodeInputs& in) {
    unlearn::DataConfig config;
    config.task = in.text("task");
    config.forget_pieces = parse_pieces(in.text("forget_pieces"), in.where("forget_pieces"));
    config.concept_name = in.text("concept");
    config.anchor = in.text("anchor");
    config.retain_limit = in.integer("retain_limit");
    unlearn::TaskData data = bench_task_data(config);
    const bool data_task = config.task == "data";
    const at::Tensor shown = data_task ? data.forget.images : data.anchor.images.narrow(0, 0, 16);
    context.texts.push_back(str(data_task ? data.forget.size() : data.anchor.size(),
                                data_task ? " forget images, " : " anchor images, ", data.retain.size(), " retain images"));
    return std::vector<Value>{dataset_value(data_task ? data.forget : empty_set("forget set")), dataset_value(data.retain),
                              dataset_value(data_task ? empty_set("anchor set") : data.anchor),
                              json_value("STRING", data_task ? "" : data.target_captions.at(0)),
                              image_value(to_pixels(shown))};
  });
}

void register_bench_model() {
  NodeSchema bench;
  bench.name = "LetheBenchModel";
  bench.display_name = "Lethe Bench Model";
  bench.category = "Lethe/models";
  bench.description = "The embedded bench's diffusion models: base (trained with the artist's images, memorizes them) "
                      "or retrained (never saw them; the gold standard).";
  bench.inputs = {combo_input("which", {"base", "retrained"}, "base", "which bench model")};
  bench.outputs = {{"model", types::kModel, "the diffusion model"}};
  register_node(bench, [](NodeContext& context, const NodeInputs& in) {
    auto path = bench_model_dir() / (in.text("which") + ".safetensors");
    check(std::filesystem::exists(path), in.where("which"), ": bench model '", path.string(),
          "' is missing (run `make bench-models`)");
    auto model = models::DiffusionModel::load(path);
    context.texts.push_back(str(in.text("which"), " ", model->source_sha256.substr(0, 12)));
    return std::vector<Value>{Value(types::kModel, model)};
  });
}

void register_bench_evaluate() {
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
    eval::EvalConfig config = bench_eval_config();
    config.samples_per_forget_caption = in.integer("samples_per_caption");
    config.samples_per_class = in.integer("samples_per_class");
    config.sampling.seed = static_cast<uint64_t>(in.integer("seed"));
    using ModelPtr = std::shared_ptr<models::DiffusionModel>;
    std::vector<NamedModel> entries = {{"evaluated", in.object<ModelPtr>("model")}};
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
    nlohmann::json report = evaluate_on_bench(entries, out, config, descriptor, nullptr, context.progress);
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

}  // namespace

void register_bench_nodes() {
  register_bench_data();
  register_bench_model();
  register_bench_evaluate();
}

}  // namespace lethe::bench
