// The terminal progress bar of the `lethe` program, and Ctrl-C as a clean cancel: the
// first SIGINT sets a flag that the next progress update turns into lethe::Cancelled (the
// running job then saves a resumable checkpoint); a second SIGINT exits at once.
#pragma once

#include "core/progress.hpp"

namespace lethe::cli {

// A callback drawing a bar on stderr (a line every 10 s when stderr is not a terminal).
ProgressCallback terminal_progress(const std::string& label);

// Installs the SIGINT handler once.
void install_cancel_handler();

}  // namespace lethe::cli
