// Plugs the embedded bench into the core's registries: the "bench" data preset, the default
// model (the bench's base model), the "bench" copy descriptor and the bench's nodes. Programs
// that offer the bench (the `lethe` command, the ComfyUI pack's module, the tests) call this
// once at start-up, before the registries are first used; the core never calls the bench.
#pragma once

namespace lethe::bench {

void register_bench();

}  // namespace lethe::bench
