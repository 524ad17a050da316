"""Test-only converter: a diffusers UNet2DConditionModel state dict -> LDM (SD checkpoint)
key layout, for any number of levels, res blocks per level and attention placement.

It follows the key correspondence of diffusers' own SD conversion scripts (resnet names
norm1/conv1/time_emb_proj/norm2/conv2/conv_shortcut <-> in_layers.0/in_layers.2/
emb_layers.1/out_layers.0/out_layers.3/skip_connection; attention internals unchanged).
"""
import re

RESNET_NAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}

TOP_LEVEL = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",  # SDXL
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _resnet(rest):
    name, tail = rest.split(".", 1)
    return f"{RESNET_NAMES[name]}.{tail}"


def diffusers_to_ldm(state_dict, layers_per_block, up_has_attention):
    """up_has_attention[i]: whether diffusers up block i (deepest first) has attentions."""
    levels = len(up_has_attention)
    per_level = layers_per_block + 1
    out = {}
    for key, value in state_dict.items():
        new = None
        for prefix, target in TOP_LEVEL.items():
            if key.startswith(prefix + "."):
                new = target + key[len(prefix):]
        if new is None:
            m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)", key)
            if m:
                i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
                if kind == "resnets":
                    new = f"input_blocks.{per_level * i + j + 1}.0.{_resnet(rest)}"
                elif kind == "attentions":
                    new = f"input_blocks.{per_level * i + j + 1}.1.{rest}"
                else:
                    new = f"input_blocks.{per_level * (i + 1)}.0.{rest.replace('conv.', 'op.', 1)}"
        if new is None:
            m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
            if m:
                kind, j, rest = m[1], int(m[2]), m[3]
                new = f"middle_block.{2 * j}.{_resnet(rest)}" if kind == "resnets" else f"middle_block.1.{rest}"
        if new is None:
            m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)", key)
            if m:
                i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
                if kind == "resnets":
                    new = f"output_blocks.{per_level * i + j}.0.{_resnet(rest)}"
                elif kind == "attentions":
                    new = f"output_blocks.{per_level * i + j}.1.{rest}"
                else:
                    slot = 2 if up_has_attention[i] else 1
                    new = f"output_blocks.{per_level * i + layers_per_block}.{slot}.{rest}"
        if new is None:
            raise KeyError(f"no LDM name for diffusers key {key!r}")
        assert new not in out, new
        out[new] = value
    assert len(out) == len(state_dict) and levels >= 1
    return out
