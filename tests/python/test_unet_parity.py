"""The native LDM-layout UNet against diffusers' UNet2DConditionModel (the reference): a
small random model, renamed to the LDM layout by tests/python/ldm_convert.py, loads
strictly into the native UNet and gives the same output and input gradient."""
import json

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

from ldm_convert import diffusers_to_ldm
from sd_helpers import CASES


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


@pytest.mark.parametrize("case", sorted(CASES))
def test_native_unet_matches_diffusers_output(case, tmp_path, lethe):
    ref, native = build_pair(case, tmp_path, lethe)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 16, 16, generator=g)
    t = torch.tensor([10, 873])
    context = torch.randn(2, 5, CASES[case]["cross_attention_dim"], generator=g)
    with torch.no_grad():
        expected = ref(x, t, encoder_hidden_states=context).sample
        got = native.forward(x, t, context)
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
    for forward in (lambda x: ref(x, t, encoder_hidden_states=context).sample, lambda x: native.forward(x, t, context)):
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
