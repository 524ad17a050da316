"""The host path on every model family ComfyUI samples: SD1.x (EPS), SD2 (V_PREDICTION), SDXL
(EPS with the pooled/size vector y), SD3 (flow matching, ModelSamplingDiscreteFlow shift 3)
and Flux (flow matching, ModelSamplingFlux, y and guidance), each a tiny stand-in network
(family_standins.py) inside (the mock of) ComfyUI's model class for it, loaded under
torch.inference_mode() and trained on a worker thread, as ComfyUI runs nodes.

Reference: the first step's NegGrad forget term recomputed here from ComfyUI's formulas,
written out in this file independently of nodes/host_model.py (the family's sigma table and
time warping, its input scaling and timestep, SDXL's y from the pooled output and the size
embeddings, Flux's guidance per prompt, and the target of its parameterisation: eps, v, or
the velocity eps - x_0), at the x_t, t and contexts native code passed on that step (the LoRA
starts as a no-op, so the step-1 prediction is the base model's). Then: the saved LoRA loads
through LoraLoaderModelOnly with no unloaded key and equals Lethe Apply LoRA's patches, the
patched MODEL moved more under the forget prompts than under another, and the input MODEL is
as it was."""

import pytest

from comfy_helpers import comfy, family_script

FAMILIES = ("sd1", "sd2_v", "sdxl", "sd3", "flux")
TEXT_TARGETS = {"sd1": "attn2.to_k, attn2.to_v", "sd2_v": "attn2.to_k, attn2.to_v", "sdxl": "attn2.to_k, attn2.to_v",
                "sd3": "context_block.attn.qkv", "flux": "txt_attn.qkv"}

SCRIPT = """
    import logging, math
    family = {family!r}

    with torch.inference_mode():  # as ComfyUI's checkpoint loader runs
        torch.manual_seed(0)
        if family in ("sd1", "sd2_v"):
            net = family_standins.TinySDXLUNet(pooled_dim=None)
            kind = model_sampling.V_PREDICTION if family == "sd2_v" else model_sampling.EPS
            base = model_base.BaseModel(net, model_sampling.model_sampling(kind))
        elif family == "sdxl":
            base = model_base.SDXL(family_standins.TinySDXLUNet(), model_sampling.model_sampling(model_sampling.EPS))
        elif family == "sd3":
            base = model_base.SD3(family_standins.TinyMMDiT(), model_sampling.flow_sampling("sd3"))
        else:
            base = model_base.Flux(family_standins.TinyFlux(), model_sampling.flow_sampling("flux"))
        base.requires_grad_(False)
        base.eval()
    host = ModelPatcher(base)
    originals = dict(host.model.state_dict())
    channels = 4 if family in ("sd1", "sd2_v", "sdxl") else 16

    g = torch.Generator().manual_seed(5)
    def prompt(values):
        entry = dict(values)
        if family not in ("sd1", "sd2_v"):
            entry["pooled_output"] = torch.randn(1, 32, generator=g)
        return [torch.randn(1, 7, 48, generator=g), entry]
    forget_values = [{{}}, {{}}]
    if family == "sdxl":
        forget_values[1] = {{"width": 1024, "height": 768, "crop_w": 16, "target_width": 896}}
    if family == "flux":
        forget_values = [{{"guidance": 2.5}}, {{"guidance": 4.0}}]
    forget_cond = [prompt(v) for v in forget_values]
    other_cond = [prompt(v) for v in forget_values]  # other prompts with the same values
    retain_cond = [prompt({{}}) for _ in range(2)]
    forget_latents = torch.randn(2, channels, 8, 8, generator=g)
    retain_latents = torch.randn(2, channels, 8, 8, generator=g)

    calls = []
    original_predict = host_module.HostModelAdapter.predict
    def recording(self, x_t, t, context, adapters):
        if adapters and not calls:
            calls.append((x_t.clone(), t.clone(), context.clone()))
        return original_predict(self, x_t, t, context, adapters)
    host_module.HostModelAdapter.predict = recording

    result = {{}}
    def work():
        with torch.inference_mode():
            latent = dict(latent_scale=base.latent_scale, latent_shift=base.latent_shift)  # the family's format
            forget = node("LetheDatasetFromLatents", "2", samples={{"samples": forget_latents}}, conditioning=forget_cond,
                          **latent)[0]
            retain = node("LetheDatasetFromLatents", "3", samples={{"samples": retain_latents}}, conditioning=retain_cond,
                          **latent)[0]
            neggrad = node("LetheObjectiveBaseline", "4", method="neggrad", scale=1.0, eta=1e-3)[0]
            window = node("LetheTimestepSelection", "12", t_min=100, t_max=900, weighting="uniform")[0]
            ran = M["LetheUnlearnHostModel"]().run(unique_id="5", model=host, lora_targets="auto", objective=neggrad,
                                                   steps=1, batch_size=2, learning_rate=3e-3, seed=0, lora_rank=4,
                                                   retain_caption_dropout=0.0, forget=forget, timesteps=window)
            result["summary"] = json.loads(ran["result"][2])
            result["texts"] = ran["ui"]["text"]
            # The text side only (the keys and values the prompt's tokens make), so what changes depends on the prompt.
            patched, curve, summary, lora = node("LetheUnlearnHostModel", "8", model=host, lora_targets={text_targets!r},
                                                 objective=neggrad, steps={steps}, batch_size=2, learning_rate=1e-2,
                                                 seed=0, lora_rank=4, retain_caption_dropout=0.0, forget=forget)
            result["steps"] = json.loads(summary)["steps"]
            siss = node("LetheObjectiveSISS", "7", **{siss!r})[0]
            result["siss"] = json.loads(node("LetheUnlearnHostModel", "9", model=host, lora_targets="auto", objective=siss,
                                             steps=2, batch_size=2, learning_rate=1e-3, seed=0, lora_rank=4,
                                             retain_caption_dropout=0.0, forget=forget, retain=retain)[2])["steps"]
            if family in ("sdxl", "sd3"):  # a prompt without the pooled output these models need
                bare = node("LetheDatasetFromLatents", "10", samples={{"samples": forget_latents}},
                            conditioning=[[c[0] * 1.5, {{}}] for c in forget_cond], **latent)[0]
                try:
                    node("LetheUnlearnHostModel", "11", model=host, lora_targets="auto", objective=neggrad, steps=1,
                         batch_size=2, learning_rate=1e-3, seed=0, lora_rank=4, retain_caption_dropout=0.0, forget=bare)
                except Exception as error:
                    result["missing"] = str(error)
            result["lora_name"] = node("LetheSaveLoRA", "6", lora=lora, filename_prefix="lethe/" + family)[0]
            result["patched"] = patched
    thread = threading.Thread(target=work)
    thread.start(); thread.join()
    host_module.HostModelAdapter.predict = original_predict
    patched = result.pop("patched")

    # The first step's forget term from ComfyUI's formulas (nothing of nodes/host_model.py).
    x_t, t, context = calls[0]
    rows = [next(i for i, c in enumerate(forget_cond) if torch.equal(c[0][0], row)) for row in context]
    x0 = (forget_latents[rows] - base.latent_shift) * base.latent_scale  # ComfyUI's process_latent_in
    def comfy_sigma(t):  # ComfyUI's sigma of Lethe's timestep t, from the family's formulas
        u = (t.double() + 1) / 1000
        if family == "sd3":
            return (3.0 * u / (1 + 2.0 * u)).float()                      # time_snr_shift(3, u)
        if family == "flux":
            return (math.exp(1.15) / (math.exp(1.15) + 1 / u - 1)).float()  # flux_time_shift(1.15, 1, u)
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
        abar = torch.cumprod(1 - betas, 0)
        return ((1 - abar) / abar).sqrt().float()[t]
    result["window_sigmas"] = comfy_sigma(torch.tensor([100, 899])).tolist()
    u = (t.double() + 1) / 1000
    if family == "sd3":
        s = (3.0 * u / (1 + 2.0 * u)).float()                          # time_snr_shift(3, u)
        gamma, sigma, x, timestep = 1 - s, s, x_t, s * 1000            # CONST; timestep = sigma * multiplier
    elif family == "flux":
        mu = 1.15
        s = (math.exp(mu) / (math.exp(mu) + 1 / u - 1)).float()       # flux_time_shift(1.15, 1, u)
        gamma, sigma, x, timestep = 1 - s, s, x_t, s                   # CONST; Flux's timestep is sigma
    else:
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
        abar = torch.cumprod(1 - betas, 0)
        comfy_sigma = ((1 - abar) / abar).sqrt().float()[t]
        gamma, sigma = 1 / (1 + comfy_sigma ** 2).sqrt(), comfy_sigma / (1 + comfy_sigma ** 2).sqrt()
        x, timestep = x_t, t.float()                                   # x = x_t sqrt(s^2 + 1) scaled back by c_in
    view = lambda v: v.view(-1, 1, 1, 1)
    eps = (x_t - view(gamma) * x0) / view(sigma)

    def emb(value, dim=256):                                           # Timestep(256): cos, then sin
        freqs = torch.exp(-math.log(10000) * torch.arange(dim // 2, dtype=torch.float32) / (dim // 2))
        args = torch.tensor([float(value)]) * freqs
        return torch.cat([torch.cos(args), torch.sin(args)])
    inputs = {{"context": context}}
    if family == "sdxl":
        ys = []
        for r in rows:
            v = forget_values[r]
            w, h = v.get("width", 64), v.get("height", 64)
            sizes = [h, w, v.get("crop_h", 0), v.get("crop_w", 0), v.get("target_height", h), v.get("target_width", w)]
            ys.append(torch.cat([forget_cond[r][1]["pooled_output"][0]] + [emb(n) for n in sizes]))
        inputs["y"] = torch.stack(ys)
    elif family in ("sd3", "flux"):
        inputs["y"] = torch.cat([forget_cond[r][1]["pooled_output"] for r in rows])
    if family == "flux":
        inputs["guidance"] = torch.tensor([forget_values[r]["guidance"] for r in rows])
    with torch.no_grad():
        out = base.diffusion_model(x, timestep, **inputs).float()
    if family == "sd2_v":
        target = view(gamma) * eps - view(sigma) * x0
    elif family in ("sd3", "flux"):
        target = eps - x0
    else:
        target = eps
    reference = ((out - target) ** 2).flatten(1).sum(1).mean().item()

    # The saved LoRA through LoraLoaderModelOnly: every key loaded, the same weights as Lethe Apply LoRA.
    import nodes as comfy_nodes
    class Capture(logging.Handler):
        def __init__(self):
            super().__init__()
            self.lines = []
        def emit(self, record):
            self.lines.append(record.getMessage())
    capture = Capture()
    logging.getLogger().addHandler(capture)
    loaded = comfy_nodes.LoraLoaderModelOnly().load_lora_model_only(host, result["lora_name"], 1.0)[0]
    logging.getLogger().removeHandler(capture)
    same = set(loaded.patches) == set(patched.patches) and all(
        torch.allclose(loaded.patched_weight(k), patched.patched_weight(k), atol=1e-6) for k in patched.patches)

    # The patched MODEL moved more under the forget prompts than under another prompt.
    with torch.no_grad():
        state = base.state_dict()
        after = {{k: patched.patched_weight(k) if k in patched.patches else v for k, v in state.items()}}
        import copy
        after_model = copy.deepcopy(base)
        after_model.load_state_dict(after)
        sampling = base.model_sampling
        sig = sampling.sigmas[torch.tensor([len(sampling.sigmas) // 5, len(sampling.sigmas) // 2])]
        noise = torch.randn(2, channels, 8, 8, generator=g)
        def change(cond):
            params = dict(cond[1], cross_attn=cond[0], device=torch.device("cpu"), noise=noise, width=64, height=64)
            conds = {{k: v.process_cond(batch_size=2).cond if hasattr(v, "process_cond") else v
                      for k, v in base.extra_conds(**params).items()}}
            return (after_model.apply_model(noise, sig, **conds) - base.apply_model(noise, sig, **conds)).norm().item()
        forget_change = sum(change(c) for c in forget_cond) / 2
        other_change = sum(change(c) for c in other_cond) / 2

    state = base.state_dict()
    untouched = all(state[k] is originals[k] or torch.equal(state[k], originals[k]) for k in originals)
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in base.modules())
    import comfy.ldm.flux.math as flux_math
    kernel_back = flux_math.apply_rope.__module__ == "comfy_kitchen.backends.eager"  # the swap is undone
    print(json.dumps(dict(result, reference=reference, t=t.tolist(), not_loaded=[l for l in capture.lines if "not loaded" in l.lower()],
                          lora_patches=len(loaded.patches), same=same, forget_change=forget_change, other_change=other_change,
                          untouched=untouched, hooks=hooks, input_patches=len(host.patches), kernel_back=kernel_back,
                          inference=all(v.is_inference() for v in state.values()))))
"""

SISS = {"method": "siss", "lambda": 0.5, "scaling_norm": 1.0}


@pytest.fixture(scope="module", params=FAMILIES)
def family_run(request, tmp_path_factory):
    script = family_script(SCRIPT, family=request.param, steps=30, siss=SISS, text_targets=TEXT_TARGETS[request.param])
    return request.param, comfy(tmp_path_factory.mktemp(request.param), script)


def test_first_step_loss_equals_comfyuis_formulas(family_run):
    family, out = family_run
    got = out["summary"]["first_terms"]["forget"]
    assert got == pytest.approx(out["reference"], rel=2e-4), (family, got, out["reference"], out["t"])


def test_lora_loads_through_lora_loader_and_forgets_the_prompt(family_run):
    family, out = family_run
    assert out["lora_name"] == f"lethe/{family}_00001_.safetensors"
    assert out["not_loaded"] == [] and out["lora_patches"] > 0 and out["same"], out
    assert out["forget_change"] > 1.5 * out["other_change"], (family, out["forget_change"], out["other_change"])
    assert out["steps"] == 30 and out["siss"] == 2


def test_the_node_says_what_it_made_of_the_model(family_run):
    """The parameterisation and the noise levels (ComfyUI's sigmas) the host path read from the MODEL, and
    the forget window in those noise levels."""
    family, out = family_run
    kind, first, last = {"sd1": ("epsilon prediction", 0.0292, 14.6), "sd2_v": ("v-prediction", 0.0292, 14.6),
                         "sdxl": ("epsilon prediction", 0.0292, 14.6),
                         "sd3": ("flow matching (velocity)", 0.00299, 1.0),  # 3u / (1 + 2u) at u = 0.001 .. 1
                         "flux": ("flow matching (velocity)", 0.00315, 1.0)}[family]  # e^1.15 / (e^1.15 + 999)
    window = next(text for text in out["texts"] if text.startswith("forget window "))
    low, high = (float(v) for v in window.split("noise levels sigma ")[1].split(" .. "))
    assert window.startswith("forget window t [100, 900): ")
    assert [low, high] == pytest.approx(out["window_sigmas"], rel=1e-4), (window, out["window_sigmas"])
    line = next(text for text in out["texts"] if text.startswith("MODEL: "))
    levels = line.split("noise levels sigma ")[1].split(" over ")[0].split(" .. ")
    assert line.startswith(f"MODEL: {kind}, ") and line.endswith(" over 1000 timesteps"), line
    assert float(levels[0]) == pytest.approx(first, rel=2e-3) and float(levels[1]) == pytest.approx(last, rel=2e-3), line
    drawn = next(text for text in out["texts"] if text.startswith("timesteps drawn "))  # timestep_sampling = auto
    assert drawn == ("timesteps drawn logit-normal: t = floor(1000 sigmoid(n)), n ~ N(0, 1)" if family in ("sd3", "flux")
                     else "timesteps drawn uniform over t"), drawn


def test_a_prompt_without_a_value_the_model_needs_is_an_error_naming_the_node(family_run):
    family, out = family_run
    if family not in ("sdxl", "sd3"):
        pytest.skip("SD1.x/2.x, Flux: nothing required beyond the tokens (Flux's guidance defaults to 3.5)")
    message = out["missing"]
    assert "node 11 (LetheUnlearnHostModel)" in message and "pooled_output" in message
    assert "needs a conditioning value its prompt does not carry" in message and "Traceback" not in message


def test_input_model_is_left_as_it_was(family_run):
    _, out = family_run
    assert out["untouched"] and out["inference"] and out["hooks"] == 0 and out["input_patches"] == 0
    assert out["kernel_back"], "the rope kernel ComfyUI had is back after training"
