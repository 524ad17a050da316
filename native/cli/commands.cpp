#include "cli/commands.hpp"

#include <iostream>
#include <map>

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

int run_selected(CLI::App& app) {
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
