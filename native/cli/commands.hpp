// Sub-commands of the `lethe` program. Each file cmd_*.cpp adds its sub-commands to the
// CLI11 app and an action to run when selected.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace lethe::cli {

void register_commands(CLI::App& app);
// Under torchrun (WORLD_SIZE > 1, as `torchrun --no-python lethe ...` starts it) the commands
// that split their work over ranks (unlearn, run, eval) continue in the data-parallel launcher,
// which takes their options and torchrun's (--backend, --timeout): called with the command line
// after the program's name, before it is parsed. Returns when this is not such a start.
void hand_over_under_torchrun(const std::vector<std::string>& arguments);

// Runs the sub-command the user selected; returns the process exit code. Under torchrun the
// commands that do not split their work refuse.
int run_selected(CLI::App& app);

// Replaces this process with the data-parallel launcher (python -m python_bridge.distributed
// ARGUMENTS..., docs/distributed.md) in the Python this program was built for: the process
// group needs Python's torch.distributed (torch's wheels ship no Gloo headers). `doing` names
// the caller in the error when the launcher cannot start. Returns only by throwing.
[[noreturn]] void exec_launcher(const std::vector<std::string>& arguments, const std::string& doing);

// Used by the cmd_*.cpp files.
void set_action(CLI::App* command, std::function<int()> action);
void add_inspect_command(CLI::App& app);
void add_bench_commands(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_unlearn_command(CLI::App& app);
void add_graph_commands(CLI::App& app);
void add_perf_command(CLI::App& app);

}  // namespace lethe::cli
