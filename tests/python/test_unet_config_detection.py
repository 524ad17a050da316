"""UNet config detection from a checkpoint's key/shape table. The SD1.5 and SD2.1 tables
are built here from diffusers' own models on the meta device (no weights), renamed to the
LDM layout, so the reference is independent of Lethe's UNet code."""
import json

import pytest
import torch
from diffusers import UNet2DConditionModel

from ldm_convert import diffusers_to_ldm

SD15 = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
            attention_head_dim=8, in_channels=4, out_channels=4,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD21 = dict(SD15, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)


# diffusers' SDXL base UNet configuration (stabilityai/stable-diffusion-xl-base-1.0, unet/config.json)
SDXL = dict(block_out_channels=(320, 640, 1280), layers_per_block=2, cross_attention_dim=2048,
            attention_head_dim=(5, 10, 20), in_channels=4, out_channels=4, use_linear_projection=True,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816)


def shape_table(spec):
    with torch.device("meta"):
        model = UNet2DConditionModel(**spec)
    up_has_attention = ["CrossAttn" in kind for kind in spec["up_block_types"]]
    ldm = diffusers_to_ldm(model.state_dict(), spec["layers_per_block"], up_has_attention)
    return {k: list(v.shape) for k, v in ldm.items()}


def test_sd15_table_is_recognised(lethe):
    table = shape_table(SD15)
    assert len(table) == 686  # the SD1.5 UNet has 686 tensors
    config = json.loads(lethe.detect_unet_config(table))
    assert config["model_channels"] == 320
    assert config["channel_mult"] == [1, 2, 4, 4]
    assert config["context_dim"] == 768
    assert config["num_heads"] == 8 and config["num_head_channels"] == -1
    assert config["attention_levels"] == [0, 1, 2]
    assert config["num_res_blocks"] == 2 and config["transformer_depth"] == 1
    assert not config["use_linear_in_transformer"]


def test_sd21_table_is_recognised(lethe):
    config = json.loads(lethe.detect_unet_config(shape_table(SD21)))
    assert config["context_dim"] == 1024 and config["use_linear_in_transformer"]
    assert config["num_head_channels"] == 64


def test_sdxl_table_is_recognised(lethe):
    table = shape_table(SDXL)
    assert len(table) == 1680  # the SDXL base UNet has 1680 tensors
    config = json.loads(lethe.detect_unet_config(table))
    assert config["model_channels"] == 320 and config["channel_mult"] == [1, 2, 4]
    assert config["attention_levels"] == [1, 2] and config["level_transformer_depth"] == [0, 2, 10]
    assert config["transformer_depth"] == 10 and config["middle_attention"]
    assert config["context_dim"] == 2048 and config["num_head_channels"] == 64 and config["use_linear_in_transformer"]
    assert config["adm_in_channels"] == 2816


def test_a_level_whose_blocks_differ_in_depth_is_named(lethe):
    table = shape_table(SDXL)
    for key in [k for k in table if k.startswith("input_blocks.5.1.transformer_blocks.1.")]:
        del table[key]  # input block 5 (level 1) keeps one transformer block, input block 4 two
    with pytest.raises(lethe.LetheError, match=r"level 1 have different depths \(1, 2\)"):
        lethe.detect_unet_config(table)


def test_wrong_shape_is_rejected_naming_the_key(lethe):
    table = shape_table(SD15)
    key = "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"
    assert table[key] == [640, 768]
    table[key] = [640, 769]
    with pytest.raises(lethe.LetheError, match=r"input_blocks\.4\.1\.transformer_blocks\.0\.attn2\.to_k\.weight.*\[640, 769\].*\[640, 768\]"):
        lethe.detect_unet_config(table)


def test_missing_and_unexpected_keys_are_named(lethe):
    table = shape_table(SD15)
    del table["output_blocks.5.1.proj_out.bias"]
    with pytest.raises(lethe.LetheError, match=r"missing key output_blocks\.5\.1\.proj_out\.bias"):
        lethe.detect_unet_config(table)
    table = shape_table(SD15)
    table["label_emb.0.1.weight"] = [1280, 2816]
    with pytest.raises(lethe.LetheError, match=r"unexpected key label_emb\.0\.1\.weight"):
        lethe.detect_unet_config(table)


def test_unknown_context_width_needs_a_head_hint(lethe):
    table = shape_table(dict(SD15, cross_attention_dim=512))
    with pytest.raises(lethe.LetheError, match="head count"):
        lethe.detect_unet_config(table)
    config = json.loads(lethe.detect_unet_config(table, num_heads=8))
    assert config["context_dim"] == 512
