// A run's identity: everything that determines its result. The starting model's weights and
// the data (both as SHA-256 of their tensors and captions, as loaded), the objective and
// its resolved config, the selections, the trainer settings (steps and seed included;
// checkpoint intervals excluded: they change when state is saved, not what is trained) and
// the LoRA targets. A run folder records it in identity.json and a checkpoint in its
// metadata; a run resumes only from an exact match, so a resume always continues the same run.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/precision.hpp"

#include "unlearn/objective.hpp"

namespace lethe::unlearn {

struct RunConfig;

// SHA-256 of the task data: each set's images, masks, captions and contexts, and the erased
// concept's captions or contexts.
std::string task_data_sha256(const TaskData& data);

// The identity of `config` run from a model whose weights hash to `model_sha256` on
// `data_sha256`, with the objective as resolved (`objective_config`), computing in the resolved
// `precision` (mixed precision trains another model; fp32 adds nothing, so folders made before
// precision was a setting keep their identity).
nlohmann::json run_identity(const RunConfig& config, const std::string& model_sha256, const std::string& data_sha256,
                            const nlohmann::json& objective_config, Precision precision = Precision::fp32);

// The parts in which two identities differ, named for people: "model weights",
// "data (images, captions or masks)", "trainer.steps (was 8, now 160)". At most `limit`
// entries, then "N more". Empty when they are equal.
std::vector<std::string> identity_differences(const nlohmann::json& saved, const nlohmann::json& current,
                                              size_t limit = 6);

}  // namespace lethe::unlearn
