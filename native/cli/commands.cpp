#include "cli/commands.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>

#include "cli/build_python.hpp"
#include "core/error.hpp"
#include "core/text.hpp"

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

void exec_launcher(const std::vector<std::string>& arguments, const std::string& doing) {
  namespace fs = std::filesystem;
  // This source folder when it holds the launcher (make build, make comfy), else the installed
  // wheel's package.
  const fs::path source = kSourceFolder;
  const bool from_source = !source.empty() && fs::exists(source / "python_bridge" / "distributed.py");
  if (from_source) {
    const char* path = std::getenv("PYTHONPATH");
    const std::string joined = source.string() + (path && *path ? ":" + std::string(path) : "");
    ::setenv("PYTHONPATH", joined.c_str(), 1);
  }
  std::vector<std::string> args = {kBuildPython, "-m",
                                   from_source ? "python_bridge.distributed" : "lethe.python_bridge.distributed"};
  args.insert(args.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::cout.flush();
  ::execv(kBuildPython, argv.data());
  const int error = errno;  // before building the message can change it
  throw Error(str(doing, ": could not start the data-parallel launcher with ", kBuildPython, " (the Python Lethe was "
                  "built for): ", std::strerror(error), "; run `python -m python_bridge.distributed ",
                  join(arguments, " "), "` with ComfyUI's or the project's Python (docs/distributed.md)"));
}

namespace {
// torchrun's WORLD_SIZE when it is above 1, else 0.
int torchrun_world_size() {
  const char* world = std::getenv("WORLD_SIZE");
  return world && std::atoi(world) > 1 ? std::atoi(world) : 0;
}
}  // namespace

void hand_over_under_torchrun(const std::vector<std::string>& arguments) {
  if (torchrun_world_size() == 0 || arguments.empty()) return;
  const std::string& command = arguments.front();
  if (command == "unlearn" || command == "run" || command == "eval") exec_launcher(arguments, "lethe " + command);
}

int run_selected(CLI::App& app) {
  const std::string command = app.get_subcommands().front()->get_name();
  if (const int world = torchrun_world_size()) {  // each rank would run the whole job on its own
    const char* rank = std::getenv("RANK");
    throw Error(str("lethe ", command, ": started as rank ", rank ? rank : "?", " of ", world,
                    " (torchrun's environment), but `lethe ", command, "` runs in one process; unlearn, run and eval "
                    "split over ranks (`torchrun --nproc-per-node ", world, " $(which lethe) unlearn --config run.json`; "
                    "docs/distributed.md)"));
  }
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
