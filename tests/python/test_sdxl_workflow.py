"""workflows/sdxl-artist-removal.json: the native path on an SDXL checkpoint. Load Checkpoint ->
CLIPTextEncode (forget, anchor, empty prompts; SDXL's CLIP gives a pooled output) -> VAEEncode ->
Lethe Dataset from Latents (context, pooled output and the latent's size: the UNet's y) -> Lethe
Unlearn (LoRA on the native SDXL UNet) -> Lethe Save LoRA / Lethe Apply LoRA -> KSampler ->
VAEDecode -> Lethe SSCD Score.

Checked here: the y native code builds from a CONDITIONING equals ComfyUI's SDXL.encode_adm with
the sizes ComfyUI's samplers fill in (the mock mirrors both); headless, the runner names each
ComfyUI node it cannot run; inside (the mock of) ComfyUI, on a tiny SDXL-shaped checkpoint
(tests/python/sd_standins.py, sd_helpers.SDXL_SPEC), the workflow runs end to end, the saved
kohya LoRA loads through LoraLoaderModelOnly with no key left unloaded and the same weights as
Lethe Apply LoRA, and the patched MODEL moves more under the forget prompt than under another."""
import os

import pytest

from comfy_helpers import comfy, headless_refusal
from conftest import ROOT
from sd_helpers import SDXL_SPEC
from test_sd15_workflow import run_artist_workflow, write_artist_inputs

WORKFLOW = os.path.join(ROOT, "workflows", "sdxl-artist-removal.json")
COMFY_NODES = {"1": "CheckpointLoaderSimple", "4": "VAEEncode", "5": "CLIPTextEncode", "7": "VAEEncode",
               "8": "CLIPTextEncode", "9": "CLIPTextEncode", "16": "EmptyLatentImage", "17": "KSampler", "18": "VAEDecode"}


def _spec():
    return {k: list(v) if isinstance(v, tuple) else v for k, v in SDXL_SPEC.items()}


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory):
    """A full-checkpoint-style SDXL file (model.diffusion_model.* in LDM keys, with stand-in
    conditioner and VAE tensors the UNet loader must skip) of a random diffusers UNet."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    from ldm_convert import diffusers_to_ldm

    torch.manual_seed(0)
    ref = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **SDXL_SPEC)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    up_has_attention = ["CrossAttn" in kind for kind in SDXL_SPEC["up_block_types"]]
    ldm = diffusers_to_ldm(ref.state_dict(), SDXL_SPEC["layers_per_block"], up_has_attention)
    tensors = {f"model.diffusion_model.{k}": v.contiguous() for k, v in ldm.items()}
    tensors["first_stage_model.decoder.conv_in.weight"] = torch.zeros(8, 4, 3, 3)
    tensors["conditioner.embedders.1.model.ln_final.weight"] = torch.ones(16)
    path = tmp_path_factory.mktemp("sdxl") / "tiny-sdxl.safetensors"
    save_file(tensors, str(path))
    return path


def test_y_from_conditioning_is_comfyuis_encode_adm_with_the_samplers_sizes(tmp_path):
    """For CONDITIONING entries with and without CLIPTextEncodeSDXL's size values, the pack's
    conversion, the dataset node's completion (the latent's size in pixels, crops 0, target = size)
    and lethe.sdxl_vector give ComfyUI's y: samplers.py sets width/height from the latent unless
    the entry has them, then SDXL.encode_adm (mirrored by the mock) embeds the six sizes."""
    out = comfy(tmp_path, """
        glue = sys.modules[pack.__name__ + ".nodes.comfy_glue"]
        from comfy.model_base import SDXL
        g = torch.Generator().manual_seed(0)
        entries = [{}, {"width": 1216, "height": 832}, {"crop_w": 64, "crop_h": 32},
                   {"target_width": 2048, "target_height": 1536}, {"width": 640, "height": 960, "crop_h": 8,
                                                                  "target_width": 512, "target_height": 512}]
        conditioning = [[torch.randn(1, 7, 2048, generator=g), dict(e, pooled_output=torch.randn(1, 1280, generator=g))]
                        for e in entries]
        latent_h, latent_w = 96, 128  # the images' latents: 768 x 1024 pixels
        native_form = glue.to_native("CONDITIONING", conditioning, "test")
        sizes = native.complete_sdxl_sizes(native_form["sizes"], latent_h * 8, latent_w * 8)
        y = native.sdxl_vector(native_form["pooled"], sizes)
        sdxl = SDXL(torch.nn.Linear(1, 1))
        expected = []
        for cond, values in conditioning:
            params = dict(values, cross_attn=cond)
            params.setdefault("width", latent_w * 8)
            params.setdefault("height", latent_h * 8)
            expected.append(sdxl.encode_adm(**params))
        expected = torch.cat(expected)
        mixed = conditioning[:1] + [[torch.randn(1, 7, 2048, generator=g), {}]]
        try:
            glue.to_native("CONDITIONING", mixed, "node 3 (LetheDatasetFromLatents) input 'conditioning'")
            error = None
        except ValueError as e:
            error = str(e)
        plain = glue.to_native("CONDITIONING", [[torch.randn(1, 7, 768, generator=g), {}]], "test")
        print(json.dumps({"shape": list(y.shape), "worst": (y - expected).abs().max().item(),
                          "context": list(native_form["context"].shape), "error": error,
                          "plain": [plain["pooled"] is None, plain["sizes"] is None]}))
    """)
    assert out["shape"] == [5, 2816] and out["context"] == [5, 7, 2048]
    assert out["worst"] < 1e-4, out["worst"]  # float32 cos/sin of arguments up to 2048 rad
    assert out["error"].startswith("node 3 (LetheDatasetFromLatents) input 'conditioning'")
    assert "some CONDITIONING entries carry a pooled output and some do not" in out["error"]
    assert out["plain"] == [True, True]


def test_headless_run_names_the_comfyui_nodes_it_cannot_run(tiny_sdxl, tmp_path):
    stderr = headless_refusal(WORKFLOW, COMFY_NODES, tmp_path / "run", "--set", f"1.ckpt_name={tiny_sdxl}",
                              "--set", f"2.path={tiny_sdxl}", "--set", "13.steps=2")
    assert "CLIP text encoder" in stderr and "ComfyUI's VAE" in stderr and "ComfyUI's samplers" in stderr


def test_workflow_runs_inside_comfyui_on_the_tiny_sdxl_checkpoint(tiny_sdxl, tmp_path):
    write_artist_inputs(tmp_path / "comfyui", tiny_sdxl, "tiny-sdxl.safetensors")
    unlearn = {"steps": 30, "batch_size": 2, "learning_rate": 3e-3}
    out = comfy(tmp_path, run_artist_workflow(WORKFLOW, _spec(), "tiny-sdxl.safetensors", unlearn) + f"""
        import logging
        model, clip = result.outputs["1"][0], result.outputs["1"][1]
        applied = result.outputs["15"][0]
        # The saved LoRA through LoraLoaderModelOnly, logging what it does not load.
        lines = []
        class Capture(logging.Handler):
            def emit(self, record):
                lines.append(record.getMessage())
        logging.getLogger().addHandler(Capture())
        name = folder_paths.get_filename_list("loras")[0]
        loaded = nodes.LoraLoaderModelOnly().load_lora_model_only(model, name, 1.0)[0]
        same = set(loaded.patches) == set(applied.patches) and all(
            torch.allclose(loaded.patched_weight(k), applied.patched_weight(k), atol=1e-6) for k in applied.patches)
        # The patched MODEL against the base under the forget prompt and another prompt.
        weights = {{base_key: loaded.patched_weight(base_key) for base_key in model.model.state_dict()}}
        unet = sd_standins._diffusers_unet(model.model.spec)
        unet.load_state_dict({{model.model.ldm_to_diffusers[k[len("diffusion_model."):]]: v for k, v in weights.items()}})
        after = sd_standins.keyed_model(unet, model.model.ldm_to_diffusers, model.model.spec)
        g = torch.Generator().manual_seed(5)
        x = torch.randn(2, 4, 8, 8, generator=g)
        sigma = model.model.model_sampling.sigmas[torch.tensor([200, 500])]
        def change(text):
            entry = [clip.encode(text), {{"pooled_output": clip.pooled_output(text)}}]
            conds = {{k: c.process_cond(batch_size=2).cond for k, c in
                     model.model.extra_conds(**dict(entry[1], cross_attn=entry[0], width=64, height=64)).items()}}
            with torch.no_grad():
                return (after.apply_model(x, sigma, **conds) - model.model.apply_model(x, sigma, **conds)).norm().item()
        forget_text = prompt["5"]["inputs"]["text"]
        print(json.dumps({{"loras": folder_paths.get_filename_list("loras"), "rate": rate, "scores": scores,
                          "patched_keys": sd_standins.KSampler.patched_keys, "loaded_same": same,
                          "not_loaded": [l for l in lines if "not loaded" in l.lower()],
                          "forget_change": change(forget_text), "other_change": change("a photo of a red bicycle"),
                          "ran": sorted(result.outputs, key=int), "image": list(result.outputs["18"][0].shape),
                          "dataset_text": result.ui.get("10", {{}}).get("text"),
                          "unlearn_text": result.ui.get("13", {{}}).get("text")}}))
    """)
    assert out["loras"] == ["lethe/sdxl-artist-removed_00001_.safetensors"]
    assert out["patched_keys"] == 80  # the 10 default targets of each of the tiny UNet's 8 transformer blocks
    assert out["not_loaded"] == [] and out["loaded_same"], "LoraLoader loads every key, as Lethe Apply LoRA patches"
    assert out["forget_change"] > 1.5 * out["other_change"], (out["forget_change"], out["other_change"])
    assert out["dataset_text"] == ["2 latents 4x8x8, conditioning 77x2048, pooled 16"]
    # SD's schedule in ComfyUI's sigmas: sqrt((1 - abar) / abar) from 0.0292 to 14.6
    lines = out["unlearn_text"]
    assert any(line.startswith("model: epsilon prediction, noise levels sigma 0.029") and " .. 14.6" in line and
               line.endswith("over 1000 timesteps") for line in lines), lines
    assert "timesteps drawn uniform" in "\n".join(lines), lines
    assert out["image"] == [2, 64, 64, 3] and len(out["scores"]["scores"]) == 2
    assert out["rate"] == sum(s["score"] >= 0.5 for s in out["scores"]["scores"]) / 2
    assert set(out["ran"]) >= set(COMFY_NODES) | {"2", "10", "11", "12", "13", "14", "15", "19", "20"}
