// Sub-commands of the `lethe` program. Each registers its options on the CLI11 app and
// runs when selected.
#pragma once

#include <CLI/CLI.hpp>

namespace lethe::cli {

void register_commands(CLI::App& app);
// Runs the sub-command the user selected; returns the process exit code.
int run_selected(CLI::App& app);

}  // namespace lethe::cli
