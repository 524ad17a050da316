#include "unlearn/objectives/registry.hpp"

#include <mutex>

namespace lethe::unlearn {

void register_builtin_objectives() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_denoise_objectives();
    register_data_unlearning_objectives();
    register_preference_objectives();
    register_concept_objectives();
    register_esd_objectives();
  });
}

}  // namespace lethe::unlearn
