// Registration hooks of the built-in objectives, one per family (one file each).
#pragma once

#include "unlearn/objective.hpp"

namespace lethe::unlearn {

void register_denoise_objectives();
void register_data_unlearning_objectives();
void register_preference_objectives();
void register_concept_objectives();
void register_esd_objectives();

}  // namespace lethe::unlearn
