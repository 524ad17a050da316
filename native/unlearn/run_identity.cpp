#include "unlearn/run_identity.hpp"

#include "io/hash.hpp"
#include "io/json_config.hpp"
#include "unlearn/run.hpp"

namespace lethe::unlearn {

namespace {

// Context, then pooled output and sizes only where given (a context-only conditioning hashes
// as its context did before conditioning had other parts).
void hash_conditioning(io::Sha256& hash, const models::Conditioning& conditioning) {
  hash.update(conditioning.context);
  if (conditioning.has_vector()) {
    hash.update(conditioning.pooled);
    hash.update(conditioning.sizes);
  }
}

void hash_set(io::Sha256& hash, const ExampleSet& set) {
  hash.update(set.images);
  hash.update(set.masks);
  const uint64_t captions = set.captions.size();
  hash.update(&captions, sizeof(captions));
  for (const std::string& caption : set.captions) hash.update(std::string_view(caption));
  hash_conditioning(hash, set.conditioning);
  hash_conditioning(hash, set.empty_conditioning);
}

// "was 8, now 160" for short scalar values; nothing for objects, arrays and long strings.
std::string change_text(const nlohmann::json& before, const nlohmann::json& after) {
  auto shown = [](const nlohmann::json& value) -> std::string {
    if (value.is_null()) return "absent";
    if (value.is_structured()) return "";
    std::string text = value.dump();
    return text.size() <= 40 ? text : "";
  };
  const std::string was = shown(before), now = shown(after);
  return was.empty() || now.empty() ? "" : str(" (was ", was, ", now ", now, ")");
}

std::string part_name(const std::string& path) {
  if (path == "model") return "model weights";
  if (path == "data") return "data (images, captions or masks)";
  return path;
}

void collect(const nlohmann::json& saved, const nlohmann::json& current, const std::string& path,
             std::vector<std::string>& out) {
  if (saved == current) return;
  if (saved.is_object() && current.is_object()) {
    std::vector<std::string> keys;
    for (auto it = saved.begin(); it != saved.end(); ++it) keys.push_back(it.key());
    for (auto it = current.begin(); it != current.end(); ++it)
      if (!saved.contains(it.key())) keys.push_back(it.key());
    for (const std::string& key : keys) {
      const nlohmann::json none;
      collect(saved.contains(key) ? saved[key] : none, current.contains(key) ? current[key] : none,
              path.empty() ? key : path + "." + key, out);
    }
    return;
  }
  // Hashes mean nothing to a reader: the part's name says it all.
  const bool hashed = path == "model" || path == "data";
  out.push_back(part_name(path.empty() ? "(everything)" : path) + (hashed ? "" : change_text(saved, current)));
}

}  // namespace

std::string task_data_sha256(const TaskData& data) {
  io::Sha256 hash;
  for (const ExampleSet* set : {&data.forget, &data.retain, &data.anchor}) hash_set(hash, *set);
  const uint64_t targets = data.target_captions.size();
  hash.update(&targets, sizeof(targets));
  for (const std::string& caption : data.target_captions) hash.update(std::string_view(caption));
  hash_conditioning(hash, data.target_conditioning);
  return hash.hex();
}

nlohmann::json run_identity(const RunConfig& config, const std::string& model_sha256, const std::string& data_sha256,
                            const nlohmann::json& objective_config, Precision precision) {
  nlohmann::json trainer = io::to_json(config.trainer);
  trainer.erase("checkpoint_every");
  trainer.erase("checkpoint_seconds");
  nlohmann::json identity = {{"model", model_sha256},
                             {"data", data_sha256},
                             {"objective", config.objective},
                             {"objective_config", objective_config},
                             {"timesteps", io::to_json(config.timesteps)},
                             {"frequency", io::to_json(config.frequency)},
                             {"trainer", trainer},
                             {"trainable", config.trainable}};
  if (config.trainable == "lora") identity["lora"] = io::to_json(config.lora);
  check(precision != Precision::automatic, "internal: a run's identity needs its resolved precision, not auto");
  if (precision != Precision::fp32) identity["precision"] = precision_name(precision);
  return identity;
}

std::vector<std::string> identity_differences(const nlohmann::json& saved, const nlohmann::json& current, size_t limit) {
  std::vector<std::string> all;
  collect(saved, current, "", all);
  if (all.size() <= limit) return all;
  std::vector<std::string> out(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(limit));
  out.push_back(str(all.size() - limit, " more"));
  return out;
}

}  // namespace lethe::unlearn
