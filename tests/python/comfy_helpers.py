"""Helpers the tests that run inside (the mock of) ComfyUI share: comfy() runs a script in a
fresh interpreter after a prelude that loads the pack as ComfyUI loads a custom_nodes folder;
SMALL holds small step counts for every shipped workflow; needs_bench marks tests that use the
shipped bench models; write_score_folder_inputs writes the images score-folder reads;
comfyui_unet_config gives the unet_config ComfyUI detects for a diffusers-configured SD UNet;
headless_refusal runs a workflow with ComfyUI's own nodes headless and checks how it is refused;
family_script prefixes a host-path test script with what the model-family tests share."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

MOCK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "comfy_mock")
needs_bench = pytest.mark.usefixtures("bench_models")  # shipped: missing ones fail

PRELUDE = """
import json, os, sys
sys.path.insert(0, {mock!r})
import folder_paths
folder_paths.set_base({base!r})
import torch
import comfy.model_management, comfy.utils, nodes, executor
pack = nodes.load_custom_node({root!r})
native = sys.modules[{root!r}.replace(".", "_x_") + ".nodes"]._lethe
"""

# Small step counts for every shipped workflow (node id → inputs), as `lethe run --set` would;
# their LetheEvaluate nodes draw one sample per caption and class at 3 DDIM steps, no attacks.
SMALL_EVALUATE = {"samples_per_caption": 1, "samples_per_class": 1, "attacks": False, "sampling_steps": 3}
SMALL = {
    "quickstart": {"1": {"retain_limit": 64}, "7": {"steps": 2, "batch_size": 4}, "8": {"samples_per_prompt": 1, "steps": 2},
                   "10": SMALL_EVALUATE},
    "concept-erasure": {"1": {"retain_limit": 64}, "4": {"steps": 2, "batch_size": 4}, "5": {"samples_per_prompt": 1, "steps": 2},
                        "7": SMALL_EVALUATE},
    "compare-objectives": {"1": {"retain_limit": 64}, "7": {"steps": 2, "batch_size": 4}, "8": {"steps": 2, "batch_size": 4},
                           "9": {"steps": 2, "batch_size": 4}, "10": SMALL_EVALUATE},
    "score-folder": {},
}


def comfy(tmp_path, body, pack=ROOT, python=sys.executable):
    """Runs `body` after the prelude (which loads the pack folder `pack`) in a fresh interpreter
    (`python`, cwd = the mock ComfyUI base); returns the JSON object it prints on its last line."""
    base = str(tmp_path / "comfyui")
    os.makedirs(base, exist_ok=True)
    script = PRELUDE.format(mock=MOCK, base=base, root=pack) + textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH="")
    done = subprocess.run([python, "-c", script], cwd=base, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_score_folder_inputs(tmp_path):
    """What score-folder reads under ComfyUI's base: input/lethe/artist (3 images), input/lethe/generated
    (4: exact copies of artist images 0 and 1, then two of noise, so 2 of 4 are copies) and the
    descriptor models/sscd/sscd_disc_mixup.torchscript.pt, here a stand-in for the official file:
    the parameter-free PixelDescriptor (an exact copy scores 1, noise against noise near 0)."""
    import numpy as np
    import torch
    from PIL import Image

    from sd_helpers import PixelDescriptor

    rng = np.random.default_rng(0)
    base = tmp_path / "comfyui"
    artist = [(rng.random((28, 28)) * 255).astype(np.uint8) for _ in range(3)]
    generated = artist[:2] + [(rng.random((28, 28)) * 255).astype(np.uint8) for _ in range(2)]
    for folder, images in (("artist", artist), ("generated", generated)):
        path = base / "input" / "lethe" / folder
        path.mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(images):
            Image.fromarray(pixels).save(path / f"{i}.png")
    (base / "models" / "sscd").mkdir(parents=True, exist_ok=True)
    torch.jit.script(PixelDescriptor().eval()).save(str(base / "models" / "sscd" / "sscd_disc_mixup.torchscript.pt"))


def comfyui_unet_config(spec):
    """The unet_config keys comfy/utils.py:unet_to_diffusers reads, as comfy/model_detection.py:
    detect_unet_config finds them in the LDM checkpoint of a UNet2DConditionModel config `spec`:
    res blocks and channel multipliers per level, transformer depth per input block, per output
    block from the last one to the first (detect_unet_config walks output_blocks backwards), and
    the middle block's (diffusers' mid block always has cross-attention, with the last level's
    depth)."""
    channels = spec["block_out_channels"]
    depth = spec.get("transformer_layers_per_block", 1)
    depths = list(depth) if isinstance(depth, (list, tuple)) else [depth] * len(channels)  # per level
    per_block = spec["layers_per_block"]
    down = [d if "CrossAttn" in kind else 0 for d, kind in zip(depths, spec["down_block_types"])]
    up = [d if "CrossAttn" in kind else 0 for d, kind in zip(reversed(depths), spec["up_block_types"])]
    return {"num_res_blocks": [per_block] * len(channels), "channel_mult": [c // channels[0] for c in channels],
            "transformer_depth": [d for d in down for _ in range(per_block)],
            "transformer_depth_output": [d for d in reversed(up) for _ in range(per_block + 1)],
            "transformer_depth_middle": depths[-1]}


def headless_refusal(workflow, comfy_nodes, out, *arguments):
    """`lethe run workflow --out out *arguments` on a workflow with ComfyUI's own nodes: it fails,
    naming each of `comfy_nodes` ({node id: type}) as a ComfyUI node it cannot run, runs nothing and
    records the run as invalid. Returns its stderr."""
    from conftest import LETHE_EXE

    done = subprocess.run([LETHE_EXE, "run", workflow, "--out", str(out), *arguments], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip().startswith("- node")]
    assert len(lines) == len(comfy_nodes), done.stderr
    for node_id, kind in comfy_nodes.items():
        line = next(line for line in lines if line.strip().startswith(f"- node {node_id} ({kind})"))
        assert "a ComfyUI node the headless runner cannot run" in line and "inside ComfyUI" in line
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "invalid" and not (out / "outputs").exists()
    return done.stderr


FAMILY_PRELUDE = """
    import threading
    import comfy.model_base as model_base, comfy.model_sampling as model_sampling
    from comfy.model_patcher import ModelPatcher
    from safetensors.torch import load_file
    sys.path.insert(0, {tests!r})
    import family_standins
    M = pack.NODE_CLASS_MAPPINGS
    host_module = sys.modules[{root!r}.replace(".", "_x_") + ".nodes.host_model"]

    def node(name, uid, **inputs):
        return M[name]().run(unique_id=uid, **inputs)["result"]
"""


def family_script(body, **fields):
    """A script for comfy(): the mock's model classes and samplings, the family stand-ins, the pack's
    nodes as node(name, uid, **inputs) and its host_model module, then `body` formatted with `fields`
    (4-space indented, as comfy() dedents the whole)."""
    tests = os.path.dirname(os.path.abspath(__file__))
    return FAMILY_PRELUDE.format(tests=tests, root=ROOT) + body.format(**fields)
