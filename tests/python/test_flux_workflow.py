"""workflows/flux-concept-erasure.json: Load Diffusion Model (Flux) + DualCLIPLoader + Load VAE ->
CLIPTextEncode (concept, anchor, empty) -> FluxGuidance -> VAEEncode (anchor images) -> Lethe
Dataset from Latents (Flux's latent scale and shift) -> Lethe Unlearn (ComfyUI MODEL) with the
f-divergence objective (target = the concept's CONDITIONING, anchor = the anchor set) -> Lethe Save
LoRA, and KSampler on the patched MODEL -> VAEDecode -> Preview.

Headless (`lethe run`) the runner validates the workflow and names each ComfyUI node it cannot
run, running nothing; inside (the mock of) ComfyUI, with stand-ins for ComfyUI's own nodes over a
tiny random Flux (tests/python/flux_standins.py), it runs end to end: the LoRA lands in the loras
folder and loads through LoraLoaderModelOnly with every key, KSampler samples the patched MODEL."""
import os

import numpy as np
from PIL import Image

from comfy_helpers import comfy, headless_refusal
from conftest import ROOT

WORKFLOW = os.path.join(ROOT, "workflows", "flux-concept-erasure.json")
COMFY_NODES = {"1": "UNETLoader", "2": "DualCLIPLoader", "3": "VAELoader", "5": "CLIPTextEncode", "6": "CLIPTextEncode",
               "7": "CLIPTextEncode", "8": "VAEEncode", "9": "FluxGuidance", "10": "FluxGuidance",
               "15": "EmptySD3LatentImage", "17": "KSampler", "18": "VAEDecode"}


def test_headless_run_names_the_comfyui_nodes_it_cannot_run(tmp_path):
    stderr = headless_refusal(WORKFLOW, COMFY_NODES, tmp_path / "run")
    assert "guidance of ComfyUI's CONDITIONING" in stderr and "ComfyUI's samplers" in stderr


def test_workflow_runs_inside_comfyui_on_a_tiny_flux(tmp_path):
    base = tmp_path / "comfyui"
    anchors = base / "input" / "lethe" / "anchor"
    anchors.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(anchors / f"{i}.png")
    out = comfy(tmp_path, f"""
        import logging
        sys.path.insert(0, {os.path.join(ROOT, "tests", "python")!r})
        import flux_standins
        flux_standins.register()
        prompt = executor.graph_to_prompt(json.load(open({WORKFLOW!r})))
        small = {{"4": {{"size": 64}}, "13": {{"steps": 3, "learning_rate": 1e-3}},
                 "15": {{"width": 64, "height": 64, "batch_size": 1}}, "17": {{"steps": 4}}}}
        for node_id, inputs in small.items():
            prompt[node_id]["inputs"].update(inputs)
        result = executor.execute(prompt)
        if result.error is not None:
            raise result.error
        summary = json.loads(result.outputs["13"][2])
        lines = []
        handler = logging.Handler()
        handler.emit = lambda record: lines.append(record.getMessage())
        logging.getLogger().addHandler(handler)
        loras = folder_paths.get_filename_list("loras")
        model = nodes.NODE_CLASS_MAPPINGS["UNETLoader"]().load_unet("flux1-dev.safetensors", "default")[0]
        loaded = nodes.LoraLoaderModelOnly().load_lora_model_only(model, loras[0], 1.0)[0]
        print(json.dumps({{"loras": loras, "patched_keys": flux_standins.KSampler.patched_keys,
                          "loaded": len(loaded.patches), "log": lines, "steps": summary["steps"],
                          "first_terms": sorted(summary["first_terms"]), "image": list(result.outputs["18"][0].shape),
                          "ran": sorted(result.outputs, key=int)}}))
    """)
    assert out["loras"] == ["lethe/flux-concept-erased_00001_.safetensors"]
    # auto targets on Flux: the double block's 8 attention/MLP linears and the single block's linear1/linear2
    assert out["patched_keys"] == 10 and out["loaded"] == 10 and not any("not loaded" in line.lower() for line in out["log"])
    assert out["steps"] == 3 and "divergence" in out["first_terms"]
    assert out["image"] == [1, 64, 64, 3]
    assert set(out["ran"]) >= set(COMFY_NODES) | {"4", "11", "12", "13", "14"}
