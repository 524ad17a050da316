#include "cli/commands.hpp"

#include <cstdlib>
#include <iostream>
#include <map>

#include "core/error.hpp"

namespace lethe::cli {

namespace {
std::map<CLI::App*, std::function<int()>>& actions() {
  static std::map<CLI::App*, std::function<int()>> instance;
  return instance;
}
}  // namespace

void set_action(CLI::App* command, std::function<int()> action) { actions()[command] = std::move(action); }

void register_commands(CLI::App& app) {
  add_inspect_command(app);
  add_bench_commands(app);
  add_eval_command(app);
  add_unlearn_command(app);
  add_graph_commands(app);
  add_perf_command(app);
}

// The lethe program is one process: under torchrun (WORLD_SIZE > 1) each rank would run the whole
// job on its own, all into the same folder. Data-parallel runs join a process group in Python.
void refuse_torchrun(const std::string& command) {
  const char* world = std::getenv("WORLD_SIZE");
  if (!world || std::atoi(world) <= 1) return;
  const char* rank = std::getenv("RANK");
  throw Error(str("lethe ", command, ": started as rank ", rank ? rank : "?", " of ", world,
                  " (torchrun's environment), but the lethe program runs in one process; a data-parallel unlearning "
                  "run starts as `torchrun --nproc-per-node ", world,
                  " -m python_bridge.distributed unlearn --config run.json` (or `python -m "
                  "python_bridge.distributed unlearn --nproc ", world, " ...`; docs/distributed.md)"));
}

int run_selected(CLI::App& app) {
  refuse_torchrun(app.get_subcommands().front()->get_name());
  // The deepest selected sub-command with an action runs.
  CLI::App* current = &app;
  while (!current->get_subcommands().empty()) {
    current = current->get_subcommands().front();
    auto found = actions().find(current);
    if (found != actions().end() && current->get_subcommands().empty()) return found->second();
  }
  std::cout << current->help();
  return 0;
}

}  // namespace lethe::cli
