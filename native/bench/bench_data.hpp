// The embedded bench as a data preset ("bench" in a run config's data.preset): the artist's
// forget set or a class concept with its anchor, and the retain set, from Fashion-MNIST.
#pragma once

#include "unlearn/run.hpp"

namespace lethe::bench {

// The bench preset's data (no model needed): the artist pieces to forget (all ten when
// forget_pieces is empty) or a class concept with its anchor (a near class or a
// superclass), and the retain set (retain_limit applied).
unlearn::TaskData bench_task_data(const unlearn::DataConfig& config);

// "all" (or empty) -> {} (every piece); "0, 3,7" -> {0, 3, 7}. Anything else is an error
// naming `where`.
std::vector<int64_t> parse_forget_pieces(const std::string& text, const std::string& where);

// The class names and the superclasses (top, bottom, onepiece, footwear, accessory): the
// anchors a concept can become.
std::vector<std::string> anchor_names();

}  // namespace lethe::bench
