// Registration functions of the node groups, one file each, and the table of the core nodes'
// schemas (node_schemas.json) they register their functions under.
#pragma once

#include <string>

#include "graph/node_registry.hpp"

namespace lethe::graph::nodes {

// Registers `function` as node `name` with its schema from node_schemas.json.
void register_table_node(const std::string& name, NodeFunction function);

void register_data_nodes();       // image folders, datasets from IMAGE/MASK, models
void register_selection_nodes();  // timestep and frequency selection
void register_objective_nodes();  // one node per objective family
void register_unlearn_nodes();    // the training nodes
void register_sampling_nodes();   // sampling
void register_scoring_nodes();    // descriptors, SSCD scoring
void register_host_nodes();       // ComfyUI hosts: datasets from LATENT + CONDITIONING, LoRAs
void register_output_nodes();     // saving models and images (and headless stand-ins for core nodes)

}  // namespace lethe::graph::nodes
