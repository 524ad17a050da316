// The `lethe` command line: one program for everything the nodes can do headless.
#include <iostream>

#include <CLI/CLI.hpp>

#include "bench/bench_registration.hpp"
#include "cli/commands.hpp"
#include "core/allocator.hpp"
#include "core/error.hpp"
#include "core/failure.hpp"
#include "core/runtime.hpp"

int main(int argc, char** argv) {
  lethe::init_threads();
  lethe::bench::register_bench();
  lethe::flush_denormals();  // before any parallel work, so torch's worker threads inherit it
  lethe::keep_freed_memory();  // before the first large tensor
  CLI::App app{"Lethe: remove data and concepts from image diffusion models.\n"
               "Runs ComfyUI workflow JSON headless and exposes the native core's tools.",
               "lethe"};
  app.set_version_flag("--version", lethe::build_info());
  app.require_subcommand(0, 1);
  lethe::cli::register_commands(app);
  try {
    lethe::cli::hand_over_under_torchrun(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "lethe: error: " << e.what() << "\n";
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (app.get_subcommands().empty()) {
    std::cout << app.help();
    return 0;
  }
  try {
    return lethe::cli::run_selected(app);
  } catch (const lethe::Cancelled& e) {
    std::cerr << "lethe: cancelled: " << e.what() << "\n";
    return 130;
  } catch (const std::exception& e) {
    // lethe::Error as it is; anything else as one line, its details in a log file.
    std::cerr << "lethe: error: " << lethe::user_message(e, "lethe " + app.get_subcommands().front()->get_name()) << "\n";
    return 1;
  }
}
