"""workflows/sd15-artist-removal.json: Load Checkpoint -> CLIPTextEncode (forget, anchor, empty
prompts) -> VAEEncode (artist and retain images) -> Lethe Dataset from Latents -> Lethe Unlearn
(LoRA) -> Lethe Save LoRA / Lethe Apply LoRA -> KSampler -> VAEDecode -> Lethe SSCD Score.

Headless (`lethe run` with the tiny checkpoint set via --set) the runner validates the whole
workflow and names each ComfyUI node it cannot run and why, running nothing; inside (the mock
of) ComfyUI, with stand-ins for ComfyUI's own nodes (tests/python/sd_standins.py), it runs end to
end on the tiny SD checkpoint: the LoRA lands in the loras folder, KSampler samples the patched
MODEL, and the generations are scored against the artist's images."""
import os

import numpy as np
from PIL import Image

from comfy_helpers import comfy, headless_refusal
from conftest import ROOT
from sd_helpers import SPEC, PixelDescriptor

WORKFLOW = os.path.join(ROOT, "workflows", "sd15-artist-removal.json")
COMFY_NODES = {"1": "CheckpointLoaderSimple", "4": "VAEEncode", "5": "CLIPTextEncode", "7": "VAEEncode",
               "8": "CLIPTextEncode", "9": "CLIPTextEncode", "16": "EmptyLatentImage", "17": "KSampler", "18": "VAEDecode"}


def test_headless_run_names_the_comfyui_nodes_it_cannot_run(tiny_sd, tmp_path):
    _, checkpoint, _ = tiny_sd
    stderr = headless_refusal(WORKFLOW, COMFY_NODES, tmp_path / "run", "--set", f"1.ckpt_name={checkpoint}",
                              "--set", f"2.path={checkpoint}", "--set", "13.steps=2")
    assert "CLIP text encoder" in stderr and "ComfyUI's VAE" in stderr and "ComfyUI's samplers" in stderr


def run_artist_workflow(workflow, spec, checkpoint, unlearn):
    """The start of a mock-ComfyUI script that runs an artist-removal workflow (the SD1.5 and SDXL
    ones share node ids) on the stand-ins for `spec`, small: 64 px images, `unlearn` on Lethe
    Unlearn, 3 sampler steps; it leaves `prompt`, `result`, `rate` and `scores`."""
    small = {"1": {"ckpt_name": checkpoint}, "2": {"path": checkpoint}, "3": {"size": 64}, "6": {"size": 64},
             "13": unlearn, "16": {"width": 64, "height": 64, "batch_size": 2}, "17": {"steps": 3},
             "19": {"path": "models/sscd/tiny.torchscript.pt"}}
    return f"""
        sys.path.insert(0, {os.path.join(ROOT, "tests", "python")!r})
        import sd_standins
        sd_standins.register({spec!r})
        prompt = executor.graph_to_prompt(json.load(open({workflow!r})))
        for node_id, inputs in {small!r}.items():
            prompt[node_id]["inputs"].update(inputs)
        result = executor.execute(prompt)
        if result.error is not None:
            raise result.error
        rate, scores = result.outputs["20"][0], json.loads(result.outputs["20"][1])
"""


def write_artist_inputs(base, checkpoint, name):
    """The mock ComfyUI folder `base` an artist-removal workflow reads: the checkpoint file as
    models/checkpoints/<name>, 2 artist and 4 retain images (64 px) and the parameter-free
    descriptor as models/sscd/tiny.torchscript.pt."""
    import torch

    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "checkpoints" / name).write_bytes(checkpoint.read_bytes())
    _images(base / "input" / "lethe" / "artist", 2, 0)
    _images(base / "input" / "lethe" / "retain", 4, 1)
    (base / "models" / "sscd").mkdir(parents=True)
    torch.jit.script(PixelDescriptor().eval()).save(str(base / "models" / "sscd" / "tiny.torchscript.pt"))


def _images(folder, count, seed):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(os.path.join(folder, f"{i}.png"))


def test_workflow_runs_inside_comfyui_on_the_tiny_checkpoint(tiny_sd, tmp_path):
    _, checkpoint, _ = tiny_sd
    write_artist_inputs(tmp_path / "comfyui", checkpoint, "tiny-sd15.safetensors")
    spec = {k: list(v) if isinstance(v, tuple) else v for k, v in SPEC.items()}
    out = comfy(tmp_path, run_artist_workflow(WORKFLOW, spec, "tiny-sd15.safetensors", {"steps": 3, "batch_size": 1}) + f"""
        # The score node with the workflow's descriptor, on the artist's images: against themselves
        # (exact copies) and against unrelated noise, at a threshold only a copy reaches.
        score = nodes.NODE_CLASS_MAPPINGS["LetheSSCDScore"]()
        artist = result.outputs["3"][1]
        noise = torch.rand(artist.shape, generator=torch.Generator().manual_seed(0))
        copies = json.loads(score.run(images=artist, reference=artist, threshold=0.999, match="paired",
                                      descriptor=result.outputs["19"][0], unique_id="90")["result"][1])
        unrelated = json.loads(score.run(images=noise, reference=artist, threshold=0.999, match="any",
                                         descriptor=result.outputs["19"][0], unique_id="91")["result"][1])
        print(json.dumps({{"loras": folder_paths.get_filename_list("loras"), "rate": rate, "scores": scores,
                          "patched_keys": sd_standins.KSampler.patched_keys,
                          "ran": sorted(result.outputs, key=int), "image": list(result.outputs["18"][0].shape),
                          "ui": sorted(k for k, v in result.ui.items() if v), "copies": copies, "unrelated": unrelated}}))
    """)
    assert out["loras"] == ["lethe/artist-removed_00001_.safetensors"]
    assert out["patched_keys"] == 40  # every adapted weight of the tiny UNet reached KSampler's MODEL
    scores = out["scores"]
    assert out["image"] == [2, 64, 64, 3] and len(scores["scores"]) == 2 and scores["descriptor"] == "torchscript"
    # the rate is the share of generations at or above the workflow's threshold (0.5)
    assert out["rate"] == sum(s["score"] >= 0.5 for s in scores["scores"]) / 2
    # an exact copy scores 1 (a copy), unrelated noise stays below the copy threshold
    # (tiny.torchscript.pt is PixelDescriptor: parameter-free, so the test is deterministic)
    copies, unrelated = out["copies"], out["unrelated"]
    assert copies["memorization_rate"] == 1.0 and min(s["score"] for s in copies["scores"]) > 0.999
    assert [s["reference"] for s in copies["scores"]] == list(range(len(copies["scores"])))
    assert unrelated["memorization_rate"] == 0.0 and max(s["score"] for s in unrelated["scores"]) < 0.999
    assert set(out["ran"]) >= set(COMFY_NODES) | {"2", "10", "11", "12", "13", "14", "15", "19", "20"}
