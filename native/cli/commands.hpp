// Sub-commands of the `lethe` program. Each file cmd_*.cpp adds its sub-commands to the
// CLI11 app and an action to run when selected.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace lethe::cli {

void register_commands(CLI::App& app);
// Runs the sub-command the user selected; returns the process exit code.
int run_selected(CLI::App& app);

// Used by the cmd_*.cpp files.
void set_action(CLI::App* command, std::function<int()> action);
void add_inspect_command(CLI::App& app);
void add_bench_commands(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_unlearn_command(CLI::App& app);
void add_graph_commands(CLI::App& app);
void add_perf_command(CLI::App& app);

}  // namespace lethe::cli
