// Registration functions of the node groups, one file each.
#pragma once

namespace lethe::graph::nodes {

void register_data_nodes();       // bench data, image folders, datasets from IMAGE/MASK, models
void register_selection_nodes();  // timestep and frequency selection
void register_objective_nodes();  // one node per objective family
void register_unlearn_nodes();    // the training node
void register_sampling_nodes();   // sampling
void register_scoring_nodes();    // descriptors, SSCD scoring, evaluation
void register_host_nodes();       // ComfyUI hosts: datasets from LATENT + CONDITIONING, LoRAs
void register_output_nodes();     // saving models and images (and headless stand-ins for core nodes)

}  // namespace lethe::graph::nodes
