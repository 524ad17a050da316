"""Real-model path (native, SD1.x): a tiny SD-shaped checkpoint (SD1.5's key layout and
"model.diffusion_model." prefix, 8 heads, context width 768 as CLIP gives, small channels;
the tiny_sd fixture of conftest.py, built from sd_helpers.SPEC) is LoRA-unlearned through the very nodes ComfyUI runs (LetheLoadModel, LetheDatasetFromLatents
with LATENT/CONDITIONING tensors, LetheUnlearn, LetheSaveLoRA). The saved kohya LoRA is
checked against the reference: diffusers' UNet2DConditionModel with the same weights, whose
module names are what ComfyUI's LoraLoader maps "lora_unet_..." keys to
(comfy.utils.unet_to_diffusers; docs/comfyui-contract.md §7). The same LoRA inside (the mock of)
ComfyUI is tested in test_comfy_pack.py (lora_in_comfyui)."""
import json

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import load_file

from sd_helpers import SPEC, transformer_blocks

SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")


def run(lethe, tmp_path, name, folders=None, **inputs):
    outputs, _ = lethe.run_node(name, inputs, "7", str(tmp_path), None, folders or {})
    return outputs


def unlearn_lora(lethe, tmp_path, path, steps=40):
    g = torch.Generator().manual_seed(3)
    forget_cond = torch.randn(1, 77, 768, generator=g)
    model = run(lethe, tmp_path, "LetheLoadModel", path=str(path))[0]
    forget = run(lethe, tmp_path, "LetheDatasetFromLatents", samples=torch.randn(4, 4, 8, 8, generator=g) / 0.18215,
                 conditioning=forget_cond, latent_scale=0.18215)[0]
    retain = run(lethe, tmp_path, "LetheDatasetFromLatents", samples=torch.randn(8, 4, 8, 8, generator=g) / 0.18215,
                 conditioning=torch.randn(8, 77, 768, generator=g), latent_scale=0.18215,
                 empty_conditioning=torch.randn(1, 77, 768, generator=g))[0]
    objective = run(lethe, tmp_path, "LetheObjectiveBaseline", method="neggrad", scale=1.0, eta=1e-3)[0]
    outputs = run(lethe, tmp_path, "LetheUnlearn", model=model, objective=objective, steps=steps, batch_size=4,
                  learning_rate=3e-3, seed=0, trainable="lora", lora_rank=4, retain_caption_dropout=0.25,
                  forget=forget, retain=retain)
    return forget_cond, outputs


def kohya_modules(ref):
    """What ComfyUI's LoraLoader maps for this UNet: kohya name -> diffusers module."""
    return {"lora_unet_" + name.replace(".", "_"): module for name, module in ref.named_modules() if name}


def test_sd_checkpoint_lora_unlearning_saves_a_lora_comfyui_maps(tiny_sd, tmp_path, lethe):
    ref, path, _ = tiny_sd
    forget_cond, (_, _, summary, lora) = unlearn_lora(lethe, tmp_path, path)
    assert json.loads(summary)["steps"] == 40
    loras = tmp_path / "models" / "loras"
    name = run(lethe, tmp_path, "LetheSaveLoRA", folders={"loras": str(loras)}, lora=lora,
               filename_prefix="lethe/artist")[0]
    assert name == "lethe/artist_00001_.safetensors"
    # a new name each time (LoraLoader caches by file name)
    assert run(lethe, tmp_path, "LetheSaveLoRA", folders={"loras": str(loras)}, lora=lora,
               filename_prefix="lethe/artist")[0] == "lethe/artist_00002_.safetensors"
    tensors = load_file(str(loras / name))
    with safe_open(str(loras / name), "pt") as f:
        meta = f.metadata()
    assert meta["objective"] == "neggrad" and meta["steps"] == "40" and meta["seed"] == "0"
    assert len(meta["source_model_sha256"]) == 64 and meta["ss_network_dim"] == "4"

    # Every key is kohya-suffixed and maps to an existing UNet weight of the right shape.
    modules = kohya_modules(ref)
    names = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in tensors}
    assert all(k.endswith(SUFFIXES) for k in tensors)
    assert len(names) == 10 * transformer_blocks(ref)  # the 10 default targets of every transformer block
    patched = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **SPEC)
    patched.load_state_dict(ref.state_dict())
    patched.eval()
    for module_name in names:
        assert module_name in modules, f"{module_name} maps to no UNet module"
        weight = dict(patched.named_modules())[
            next(n for n, m in ref.named_modules() if m is modules[module_name])].weight
        down, up = tensors[f"{module_name}.lora_down.weight"], tensors[f"{module_name}.lora_up.weight"]
        alpha = tensors[f"{module_name}.alpha"].item()
        delta = (up.flatten(1) @ down.flatten(1)).reshape(weight.shape) * (alpha / down.shape[0])
        with torch.no_grad():
            weight.add_(delta)  # what comfy/lora.py:calculate_weight does with strength 1

    # Applying it changes the output under the forgotten prompt more than under another one.
    g = torch.Generator().manual_seed(11)
    x, t = torch.randn(4, 4, 8, 8, generator=g), torch.tensor([100, 300, 600, 900])
    other_cond = torch.randn(1, 77, 768, generator=g)
    with torch.no_grad():
        def change(cond):
            c = cond.expand(4, -1, -1)
            return (patched(x, t, encoder_hidden_states=c).sample - ref(x, t, encoder_hidden_states=c).sample).norm()
        forget_change, other_change = change(forget_cond), change(other_cond)
    assert forget_change > 1.5 * other_change, (forget_change, other_change)


def test_merged_model_equals_base_plus_the_saved_lora(tiny_sd, tmp_path, lethe):
    """The LoRA file is exactly what was trained: the run's merged weights = base + scale * up @ down,
    with the kohya name of each LDM weight (the mapping the loader uses, inverted)."""
    ref, path, ldm = tiny_sd
    _, (model, _, _, lora) = unlearn_lora(lethe, tmp_path, path, steps=3)
    name = run(lethe, tmp_path, "LetheSaveLoRA", folders={"loras": str(tmp_path)}, lora=lora, filename_prefix="x")[0]
    tensors = load_file(str(tmp_path / name))
    run(lethe, tmp_path, "LetheSaveModel", model=model, filename_prefix="merged")
    merged = load_file(str(tmp_path / "merged_00001_.safetensors"))
    diffusers_name = {v.data_ptr(): k for k, v in ref.state_dict().items()}
    by_ldm = {key: diffusers_name[value.data_ptr()] for key, value in ldm.items()}
    adapted = 0
    for key, base in ldm.items():
        got = merged[f"diffusion_model.{key}"]
        module = "lora_unet_" + by_ldm[key][: -len(".weight")].replace(".", "_") if key.endswith(".weight") else None
        if module and f"{module}.lora_down.weight" in tensors:
            down, up = tensors[f"{module}.lora_down.weight"], tensors[f"{module}.lora_up.weight"]
            base = base + (up @ down).reshape(base.shape) * (tensors[f"{module}.alpha"].item() / down.shape[0])
            adapted += 1
        torch.testing.assert_close(got, base, rtol=1e-5, atol=1e-6, msg=key)
    assert adapted == 10 * transformer_blocks(ref)


def test_latent_and_conditioning_errors_name_the_input(tmp_path, lethe):
    with pytest.raises(lethe.LetheError, match=r"input 'conditioning'.*1 or 4 entries.*\[3, 77, 768\]"):
        run(lethe, tmp_path, "LetheDatasetFromLatents", samples=torch.zeros(4, 4, 8, 8),
            conditioning=torch.zeros(3, 77, 768), latent_scale=0.18215)
    with pytest.raises(lethe.LetheError, match=r"input 'mask'.*8x8.*\[1, 20, 20\]"):
        run(lethe, tmp_path, "LetheDatasetFromLatents", samples=torch.zeros(4, 4, 8, 8),
            conditioning=torch.zeros(1, 77, 768), latent_scale=0.18215, mask=torch.ones(1, 20, 20))
    # an image-size mask is averaged over each latent cell
    dataset = run(lethe, tmp_path, "LetheDatasetFromLatents", samples=torch.zeros(2, 4, 8, 8),
                  conditioning=torch.zeros(1, 77, 768), latent_scale=0.18215, mask=torch.ones(1, 64, 64))[0]
    assert dataset.type == "LETHE_DATASET"


def naive_deletion_one_step(lethe, tmp_path, path, trainable):
    """One naive-deletion step of the tiny checkpoint on two retain latents, through the nodes."""
    model = run(lethe, tmp_path, "LetheLoadModel", path=str(path))[0]
    g = torch.Generator().manual_seed(0)
    retain = run(lethe, tmp_path, "LetheDatasetFromLatents", samples=torch.randn(2, 4, 8, 8, generator=g),
                 conditioning=torch.randn(1, 77, 768, generator=g), latent_scale=0.18215)[0]
    objective = run(lethe, tmp_path, "LetheObjectiveBaseline", method="naive_deletion", scale=1.0, eta=1e-3)[0]
    return run(lethe, tmp_path, "LetheUnlearn", model=model, objective=objective, steps=1, batch_size=2,
               learning_rate=1e-4, seed=0, trainable=trainable, lora_rank=2, retain_caption_dropout=0.0, retain=retain)


def test_full_parameter_runs_have_no_lora_to_save(tiny_sd, tmp_path, lethe):
    lora = naive_deletion_one_step(lethe, tmp_path, tiny_sd[1], "full")[3]
    with pytest.raises(lethe.LetheError, match="trainable = lora"):
        run(lethe, tmp_path, "LetheSaveLoRA", lora=lora, filename_prefix="x")


def test_running_an_unlearn_node_again_reuses_the_finished_identical_run(tiny_sd, tmp_path, lethe):
    """ComfyUI runs a node again after a restart or a cache eviction: the same model, data and
    settings give the finished run back (no second training, same weights); a changed setting
    keeps the finished folder and trains in the next one."""
    first = naive_deletion_one_step(lethe, tmp_path, tiny_sd[1], "lora")
    trained = (tmp_path / "unlearn-node-7" / "summary.json").stat().st_mtime_ns
    again = naive_deletion_one_step(lethe, tmp_path, tiny_sd[1], "lora")
    assert (tmp_path / "unlearn-node-7" / "summary.json").stat().st_mtime_ns == trained
    assert not (tmp_path / "unlearn-node-7-2").exists()
    assert json.loads(again[2]) == json.loads(first[2])  # the summary output
    model = run(lethe, tmp_path, "LetheLoadModel", path=str(tiny_sd[1]))[0]
    retain = run(lethe, tmp_path, "LetheDatasetFromLatents", samples=torch.zeros(2, 4, 8, 8),
                 conditioning=torch.zeros(1, 77, 768), latent_scale=0.18215)[0]
    objective = run(lethe, tmp_path, "LetheObjectiveBaseline", method="naive_deletion", scale=1.0, eta=1e-3)[0]
    run(lethe, tmp_path, "LetheUnlearn", model=model, objective=objective, steps=1, batch_size=2, learning_rate=1e-4,
        seed=0, trainable="lora", lora_rank=2, retain_caption_dropout=0.0, retain=retain)
    assert (tmp_path / "unlearn-node-7-2" / "summary.json").exists()


def test_a_window_in_noise_levels_becomes_the_timesteps_of_those_sigmas(tiny_sd, tmp_path, lethe):
    """LetheTimestepSelection with sigma_max > 0: the window [sigma_min, sigma_max] in ComfyUI's
    sigmas, sqrt((1 - abar) / abar) of SD's scaled-linear schedule (written out here), becomes the
    t whose sigma lies inside; the unlearn node says which t and sigmas it trained."""
    _, path, _ = tiny_sd
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    sigmas = ((1 - abar) / abar).sqrt()
    inside = ((sigmas >= 1.0) & (sigmas <= 5.0)).nonzero().flatten()
    t_min, t_max = inside.min().item(), inside.max().item() + 1
    outputs, ui = lethe.run_node("LetheTimestepSelection", {"t_min": 0, "t_max": 1000, "weighting": "uniform",
                                                            "sigma_min": 1.0, "sigma_max": 5.0}, "3", str(tmp_path), None, {})
    assert ui["texts"] == [f"window in noise levels sigma [1, 5]: on SD1.x/SDXL's schedule t [{t_min}, {t_max}); "
                          "the unlearn node resolves it for its model"]
    g = torch.Generator().manual_seed(0)
    model = run(lethe, tmp_path, "LetheLoadModel", path=str(path))[0]
    forget = run(lethe, tmp_path, "LetheDatasetFromLatents", samples=torch.randn(2, 4, 8, 8, generator=g),
                 conditioning=torch.randn(1, 77, 768, generator=g), latent_scale=0.18215)[0]
    objective = run(lethe, tmp_path, "LetheObjectiveBaseline", method="neggrad", scale=1.0, eta=1e-3)[0]
    _, ui = lethe.run_node("LetheUnlearn", dict(model=model, objective=objective, steps=1, batch_size=2, learning_rate=1e-4,
                                                seed=0, trainable="lora", lora_rank=2, retain_caption_dropout=0.0,
                                                forget=forget, timesteps=outputs[0]), "8", str(tmp_path), None, {})
    line = next(text for text in ui["texts"] if text.startswith("forget window"))
    assert line.startswith(f"forget window sigma [1, 5] = t [{t_min}, {t_max}): noise levels sigma "), line
    low, high = (float(v) for v in line.split("noise levels sigma ")[1].split(" .. "))
    assert abs(low - sigmas[t_min].item()) < 1e-4 and abs(high - sigmas[t_max - 1].item()) < 1e-3
    assert low >= 1.0 and high <= 5.0
