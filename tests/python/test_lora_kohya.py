"""LoRA files in kohya form: every LDM-layout UNet layer's kohya name is
"lora_unet_" + its diffusers module path with '.' -> '_', the rule by which ComfyUI's
LoraLoader (comfy.utils.unet_to_diffusers + model_lora_keys_unet), A1111 and kohya map keys
onto SD1.x UNets. Reference: diffusers' own module names, matched to LDM keys through the
converter that the UNet parity tests validate numerically."""
import json

import pytest
import torch
from diffusers import UNet2DConditionModel

from ldm_convert import diffusers_to_ldm
from sd_helpers import CASES


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_unet_layer_gets_the_name_comfyui_maps(case, tmp_path, lethe):
    spec = dict(CASES[case])
    heads = spec.pop("heads")
    torch.manual_seed(0)
    ref = UNet2DConditionModel(sample_size=16, in_channels=3, out_channels=3, **spec)
    diffusers_sd = ref.state_dict()
    up_has_attention = ["CrossAttn" in t for t in spec["up_block_types"]]
    ldm = diffusers_to_ldm(diffusers_sd, spec["layers_per_block"], up_has_attention)
    by_storage = {t.data_ptr(): k for k, t in diffusers_sd.items()}
    from safetensors.torch import save_file

    path = tmp_path / "unet.safetensors"
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in ldm.items()}, str(path))
    config = lethe.UNet.load(str(path), norm_groups=spec["norm_num_groups"], **heads).config_json()
    checked = 0
    for key, tensor in ldm.items():
        if not key.endswith(".weight") or tensor.dim() < 2:
            continue  # LoRA adapts linear and conv weights
        module = key[: -len(".weight")]
        diffusers_key = by_storage[tensor.data_ptr()]
        expected = "lora_unet_" + diffusers_key[: -len(".weight")].replace(".", "_")
        assert lethe.kohya_module_name(module, config) == expected, module
        checked += 1
    assert checked > 40


def test_unmappable_paths_are_named(lethe):
    config = json.dumps({"channel_mult": [1, 2], "num_res_blocks": 1, "attention_levels": [1]})
    with pytest.raises(lethe.LetheError, match="input_blocks.9.1.proj_in"):
        lethe.kohya_module_name("input_blocks.9.1.proj_in", config)
    with pytest.raises(lethe.LetheError, match="no transformer"):
        lethe.kohya_module_name("input_blocks.1.1.proj_in", config)
