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


def shape_table(spec):
    with torch.device("meta"):
        model = UNet2DConditionModel(**spec)
    ldm = diffusers_to_ldm(model.state_dict(), 2, [False, True, True, True])
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
    table["label_emb.0.0.weight"] = [1280, 2816]
    with pytest.raises(lethe.LetheError, match=r"unexpected key label_emb\.0\.0\.weight"):
        lethe.detect_unet_config(table)


def test_unknown_context_width_needs_a_head_hint(lethe):
    table = shape_table(dict(SD15, cross_attention_dim=512))
    with pytest.raises(lethe.LetheError, match="head count"):
        lethe.detect_unet_config(table)
    config = json.loads(lethe.detect_unet_config(table, num_heads=8))
    assert config["context_dim"] == 512
