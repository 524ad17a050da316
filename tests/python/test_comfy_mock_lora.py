"""The mock of ComfyUI (tests/python/comfy_mock/) along the path of the core LoraLoaderModelOnly
node: folder_paths' loras folder, nodes.LoraLoaderModelOnly, comfy.sd.load_lora_for_models,
comfy.lora.model_lora_keys_unet / load_lora and calculate_weight's "lora" patches, checked
against the closed form W + strength * alpha / rank * up @ down.

Unlike test_comfy_mock.py (a fresh interpreter per test), these import the mock in this process,
so that caplog sees the mock's log records: the `mock` fixture puts the mock first on sys.path
for the test and afterwards restores sys.path and the modules it shadows (the pack's own `nodes`
package among them)."""
import logging
import os
import sys
import types

import pytest
import torch
from safetensors.torch import save_file

from comfy_helpers import MOCK, comfyui_unet_config
from sd_helpers import SPEC

SHADOWED = ("comfy", "nodes", "folder_paths", "server", "executor")  # top-level names of the mock


def _shadowed(name):
    return name.split(".")[0] in SHADOWED


@pytest.fixture
def mock(tmp_path):
    """The mock's modules (folder_paths based at tmp_path/comfyui), imported in this process."""
    saved_modules = {name: module for name, module in sys.modules.items() if _shadowed(name)}
    saved_path = sys.path[:]
    for name in saved_modules:
        del sys.modules[name]
    sys.path.insert(0, MOCK)
    try:
        import comfy.lora
        import comfy.model_patcher
        import comfy.sd
        import folder_paths
        import nodes

        assert os.path.dirname(nodes.__file__) == MOCK, nodes.__file__
        folder_paths.set_base(str(tmp_path / "comfyui"))
        yield types.SimpleNamespace(lora=comfy.lora, sd=comfy.sd, ModelPatcher=comfy.model_patcher.ModelPatcher,
                                    folder_paths=folder_paths, nodes=nodes)
    finally:
        sys.path[:] = saved_path
        for name in [name for name in sys.modules if _shadowed(name)]:
            del sys.modules[name]
        sys.modules.update(saved_modules)


class Blocks(torch.nn.Module):
    """A diffusion model stand-in with nested names: blocks.0.proj [3x4], blocks.1.proj [2x3], out [2x2]."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([torch.nn.Module(), torch.nn.Module()])
        self.blocks[0].proj = torch.nn.Linear(4, 3)
        self.blocks[1].proj = torch.nn.Linear(3, 2)
        self.out = torch.nn.Linear(2, 2)


class TinyModel(torch.nn.Module):
    """BaseModel-shaped (state dict keys "diffusion_model.<path>"), without a model_config."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.diffusion_model = Blocks()


# LoRA prefix (generic ComfyUI form) -> (model key, rank, alpha or None)
TARGETS = {"diffusion_model.blocks.0.proj": ("diffusion_model.blocks.0.proj.weight", 2, 1.0),
           "diffusion_model.blocks.1.proj": ("diffusion_model.blocks.1.proj.weight", 1, 4.0),
           "diffusion_model.out": ("diffusion_model.out.weight", 2, None)}


def make_lora(kohya=False):
    """{tensor name: tensor} in the generic form, or kohya's (lora_unet_<path with _>); and the
    per-key (up, down, scale) the closed form needs."""
    g = torch.Generator().manual_seed(1)
    tensors, parts = {}, {}
    shapes = {k: v.shape for k, v in TinyModel().state_dict().items()}
    for prefix, (key, rank, alpha) in TARGETS.items():
        out_dim, in_dim = shapes[key]
        up, down = torch.randn(out_dim, rank, generator=g), torch.randn(rank, in_dim, generator=g)
        name = "lora_unet_" + prefix[len("diffusion_model."):].replace(".", "_") if kohya else prefix
        tensors[f"{name}.lora_up.weight"], tensors[f"{name}.lora_down.weight"] = up, down
        if alpha is not None:
            tensors[f"{name}.alpha"] = torch.tensor(alpha)
        parts[key] = (up, down, alpha / rank if alpha is not None else 1.0)
    return tensors, parts


def write_lora(mock, tensors, name="lethe/tiny.safetensors"):
    path = os.path.join(mock.folder_paths.get_folder_paths("loras")[0], name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(tensors, path)
    return name


def lora_messages(caplog):
    return [r.getMessage() for r in caplog.records if "lora key not loaded" in r.getMessage() or "NOT LOADED" in r.getMessage()]


@pytest.mark.parametrize("kohya", [False, True], ids=["generic", "kohya"])
def test_lora_loader_model_only_patches_a_clone_with_the_closed_form(mock, caplog, kohya):
    tensors, parts = make_lora(kohya)
    name = write_lora(mock, tensors)
    node = mock.nodes.LoraLoaderModelOnly
    assert node.INPUT_TYPES()["required"]["lora_name"][0] == [name]
    model = mock.ModelPatcher(TinyModel())
    original = {k: v.clone() for k, v in model.model.state_dict().items()}
    strength = 0.7
    with caplog.at_level(logging.WARNING):
        (patched,) = getattr(node(), node.FUNCTION)(model, name, strength)
    assert lora_messages(caplog) == [], "a complete file loads every tensor"
    assert patched is not model and patched.is_clone(model)
    assert model.patches == {}, "the input MODEL is left without patches"
    assert sorted(patched.patches) == sorted(parts)
    for key, (up, down, scale) in parts.items():
        expected = original[key] + strength * scale * (up @ down)
        torch.testing.assert_close(patched.patched_weight(key), expected)
    for key in original:  # add_patches only records; the module's weights are unchanged
        assert torch.equal(model.model.state_dict()[key], original[key])
    # merged into the module's weights as load_models_gpu does, then restored
    patched.patch_model()
    merged = patched.model.state_dict()
    for key, (up, down, scale) in parts.items():
        torch.testing.assert_close(merged[key], original[key] + strength * scale * (up @ down))
    patched.unpatch_model()
    assert all(torch.equal(patched.model.state_dict()[k], original[k]) for k in original)


def test_strength_zero_gives_the_model_back_and_a_missing_file_raises(mock):
    node = mock.nodes.LoraLoaderModelOnly()
    model = mock.ModelPatcher(TinyModel())
    assert node.load_lora_model_only(model, "nowhere.safetensors", 0.0)[0] is model
    with pytest.raises(FileNotFoundError, match="Model in folder 'loras' with filename 'nowhere.safetensors' not found."):
        node.load_lora_model_only(model, "nowhere.safetensors", 1.0)


def test_unknown_lora_keys_are_logged_and_the_rest_loads(mock, caplog):
    tensors, parts = make_lora()
    tensors["diffusion_model.nowhere.lora_up.weight"] = torch.ones(2, 1)
    tensors["diffusion_model.nowhere.lora_down.weight"] = torch.ones(1, 2)
    name = write_lora(mock, tensors)
    with caplog.at_level(logging.WARNING):
        (patched,) = mock.nodes.LoraLoaderModelOnly().load_lora_model_only(mock.ModelPatcher(TinyModel()), name, 1.0)
    assert sorted(lora_messages(caplog)) == ["lora key not loaded: diffusion_model.nowhere.lora_down.weight",
                                             "lora key not loaded: diffusion_model.nowhere.lora_up.weight"]
    assert all(r.levelno == logging.WARNING for r in caplog.records if "lora key not loaded" in r.getMessage())
    assert sorted(patched.patches) == sorted(parts)


def test_a_mapped_key_the_model_lacks_is_logged_not_loaded(mock, caplog):
    """load_lora_for_models: a patch add_patches refuses (its key is not in the model's state dict)."""
    model = mock.ModelPatcher(TinyModel())
    lora = {"x.lora_up.weight": torch.ones(2, 1), "x.lora_down.weight": torch.ones(1, 2)}
    mock.lora.model_lora_keys_unet = lambda m, key_map={}: {"x": "diffusion_model.gone.weight"}  # noqa: B006
    with caplog.at_level(logging.WARNING):
        patched, clip = mock.sd.load_lora_for_models(model, None, lora, 1.0, 0)
    assert clip is None and patched.patches == {}
    assert lora_messages(caplog) == ["NOT LOADED diffusion_model.gone.weight"]


def test_model_lora_keys_unet_generic_and_kohya_names(mock):
    key_map = mock.lora.model_lora_keys_unet(TinyModel(), {})
    assert key_map["lora_unet_blocks_0_proj"] == key_map["diffusion_model.blocks.0.proj"] == "diffusion_model.blocks.0.proj.weight"
    assert key_map["diffusion_model.blocks.0.proj.bias"] == "diffusion_model.blocks.0.proj.bias"
    assert "lora_unet_blocks_0_proj_bias" not in key_map
    assert not any(k.startswith("lycoris_") for k in key_map), "no model_config: no diffusers names"


def test_model_lora_keys_unet_maps_diffusers_names_for_an_sd_unet_config(mock):
    """With model_config.unet_config (SD-shaped), comfy.utils.unet_to_diffusers' names as kohya,
    lycoris and diffusers/PEFT LoRA names, onto the LDM keys."""
    model = TinyModel()
    model.model_config = types.SimpleNamespace(unet_config=comfyui_unet_config(SPEC))
    key_map = mock.lora.model_lora_keys_unet(model, {})
    ldm = "diffusion_model.input_blocks.1.1.proj_in.weight"
    assert key_map["lora_unet_down_blocks_0_attentions_0_proj_in"] == ldm
    assert key_map["lycoris_down_blocks_0_attentions_0_proj_in"] == ldm
    assert key_map["down_blocks.0.attentions.0.proj_in"] == key_map["unet.down_blocks.0.attentions.0.proj_in"] == ldm
    q = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    assert key_map["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q"] == q
    out = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight"
    assert key_map["down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out"] == out
    assert key_map["lora_unet_blocks_0_proj"] == "diffusion_model.blocks.0.proj.weight", "the generic part stays"


def test_load_lora_reads_the_diffusers_and_peft_pair_names(mock):
    up, down = torch.randn(3, 2), torch.randn(2, 4)
    for names in (("a_lora.up.weight", "a_lora.down.weight"), ("a.lora_B.weight", "a.lora_A.weight")):
        patches = mock.lora.load_lora({names[0]: up, names[1]: down}, {"a": "diffusion_model.a.weight"})
        assert list(patches) == ["diffusion_model.a.weight"]
        kind, (got_up, got_down, alpha, mid, dora) = patches["diffusion_model.a.weight"]
        assert kind == "lora" and got_up is up and got_down is down and (alpha, mid, dora) == (None, None, None)


def test_a_lora_patch_that_does_not_fit_logs_an_error_and_leaves_the_weight(mock, caplog):
    weight = torch.arange(6.0).reshape(2, 3)
    before = weight.clone()
    patch = (1.0, ("lora", (torch.ones(2, 1), torch.ones(1, 4), 1.0, None, None)), 1.0, None, None)  # up @ down is [2, 4]
    with caplog.at_level(logging.ERROR):
        out = mock.lora.calculate_weight([patch], weight, "diffusion_model.w.weight")
    assert torch.equal(out, before)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].getMessage().startswith("ERROR lora diffusion_model.w.weight "), errors
