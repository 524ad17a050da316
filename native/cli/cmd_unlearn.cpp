// `lethe unlearn --config run.json`: one unlearning run with a progress bar.
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/progress_bar.hpp"
#include "core/error.hpp"
#include "unlearn/objective.hpp"
#include "unlearn/run.hpp"

namespace lethe::cli {

void add_unlearn_command(CLI::App& app) {
  auto* command = app.add_subcommand("unlearn", "Run one unlearning job from a JSON config (model, data, objective, "
                                                "selections, trainer, output); writes the unlearned model and pictures");
  auto config_file = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  command->add_option("--config", *config_file, "run config JSON (keys: model, data, objective, objective_config, "
                                                "timesteps, frequency, trainer, trainable, lora, output)");
  command->add_option("--out", *out, "output folder (overrides the config's output)");
  command->add_option("--set", *overrides, "override a config key, e.g. --set trainer.steps=50 --set objective=neggrad");
  auto print_only = std::make_shared<bool>(false);
  command->add_flag("--print-config", *print_only, "print the resolved config (every default filled in) and exit");
  auto ranks = std::make_shared<int64_t>(0);
  command->add_option("--nproc", *ranks, "split the run over this many processes on this machine (data-parallel, "
                                         "torch.distributed; docs/distributed.md)");
  set_action(command, [config_file, out, overrides, print_only, ranks]() {
    const unlearn::RunConfig config = unlearn::run_config_from(*config_file, *overrides, *out);
    check(*ranks >= 0, "lethe unlearn --nproc: expected a process count >= 1, got ", *ranks);
    if (*ranks > 0 && !*print_only) {  // config checked first
      std::vector<std::string> args = {"unlearn", "--nproc", std::to_string(*ranks)};
      if (!config_file->empty()) args.insert(args.end(), {"--config", *config_file});
      for (const auto& assignment : *overrides) args.insert(args.end(), {"--set", assignment});
      if (!out->empty()) args.insert(args.end(), {"--out", *out});
      exec_launcher(args, "lethe unlearn --nproc");
    }
    if (*print_only) {  // the settings a run would start with, checked as the run checks them
      config.validate("unlearning run");
      unlearn::make_objective(config.objective, config.objective_config, "unlearning run .objective");
      std::cout << io::to_json(config).dump(2) << "\n";
      return 0;
    }
    auto result = unlearn::run_unlearning(config, terminal_progress("unlearn " + config.objective));
    std::cout << result.summary.dump(2) << "\n";
    std::cout << "run folder: " << result.directory.string() << "\n";
    return 0;
  });
}

}  // namespace lethe::cli
