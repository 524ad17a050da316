"""The native LDM-layout UNet against diffusers' UNet2DConditionModel (the reference): a
small random model, renamed to the LDM layout by tests/python/ldm_convert.py, loads
strictly into the native UNet and gives the same output and input gradient. For the
SDXL-style case the native side gets y from lethe.sdxl_vector(pooled, sizes) and diffusers
gets text_embeds = pooled and time_ids = sizes, so the vector's layout is checked too."""
import json
import math

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

from ldm_convert import diffusers_to_ldm
from lethe_helpers import api, assert_clean
from lethe_helpers import lethe as lethe_cli
from sd_helpers import CASES, SDXL_VECTOR


def write_api(path, graph):
    path.write_text(json.dumps(api(graph)))
    return path


def build_pair(case, tmp_path, lethe):
    spec = dict(CASES[case])
    heads = spec.pop("heads")
    torch.manual_seed(0)
    ref = UNet2DConditionModel(sample_size=16, in_channels=3, out_channels=3, **spec)
    with torch.no_grad():  # randomise everything, zero-initialised layers and norms included
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ref.eval()
    up_has_attention = ["CrossAttn" in t for t in spec["up_block_types"]]
    ldm = diffusers_to_ldm(ref.state_dict(), spec["layers_per_block"], up_has_attention)
    path = tmp_path / f"{case}.safetensors"
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in ldm.items()}, str(path))
    native = lethe.UNet.load(str(path), norm_groups=spec["norm_num_groups"], **heads)
    return ref, native


def forwards(case, ref, native, t, context, generator, lethe):
    """(diffusers forward, native forward), each x -> output, with SDXL's y for SDXL-style cases."""
    if case not in SDXL_VECTOR:
        return (lambda x: ref(x, t, encoder_hidden_states=context).sample, lambda x: native.forward(x, t, context))
    pooled_dim, size_dim = SDXL_VECTOR[case]
    pooled = torch.randn(len(t), pooled_dim, generator=generator)
    sizes = torch.tensor([[1024.0, 768.0, 0.0, 32.0, 1024.0, 1024.0], [512.0, 512.0, 16.0, 0.0, 640.0, 512.0]])[: len(t)]
    y = lethe.sdxl_vector(pooled, sizes, size_embedding_dim=size_dim)
    assert y.shape == (len(t), pooled_dim + 6 * size_dim)
    added = {"text_embeds": pooled, "time_ids": sizes}
    return (lambda x: ref(x, t, encoder_hidden_states=context, added_cond_kwargs=added).sample,
            lambda x: native.forward(x, t, context, y))


@pytest.mark.parametrize("case", sorted(CASES))
def test_native_unet_matches_diffusers_output(case, tmp_path, lethe):
    ref, native = build_pair(case, tmp_path, lethe)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 16, 16, generator=g)
    t = torch.tensor([10, 873])
    context = torch.randn(2, 5, CASES[case]["cross_attention_dim"], generator=g)
    reference, forward = forwards(case, ref, native, t, context, g, lethe)
    with torch.no_grad():
        expected = reference(x)
        got = forward(x)
    assert got.shape == expected.shape
    err = (got - expected).abs().max().item()
    assert err <= 1e-4, f"max abs error {err}"
    assert expected.abs().max() > 0.1  # a meaningful, non-degenerate output


@pytest.mark.parametrize("case", sorted(CASES))
def test_native_unet_input_gradient_matches_diffusers(case, tmp_path, lethe):
    ref, native = build_pair(case, tmp_path, lethe)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 16, 16, generator=g)
    t = torch.tensor([500, 3])
    context = torch.randn(2, 5, CASES[case]["cross_attention_dim"], generator=g)
    weights = torch.randn(2, 3, 16, 16, generator=g)
    grads = []
    for forward in forwards(case, ref, native, t, context, g, lethe):
        xi = x.clone().requires_grad_(True)
        (forward(xi) * weights).sum().backward()
        grads.append(xi.grad)
    relative = ((grads[1] - grads[0]).norm() / grads[0].norm()).item()
    assert relative <= 1e-3, f"relative gradient error {relative}"


def test_detected_config_describes_the_model(tmp_path, lethe):
    _, native = build_pair("sd1_style", tmp_path, lethe)
    config = json.loads(native.config_json())
    assert config["model_channels"] == 32 and config["channel_mult"] == [1, 2, 2]
    assert config["attention_levels"] == [0, 1] and config["num_res_blocks"] == 2
    assert config["context_dim"] == 24 and not config["use_linear_in_transformer"]


def test_detected_config_describes_an_sdxl_style_model(tmp_path, lethe):
    _, native = build_pair("sdxl_style", tmp_path, lethe)
    config = json.loads(native.config_json())
    assert config["channel_mult"] == [1, 2, 2] and config["attention_levels"] == [1, 2]
    assert config["level_transformer_depth"] == [0, 1, 2] and config["transformer_depth"] == 2  # middle: the last level's
    assert config["adm_in_channels"] == 12 + 6 * 8 and config["use_linear_in_transformer"]


def test_the_vector_y_is_required_exactly_when_the_unet_has_a_label_emb(tmp_path, lethe):
    _, sdxl = build_pair("sdxl_style", tmp_path, lethe)
    _, sd1 = build_pair("sd1_style", tmp_path, lethe)
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([3])
    with pytest.raises(lethe.LetheError, match=r"expects y \[1, 60\].*pooled.*got none"):
        sdxl.forward(x, t, torch.randn(1, 5, 24))
    with pytest.raises(lethe.LetheError, match=r"expects y \[1, 60\].*got \[1, 59\]"):
        sdxl.forward(x, t, torch.randn(1, 5, 24), torch.randn(1, 59))
    with pytest.raises(lethe.LetheError, match="no label_emb"):
        sd1.forward(x, t, torch.randn(1, 5, 24), torch.randn(1, 60))


def test_the_native_trainer_takes_an_sdxl_unet_but_not_captions_without_pooled_output(tmp_path, lethe):
    """LetheLoadModel loads an SDXL-layout UNet; training it on a folder of captioned images (no
    pooled text embeddings for y) is refused before any step, naming LetheDatasetFromLatents."""
    import numpy as np
    from PIL import Image

    _, native = build_pair("sdxl_style", tmp_path, lethe)
    path = tmp_path / "sdxl_style.safetensors"
    save_file({f"diffusion_model.{k}": v.contiguous() for k, v in native.state_dict().items()}, str(path),
              metadata={"lethe.unet_config": native.config_json()})  # the head width, which weights cannot tell
    folder = tmp_path / "artist"
    folder.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((16, 16, 3), 40, np.uint8)).save(folder / f"{name}.png")
        (folder / f"{name}.txt").write_text("artist_lethe")
    graph = {1: ("LetheLoadModel", {"path": str(path)}), 2: ("LetheSaveModel", {"model": ["1", 0]})}
    done = lethe_cli("run", write_api(tmp_path / "wf.json", graph), "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    graph = {1: ("LetheLoadModel", {"path": str(path)}), 2: ("LetheLoadForgetSet", {"folder": str(folder)}),
             3: ("LetheObjectiveBaseline", {"method": "neggrad", "scale": 1.0, "eta": 0.001}),
             4: ("LetheUnlearn", {"model": ["1", 0], "objective": ["3", 0], "forget": ["2", 0], "steps": 1, "batch_size": 2}),
             5: ("LetheSaveModel", {"model": ["4", 0]})}
    done = lethe_cli("run", write_api(tmp_path / "wf2.json", graph), "--out", tmp_path / "run2")
    assert done.returncode == 1
    assert_clean(done.stderr, "node 4 (LetheUnlearn)", "forget set", "no pooled text embeddings", "60-wide y",
                 "Lethe Dataset from Latents")


def test_the_sdxl_vector_is_comfyuis_encode_adm(lethe):
    """ComfyUI's SDXL.encode_adm (comfy/model_base.py, mirrored by the mock): the pooled output,
    then Timestep(256) of height, width, crop_h, crop_w, target_height, target_width, each a
    [cos, sin] embedding with frequencies 10000^(-i/128) -- written out here from that formula."""
    pooled = torch.randn(2, 1280, generator=torch.Generator().manual_seed(4))
    values = [832.0, 1216.0, 0.0, 64.0, 1024.0, 1024.0]
    y = lethe.sdxl_vector(pooled, torch.tensor([values] * 2))
    half = 128
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    parts = [torch.cat([torch.cos(v * frequencies), torch.sin(v * frequencies)]) for v in values]
    expected = torch.cat([pooled[0].double(), *parts])
    assert y.shape == (2, 2816)
    assert torch.allclose(y[0].double(), expected, atol=1e-3)  # float32 arguments up to 1216 rad
    assert torch.allclose(y[1, 1280:], y[0, 1280:])
    with pytest.raises(lethe.LetheError, match=r"sizes \[2, 6\].*height, width, crop top.*got \[2, 5\]"):
        lethe.sdxl_vector(pooled, torch.zeros(2, 5))


def test_gradient_checkpointing_gives_the_same_parameter_gradients(tmp_path, lethe):
    _, native = build_pair("sd1_style", tmp_path, lethe)
    params = native.named_parameters()
    x, t, context = torch.randn(2, 3, 16, 16), torch.tensor([5, 700]), torch.randn(2, 5, 24)
    results = []
    for checkpointing in (False, True):
        native.gradient_checkpointing = checkpointing
        for p in params.values():
            p.grad = None
        native.forward(x, t, context).square().mean().backward()
        results.append({k: p.grad.clone() for k, p in params.items()})
    for key in results[0]:
        assert torch.allclose(results[0][key], results[1][key], atol=1e-6), key
