"""The parameter counts docs/distributed.md plans multi-node runs with: SDXL's UNet and FLUX.1's
transformer, built from their published configs by diffusers on the meta device (no weights, no
download), and rank-16 LoRA adapters on their attention projections (rank x (in + out) per
adapted linear layer). Run: .venv/bin/python bench/model_sizes.py
"""
import torch
from diffusers import FluxTransformer2DModel, UNet2DConditionModel

ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
FLUX_JOINT = ("add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")


def parameters(model):
    return sum(p.numel() for p in model.parameters())


def lora_parameters(model, rank, names):
    return sum(rank * (m.in_features + m.out_features) for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and n.endswith(names))


def main():
    with torch.device("meta"):
        sdxl = UNet2DConditionModel(
            sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=2048,
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
        flux = FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
            axes_dims_rope=(16, 56, 56))
    print(f"SDXL UNet: {parameters(sdxl):,} parameters; rank-16 LoRA on attention: "
          f"{lora_parameters(sdxl, 16, ATTENTION):,}")
    print(f"FLUX.1 transformer: {parameters(flux):,} parameters; rank-16 LoRA on attention: "
          f"{lora_parameters(flux, 16, ATTENTION + FLUX_JOINT):,}")


if __name__ == "__main__":
    main()
