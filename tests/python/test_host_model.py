"""Host path: a ComfyUI MODEL (any architecture ComfyUI loads) unlearned by Lethe's native
trainer through Python callbacks (nodes/host_model.py, python_bridge/bind_host.cpp).

The MODEL here is (the mock of) ComfyUI's BaseModel around a Python UNet (diffusers'
UNet2DConditionModel with the tiny SD checkpoint's weights), built under
torch.inference_mode() so its weights are inference tensors, as ComfyUI's loaders make them;
the nodes run on a worker thread under inference mode, as ComfyUI's executor runs them.
Reference: the native path on the same checkpoint and data computes the same first-step
loss terms (the LoRA starts as a no-op, so both evaluate the same base model on the same
draws of t, noise and caption dropout)."""
import pytest
import torch

from comfy_helpers import comfy
from sd_helpers import SPEC, transformer_blocks

SCRIPT = """
    import threading
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file
    import comfy.model_management
    from comfy.model_base import BaseModel
    from comfy.model_patcher import ModelPatcher
    from comfy.model_sampling import CONST, model_sampling
    M = pack.NODE_CLASS_MAPPINGS
    SPEC = {spec}
    def node(name, uid, **inputs):
        return M[name]().run(unique_id=uid, **inputs)["result"]

    class DiffusionModel(torch.nn.Module):  # ComfyUI's UNet call convention over a diffusers UNet
        def __init__(self, unet):
            super().__init__()
            self.unet = unet
        def forward(self, x, timesteps, context=None, **kwargs):
            return self.unet(x, timesteps, encoder_hidden_states=context).sample

    def load_host(kind=None):
        with torch.inference_mode():  # as ComfyUI's checkpoint loader runs
            unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **SPEC)
            unet.load_state_dict(load_file({weights!r}))
            unet.requires_grad_(False)
            unet.eval()
            base = BaseModel(DiffusionModel(unet), model_sampling(kind) if kind else model_sampling())
        return ModelPatcher(base)

    host = load_host()
    originals = {{k: v for k, v in host.model.state_dict().items()}}
    result = {{}}
    def work():
        with torch.inference_mode():
            g = torch.Generator().manual_seed(3)
            forget_cond = torch.randn(1, 77, 768, generator=g)
            cond = lambda tensors: [[t.unsqueeze(0), {{"pooled_output": torch.zeros(1, 768)}}] for t in tensors]
            forget_latents = {{"samples": torch.randn(4, 4, 8, 8, generator=g) / 0.18215}}
            retain_latents = {{"samples": torch.randn(8, 4, 8, 8, generator=g) / 0.18215}}
            retain_cond, empty = cond(torch.randn(8, 77, 768, generator=g)), cond(torch.randn(1, 77, 768, generator=g))
            forget = node("LetheDatasetFromLatents", "2", samples=forget_latents, conditioning=cond(forget_cond),
                          latent_scale=0.18215)[0]
            retain = node("LetheDatasetFromLatents", "3", samples=retain_latents, conditioning=retain_cond,
                          latent_scale=0.18215, empty_conditioning=empty)[0]
            objective = node("LetheObjectiveBaseline", "4", method="neggrad", scale=1.0, eta=1e-3)[0]
            train = dict(objective=objective, steps={steps}, batch_size=4, learning_rate=3e-3, seed=0, lora_rank=4,
                         retain_caption_dropout=0.25, forget=forget, retain=retain)
            patched, curve, summary, lora = node("LetheUnlearnHostModel", "5", model=host,
                                                 lora_targets="attn1.to_q, attn1.to_k, attn1.to_v, attn1.to_out.0, "
                                                 "attn2.to_q, attn2.to_k, attn2.to_v, attn2.to_out.0, ff.net.0.proj, ff.net.2",
                                                 **train)
            result["summary"] = json.loads(summary)
            result["curve"] = list(curve.shape)
            result["lora_name"] = node("LetheSaveLoRA", "6", lora=lora, filename_prefix="lethe/host")[0]
            result["patched"] = patched
            reapplied = node("LetheApplyLoRA", "7", model=host, lora=lora, strength=1.0)[0]
            result["reapplied_same"] = all(torch.equal(reapplied.patched_weight(k), patched.patched_weight(k))
                                           for k in patched.patches) and set(reapplied.patches) == set(patched.patches)
            # The native path on the same checkpoint and data (the reference for the first step), in
            # fp32 like the host's MODEL (the default `auto` is bf16 on an AMX CPU).
            native = node("LetheLoadModel", "8", path={checkpoint!r})[0]
            result["native"] = json.loads(node("LetheUnlearn", "9", model=native, trainable="lora", precision="fp32",
                                               **train)[2])
            # Errors: no layer matches; a sampling the host path does not train (CONST on a discrete
            # schedule); Cancel leaves the MODEL as it was.
            for label, call in (("targets", lambda: node("LetheUnlearnHostModel", "10", model=host, lora_targets="nothing_here",
                                                         **train)),
                                ("flow", lambda: node("LetheUnlearnHostModel", "11", model=load_host(CONST),
                                                      lora_targets="to_q", **train))):
                try:
                    call()
                except Exception as error:
                    result[label] = str(error)
            comfy.model_management.interrupt_current_processing(True)
            try:
                node("LetheUnlearnHostModel", "12", model=host, lora_targets="to_q", **train)
            except Exception as error:
                result["cancel"] = type(error).__name__
            result["forget_cond"] = forget_cond.clone()
    thread = threading.Thread(target=work)
    thread.start(); thread.join()

    base = host.model
    state = base.state_dict()
    untouched = all(state[k] is originals[k] or torch.equal(state[k], originals[k]) for k in originals)
    hooks = sum(len(m._forward_hooks) for m in base.modules())
    patched = result.pop("patched")
    lora = load_file(os.path.join(folder_paths.get_folder_paths("loras")[0], result["lora_name"]))
    shapes_ok = all(k.rsplit(".", 2)[0] + ".weight" in state if k.endswith(".weight") else k.rsplit(".", 1)[0] + ".weight" in state
                    for k in lora)
    shapes_ok = shapes_ok and all(
        lora[m + ".lora_up.weight"].shape[0] == state[m + ".weight"].shape[0] and
        lora[m + ".lora_down.weight"].shape[1] == state[m + ".weight"].shape[1]
        for m in {{k[: -len(".lora_down.weight")] for k in lora if k.endswith(".lora_down.weight")}})

    # The patched MODEL's output changes more under the forgotten prompt than under another one.
    g = torch.Generator().manual_seed(11)
    x, sigma = torch.randn(4, 4, 8, 8, generator=g), base.model_sampling.sigmas[torch.tensor([100, 300, 600, 900])]
    with torch.no_grad():
        after = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **SPEC)
        after.load_state_dict({{k[len("diffusion_model.unet."):]: patched.patched_weight(k) if k in patched.patches else v
                                for k, v in state.items() if k.startswith("diffusion_model.unet.")}})
        after_model = BaseModel(DiffusionModel(after.eval()), base.model_sampling)
        def change(c):
            c = c.expand(4, -1, -1)
            return (after_model.apply_model(x, sigma, c_crossattn=c) - base.apply_model(x, sigma, c_crossattn=c)).norm().item()
        forget_change, other_change = change(result.pop("forget_cond")), change(torch.randn(1, 77, 768, generator=g))
    print(json.dumps(dict(result, untouched=untouched, hooks=hooks, inference=all(v.is_inference() for v in state.values()),
                          patched_keys=len(patched.patches), input_patches=len(host.patches), lora_keys=sorted(lora)[:3],
                          lora_count=len(lora), shapes_ok=shapes_ok, forget_change=forget_change, other_change=other_change)))
"""


@pytest.fixture(scope="module")
def host_run(tiny_sd, tmp_path_factory):
    ref, path, _ = tiny_sd
    tmp = tmp_path_factory.mktemp("host")
    weights = tmp / "diffusers-unet.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(weights))
    spec = {k: list(v) if isinstance(v, tuple) else v for k, v in SPEC.items()}
    return comfy(tmp, SCRIPT.format(spec=repr(spec), weights=str(weights), checkpoint=str(path), steps=30)), ref


def test_host_model_trains_a_lora_through_python_callbacks(host_run):
    out, ref = host_run
    assert out["summary"]["steps"] == 30 and out["curve"][0] == 1
    # LoRA in ComfyUI's own key form, one adapter per default target of each transformer block
    adapted = 10 * transformer_blocks(ref)
    assert out["patched_keys"] == adapted and out["lora_count"] == 3 * adapted
    assert all(k.startswith("diffusion_model.unet.") for k in out["lora_keys"]) and out["shapes_ok"]
    assert out["lora_name"] == "lethe/host_00001_.safetensors" and out["reapplied_same"]
    # it unlearned: the forget prompt's output moved far more than another prompt's
    assert out["forget_change"] > 1.5 * out["other_change"], (out["forget_change"], out["other_change"])


def test_host_first_step_matches_the_native_path(host_run):
    """Same checkpoint, data, seed and objective: the first step's loss terms agree (the
    host's own schedule, sigma -> x0 -> eps conversion and forward give the native values)."""
    out, _ = host_run
    host, native = out["summary"]["first_terms"], out["native"]["first_terms"]
    assert set(host) == set(native)
    for name in ("loss", "forget", "retain"):
        if name in native:
            assert host[name] == pytest.approx(native[name], rel=2e-4, abs=1e-5), name


def test_host_model_is_left_as_it_was(host_run):
    """After training, a failed run and a cancelled one: the input MODEL has no patches and no
    hooks, and its weights are the same (inference) tensors with the same values."""
    out, _ = host_run
    assert out["untouched"] and out["inference"] and out["hooks"] == 0 and out["input_patches"] == 0
    assert out["cancel"] == "InterruptProcessingException"


def test_host_model_errors_name_the_node_and_what_was_expected(host_run):
    out, _ = host_run
    assert "no linear layer of ComfyUI MODEL (BaseModel) at node 10 (LetheUnlearnHostModel)" in out["targets"]
    assert "nothing_here" in out["targets"] and "e.g." in out["targets"]
    assert "node 11 (LetheUnlearnHostModel)" in out["flow"] and "is not one Lethe's host path trains" in out["flow"]
    assert "flow matching (CONST: SD3.x, Flux)" in out["flow"]
