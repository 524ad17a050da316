"""The mock of ComfyUI (tests/python/comfy_mock/) against the behaviours of the real one @ a125cd84
that the pack's tests lean on: validate_prompt refusing a prompt without an output node,
validate_inputs' widget coercion, the output cache across prompts keyed by input signature and
IS_CHANGED, load_models_gpu merging a ModelPatcher's patches (and skipping a shape mismatch),
and comfy.utils.unet_to_diffusers; then the model families' side (no pack needed): the flow-matching
sigma tables and timesteps, CONST's noise scaling, comfy.conds, SDXL's adm vector, Flux's guidance
cond, and the tiny family stand-ins (family_standins.py) driven through apply_model. Each runs in a
fresh interpreter (comfy() of comfy_helpers.py, or mock_python() below without the pack)."""
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

from comfy_helpers import MOCK, comfy, comfyui_unet_config
from conftest import ROOT
from sd_helpers import CASES, SPEC

# Probe node classes; indented as the test bodies, which comfy() dedents together with it.
PROBES = """
        calls = []
        def probe(name, inputs, output=False, returns=("INT",), is_changed=None, hidden=False):
            def INPUT_TYPES(cls):
                types = {"required": dict(inputs)}
                if hidden: types["hidden"] = {"unique_id": "UNIQUE_ID"}
                return types
            def run(self, **kwargs):
                calls.append((name, kwargs.get("unique_id"), id(self)))
                return tuple(len(calls) for _ in returns)
            attributes = {"INPUT_TYPES": classmethod(INPUT_TYPES), "RETURN_TYPES": returns, "FUNCTION": "run", "OUTPUT_NODE": output,
                          "run": run}
            if is_changed is not None: attributes["IS_CHANGED"] = classmethod(lambda cls, **kwargs: is_changed(kwargs))
            nodes.NODE_CLASS_MAPPINGS[name] = type(name, (), attributes)
"""


def test_a_prompt_without_an_output_node_is_refused(tmp_path):
    out = comfy(tmp_path, PROBES + """
        probe("Source", {"value": ("INT", {"default": 0, "min": 0, "max": 10})})
        errors = []
        for prompt in ({"1": {"class_type": "Source", "inputs": {"value": 1}}},
                       {"1": {"class_type": "Source", "inputs": {"value": 1}}, "2": {"class_type": "Nope", "inputs": {}}}):
            try:
                executor.execute(prompt)
            except executor.ValidationError as error:
                errors.append([error.kind, str(error)])
        print(json.dumps({"errors": errors, "ran": len(calls)}))
    """)
    assert out["errors"] == [["prompt_no_outputs", "prompt_no_outputs: Prompt has no outputs"],
                             ["invalid_prompt", "node 2 (Nope) invalid_prompt on input '': unknown node type Nope"]]
    assert out["ran"] == 0


def test_widget_values_are_coerced_as_the_server_does(tmp_path):
    """int(), float(), str(), bool() (so the string "false" is True), then min/max."""
    out = comfy(tmp_path, PROBES + """
        probe("Widgets", {"i": ("INT", {"min": 0, "max": 10}), "f": ("FLOAT", {}), "s": ("STRING", {}),
                          "b": ("BOOLEAN", {}), "b0": ("BOOLEAN", {})}, output=True, returns=())
        seen = {}
        nodes.NODE_CLASS_MAPPINGS["Widgets"].run = lambda self, **kw: seen.update({k: [type(v).__name__, v] for k, v in kw.items()}) or ()
        prompt = {"1": {"class_type": "Widgets", "inputs": {"i": "7", "f": "0.5", "s": 12, "b": "false", "b0": 0}}}
        result = executor.execute(prompt)
        if result.error is not None: raise result.error
        errors = []
        for inputs in ({"i": "x"}, {"i": "11"}):
            try:
                executor.execute({"1": {"class_type": "Widgets", "inputs": dict(prompt["1"]["inputs"], **inputs)}})
            except executor.ValidationError as error:
                errors.append(error.kind)
        print(json.dumps({"seen": seen, "errors": errors}))
    """)
    assert out["seen"] == {"i": ["int", 7], "f": ["float", 0.5], "s": ["str", "12"], "b": ["bool", True], "b0": ["bool", False]}
    assert out["errors"] == ["invalid_input_type", "value_bigger_than_max"]


def test_the_cache_reuses_outputs_until_an_input_or_is_changed_differs(tmp_path):
    out = comfy(tmp_path, PROBES + """
        token, is_changed_args = ["a"], []
        def changed(kwargs):
            is_changed_args.append(sorted(kwargs.items()))
            return token[0]
        probe("Source", {"value": ("INT", {"min": 0, "max": 10})})
        probe("Changing", {"x": ("INT",), "path": ("STRING", {})}, is_changed=changed, hidden=True)
        probe("Failing", {"x": ("INT",)}, is_changed=lambda kwargs: 1 / 0)
        probe("Sink", {"a": ("INT",), "b": ("INT",)}, output=True, returns=())
        def prompt(value=1, failing=False):
            p = {"1": {"class_type": "Source", "inputs": {"value": value}},
                 "2": {"class_type": "Changing", "inputs": {"x": ["1", 0], "path": "p"}},
                 "3": {"class_type": "Sink", "inputs": {"a": ["1", 0], "b": ["2", 0]}}}
            if failing: p["2"] = {"class_type": "Failing", "inputs": {"x": ["1", 0]}}
            return p
        server, runs = executor.PromptExecutor(), {}
        def run(label, p, on=None):
            result = (on or server).execute(p)
            if result.error is not None: raise result.error
            runs[label] = {"executed": result.executed, "cached": sorted(result.cached), "outputs": sorted(result.outputs)}
        run("first", prompt())
        run("same", prompt())
        token[0] = "b"
        run("is_changed", prompt())
        run("value", prompt(value=2))
        run("other prompt", prompt(value=3))
        run("back", prompt(value=2))  # the classic cache keeps only what the last prompt used
        run("failing", prompt(value=2, failing=True))  # IS_CHANGED raised: never equal, always re-run
        run("failing again", prompt(value=2, failing=True))
        fresh = [executor.execute(prompt()).executed for _ in range(2)]
        sinks = len({c[2] for c in calls if c[0] == "Sink"})
        print(json.dumps({"runs": runs, "is_changed_args": is_changed_args[0], "fresh": fresh, "sink_instances": sinks}))
    """)
    runs = out["runs"]
    assert runs["first"] == {"executed": ["1", "2", "3"], "cached": [], "outputs": ["1", "2", "3"]}
    assert runs["same"] == {"executed": [], "cached": ["1", "2", "3"], "outputs": ["3"]}
    assert runs["is_changed"]["executed"] == ["2", "3"]
    assert runs["value"]["executed"] == ["1", "2", "3"]
    assert runs["back"]["executed"] == ["1", "2", "3"]
    assert runs["failing"]["executed"] == ["2", "3"] and runs["failing again"]["executed"] == ["2", "3"]
    # IS_CHANGED sees constants, None for links, and the hidden unique_id
    assert out["is_changed_args"] == [["path", "p"], ["unique_id", "2"], ["x", None]]
    assert out["fresh"] == [["1", "2", "3"], ["1", "2", "3"]], "executor.execute is a fresh server each call"
    assert out["sink_instances"] == 3, "one instance per (node id, class) on a server, a new one on a fresh server"


def test_load_models_gpu_merges_patches_and_skips_a_shape_mismatch(tmp_path):
    out = comfy(tmp_path, """
        import logging
        from comfy.model_patcher import ModelPatcher
        warnings = []
        class Catch(logging.Handler):
            def emit(self, record): warnings.append(record.getMessage())
        logging.getLogger().addHandler(Catch())
        model = torch.nn.Module()
        model.diffusion_model = torch.nn.Linear(3, 2)
        original = {k: v.detach().clone() for k, v in model.state_dict().items()}
        base = ModelPatcher(model)
        patched = base.clone()
        delta = torch.arange(6.0).view(2, 3)
        accepted = patched.add_patches({"diffusion_model.weight": (delta,), "diffusion_model.bias": (torch.ones(5),),
                                        "nothing.weight": (delta,)}, 0.5)
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        comfy.model_management.load_models_gpu([patched])
        merged = {k: v.detach().clone() for k, v in model.state_dict().items()}
        comfy.model_management.load_models_gpu([base])
        restored = {k: v.detach().clone() for k, v in model.state_dict().items()}
        comfy.model_management.load_models_gpu([patched])
        comfy.model_management.load_models_gpu([patched])
        again = model.diffusion_model.weight.detach().clone()
        print(json.dumps({"accepted": sorted(accepted), "untouched_before_load": all(torch.equal(before[k], original[k]) for k in original),
                          "weight": (merged["diffusion_model.weight"] - original["diffusion_model.weight"]).tolist(),
                          "bias_unchanged": torch.equal(merged["diffusion_model.bias"], original["diffusion_model.bias"]),
                          "restored": all(torch.equal(restored[k], original[k]) for k in original),
                          "merged_once": torch.allclose(again, original["diffusion_model.weight"] + 0.5 * delta),
                          "view": torch.equal(patched.patched_weight("diffusion_model.weight"), again),
                          "warnings": [w for w in warnings if "SHAPE MISMATCH" in w]}))
    """)
    assert out["accepted"] == ["diffusion_model.bias", "diffusion_model.weight"]
    assert out["untouched_before_load"], "add_patches only records; load_models_gpu merges"
    # W + 0.5 * delta, rounded in float32 around the original weights
    assert [x for row in out["weight"] for x in row] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5], abs=1e-6)
    assert out["bias_unchanged"] and out["restored"] and out["merged_once"] and out["view"]
    assert out["warnings"] and all(w == "WARNING SHAPE MISMATCH diffusion_model.bias WEIGHT NOT MERGED torch.Size([5]) != torch.Size([2])"
                                   for w in out["warnings"])


KEY_CASES = ["tiny_sd", *sorted(CASES)]


@pytest.fixture(scope="module")
def key_mappings(tmp_path_factory):
    """Every case's wrong and stray names, from one interpreter (diffusers' import is most of the time)."""
    specs = {case: {k: v for k, v in (SPEC if case == "tiny_sd" else CASES[case]).items() if k != "heads"}
             for case in KEY_CASES}
    configs = {case: comfyui_unet_config(spec) for case, spec in specs.items()}
    return comfy(tmp_path_factory.mktemp("key-mappings"), f"""
        sys.path.insert(0, {os.path.join(ROOT, "tests", "python")!r})
        from diffusers import UNet2DConditionModel
        from ldm_convert import diffusers_to_ldm
        results = {{}}
        for case, spec in {specs!r}.items():
            names = list(UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **spec).state_dict())
            ldm = diffusers_to_ldm({{k: k for k in names}}, spec["layers_per_block"], ["CrossAttn" in t for t in spec["up_block_types"]])
            expected = {{diffusers: name for name, diffusers in ldm.items()}}
            mapped = comfy.utils.unet_to_diffusers({configs!r}[case])
            results[case] = {{"wrong": sorted(k for k in names if mapped.get(k) != expected[k]),
                              "stray": sorted(k for k, v in mapped.items()
                                              if k not in expected and v in ldm and not k.startswith("class_embedding."))}}
        print(json.dumps(results))
    """)


@pytest.mark.parametrize("case", KEY_CASES)
def test_unet_to_diffusers_maps_each_diffusers_key_to_its_ldm_key(key_mappings, case):
    """Against diffusers' own key names and the LDM names the test converter (ldm_convert.py,
    validated numerically by the UNet parity tests) gives them. ComfyUI also maps diffusers'
    class_embedding names onto label_emb (an alias for the same LDM keys)."""
    assert key_mappings[case] == {"wrong": [], "stray": []}


# ---- the model families (SDXL, SD3, Flux): the mock alone, without the pack ----

MOCK_PRELUDE = """
import json, math, sys
sys.path.insert(0, {tests!r})
sys.path.insert(0, {mock!r})
import torch
import comfy.conds, comfy.model_base, comfy.model_sampling, comfy.utils
"""


def mock_python(body):
    """Runs `body` in a fresh interpreter with the mock's modules and tests/python importable (the
    pack is not loaded, so no native module is needed); returns the JSON object it prints last."""
    script = MOCK_PRELUDE.format(tests=os.path.dirname(os.path.abspath(__file__)), mock=MOCK) + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=""), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_flow_sigma_tables_and_timesteps_are_the_closed_forms():
    """SD3: sigma_k = 3u/(1 + 2u), u = (k+1)/1000, timestep = 1000·sigma; Flux-dev: sigma_k =
    e^1.15/(e^1.15 + 1/u - 1), u = (k+1)/10000, timestep = sigma; SD's discrete table maps sigma to its index."""
    out = mock_python("""
        from comfy.model_sampling import CONST, EPS, flow_sampling, model_sampling
        sd3, flux = flow_sampling("sd3"), flow_sampling("flux")
        u3 = torch.arange(1, 1001, dtype=torch.float64) / 1000
        uf = torch.arange(1, 10001, dtype=torch.float64) / 10000
        closed3, closedf = 3 * u3 / (1 + 2 * u3), math.exp(1.15) / (math.exp(1.15) + 1 / uf - 1)
        sigma = torch.tensor([0.25, 0.5, 1.0])
        discrete = model_sampling(EPS)
        print(json.dumps({
            "kinds": [[c.__name__ for c in type(s).__mro__
                       if c.__name__ in ("CONST", "EPS", "ModelSamplingDiscreteFlow", "ModelSamplingFlux")] for s in (sd3, flux)],
            "dtypes": [str(sd3.sigmas.dtype), str(flux.sigmas.dtype)], "sizes": [len(sd3.sigmas), len(flux.sigmas)],
            "sd3_error": (sd3.sigmas.double() - closed3).abs().max().item(),
            "flux_error": (flux.sigmas.double() - closedf).abs().max().item(),
            "ends": [sd3.sigma_max.item(), flux.sigma_max.item(), sd3.sigma_min.item(), flux.sigma_min.item()],
            "sd3_timestep": sd3.timestep(sigma).tolist(), "flux_timestep": flux.timestep(sigma).tolist(),
            "discrete_timestep": discrete.timestep(discrete.sigmas[torch.tensor([0, 499, 999])]).tolist(),
            "percent": [[s.percent_to_sigma(p) for p in (0.0, 0.5, 1.0)] for s in (sd3, flux)],
            "shift_1": flow_sampling("sd3", shift=1.0).sigmas[:3].tolist(), "multiplier": sd3.multiplier, "shifts": [sd3.shift, flux.shift],
        }))
    """)
    assert out["kinds"] == [["ModelSamplingDiscreteFlow", "CONST"], ["ModelSamplingFlux", "CONST"]]
    assert out["dtypes"] == ["torch.float32", "torch.float32"] and out["sizes"] == [1000, 10000]
    assert out["sd3_error"] < 1e-6 and out["flux_error"] < 1e-6
    assert out["ends"][:2] == [1.0, 1.0] and out["ends"][2] == pytest.approx(0.003 / 1.002, rel=1e-6)
    assert out["ends"][3] == pytest.approx(math.exp(1.15) / (math.exp(1.15) + 9999), rel=1e-5)
    assert out["sd3_timestep"] == [250.0, 500.0, 1000.0] and out["flux_timestep"] == [0.25, 0.5, 1.0]
    assert out["discrete_timestep"] == [0, 499, 999]
    assert out["percent"][0] == [1.0, pytest.approx(1.5 / 2.0), 0.0]  # time_snr_shift(3, 0.5) = 0.75
    assert out["percent"][1] == [1.0, pytest.approx(math.exp(1.15) / (math.exp(1.15) + 1)), 0.0]
    assert out["shift_1"] == pytest.approx([0.001, 0.002, 0.003]) and out["multiplier"] == 1000 and out["shifts"] == [3.0, 1.15]


def test_noise_scaling_and_denoising_round_trip_and_apply_model_passes_the_conds():
    """CONST: x = sigma·eps + (1 - sigma)·x0, and a model output eps - x0 at x denoises to x0 (through
    apply_model too, with SD3's timestep 1000·sigma); EPS: x = x0 + sigma·eps (sqrt(1 + sigma²)·eps at
    max_denoise). apply_model casts float conds to the weights' dtype and keeps integer ones."""
    out = mock_python("""
        from comfy.model_sampling import CONST, EPS, flow_sampling, model_sampling
        g = torch.Generator().manual_seed(0)
        x0, eps = torch.randn(3, 16, 4, 4, generator=g), torch.randn(3, 16, 4, 4, generator=g)
        sigma = torch.tensor([0.1, 0.5, 0.9])
        const, s = CONST(), sigma.view(3, 1, 1, 1)
        x = const.noise_scaling(sigma, eps, x0)
        seen = {}
        class Oracle(torch.nn.Module):  # predicts the velocity eps - x0 exactly
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))
            def forward(self, x, timesteps, context=None, control=None, transformer_options={}, **kwargs):
                seen.update(t=timesteps.tolist(), dtypes={k: str(v.dtype) for k, v in dict(kwargs, x=x, context=context).items()})
                return (eps - x0).double() + self.w
        sd3 = comfy.model_base.SD3(Oracle())
        applied = sd3.apply_model(x, sigma, c_crossattn=torch.zeros(3, 2, 8), y=torch.zeros(3, 4), index=torch.arange(3))
        eps_model = model_sampling(EPS)
        print(json.dumps({
            "const_x": (x - (s * eps + (1 - s) * x0)).abs().max().item(),
            "const_round_trip": (const.calculate_denoised(sigma, eps - x0, x) - x0).abs().max().item(),
            "apply_model_round_trip": (applied - x0).abs().max().item(), "t": seen["t"], "dtypes": seen["dtypes"],
            "inverse": (const.inverse_noise_scaling(sigma, const.noise_scaling(sigma, torch.zeros_like(x0), x0)) - x0).abs().max().item(),
            "eps_x": (eps_model.noise_scaling(sigma, eps, x0) - (x0 + s * eps)).abs().max().item(),
            "eps_max": (eps_model.noise_scaling(sigma, eps, x0, max_denoise=True) - (x0 + (1 + s * s).sqrt() * eps)).abs().max().item(),
            "eps_round_trip": (eps_model.calculate_denoised(sigma, eps, x0 + s * eps) - x0).abs().max().item(),
            "latent_in": [m.process_latent_in(torch.tensor([1.0])).item()
                          for m in (sd3, comfy.model_base.Flux(Oracle()), comfy.model_base.SDXL(Oracle()))],
        }))
    """)
    assert max(out["const_x"], out["const_round_trip"], out["apply_model_round_trip"], out["inverse"]) < 1e-5
    assert max(out["eps_x"], out["eps_max"], out["eps_round_trip"]) < 1e-5
    assert out["t"] == pytest.approx([100.0, 500.0, 900.0], rel=1e-6)
    assert out["dtypes"] == {"x": "torch.float64", "context": "torch.float64", "y": "torch.float64", "index": "torch.int64"}
    assert out["latent_in"] == pytest.approx([(1 - 0.0609) * 1.5305, (1 - 0.1159) * 0.3611, 0.13025])


def test_conds_batch_and_concatenate_as_comfyui_does():
    out = mock_python("""
        from comfy.conds import CONDConstant, CONDCrossAttn, CONDRegular
        r = comfy.utils.repeat_to_batch_size
        t = torch.arange(6.0).view(2, 3)
        regular = CONDRegular(t)
        cross, other = CONDCrossAttn(torch.zeros(1, 5, 4)), CONDCrossAttn(torch.ones(2, 5, 4))
        print(json.dumps({
            "cut": r(t, 1).tolist(), "same": r(t, 2) is t, "repeat": r(t, 5).tolist(), "dim1": r(t, 4, dim=1).tolist(),
            "process": regular.process_cond(3).cond.tolist(), "process_type": type(cross.process_cond(2)).__name__,
            "size": regular.size(), "concat": regular.concat([CONDRegular(t + 10)]).shape[0],
            "can_concat": [regular.can_concat(CONDRegular(t[:1])), cross.can_concat(other),
                           cross.can_concat(CONDCrossAttn(torch.zeros(1, 6, 4)))],
            "cross_concat": list(cross.concat([other]).shape),
            "constant": [CONDConstant(2).process_cond(4).cond, CONDConstant(2).can_concat(CONDConstant(2)),
                         CONDConstant(2).can_concat(CONDConstant(3)), CONDConstant(2).concat([CONDConstant(2)]), CONDConstant(2).size()],
        }))
    """)
    assert out["cut"] == [[0.0, 1.0, 2.0]] and out["same"]
    assert out["repeat"] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] * 2 + [[0.0, 1.0, 2.0]]
    assert out["dim1"] == [[0.0, 1.0, 2.0, 0.0], [3.0, 4.0, 5.0, 3.0]]
    assert out["process"] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [0.0, 1.0, 2.0]] and out["process_type"] == "CONDCrossAttn"
    assert out["size"] == [2, 3] and out["concat"] == 4
    assert out["can_concat"] == [False, True, False] and out["cross_concat"] == [3, 5, 4]
    assert out["constant"] == [2, True, False, 2, [1]]


def test_sdxl_adm_sd3_and_flux_extra_conds():
    """SDXL's y: the pooled output, then timestep_embedding(·, 256) of height, width, crop_h, crop_w,
    target_height, target_width (768, 768, 0, 0, then the size by default); Flux adds guidance 3.5."""
    out = mock_python("""
        from comfy.model_base import SD3, SDXL, BaseModel, Flux, timestep_embedding
        net = torch.nn.Linear(1, 1)
        pooled, tokens = torch.randn(2, 32), torch.randn(2, 7, 48)
        sdxl = SDXL(net)
        y = sdxl.encode_adm(pooled_output=pooled)
        wide = sdxl.encode_adm(pooled_output=pooled, width=1024)
        tall = sdxl.encode_adm(pooled_output=pooled, height=1024)
        emb = lambda v: timestep_embedding(torch.Tensor([v]), 256)[0]
        expected = torch.cat([pooled[0]] + [emb(v) for v in (768, 768, 0, 0, 768, 768)])
        conds = {name: model.extra_conds(pooled_output=pooled, cross_attn=tokens)
                 for name, model in (("base", BaseModel(net, None)), ("sdxl", sdxl), ("sd3", SD3(net)), ("flux", Flux(net)))}
        flux = conds["flux"]
        print(json.dumps({
            "shape": list(y.shape), "rows_equal": torch.equal(y[0, 32:], y[1, 32:]), "default": torch.allclose(y[0], expected),
            "width_changes": [not torch.equal(wide, y), not torch.equal(tall, y), not torch.equal(wide, tall)],
            "width_slot": torch.allclose(wide[0, 32 + 256: 32 + 512], emb(1024)) and torch.allclose(wide[0, 32 + 5 * 256:], emb(1024)),
            "keys": {k: {n: type(c).__name__ for n, c in v.items()} for k, v in conds.items()},
            "sd3_y": torch.equal(conds["sd3"]["y"].cond, pooled), "guidance": flux["guidance"].process_cond(3).cond.tolist(),
            "guidance_dtype": str(flux["guidance"].cond.dtype),
            "no_guidance": sorted(Flux(net).extra_conds(pooled_output=pooled, guidance=None)),
            "guidance_2": Flux(net).extra_conds(guidance=2.0)["guidance"].cond.tolist(),
        }))
    """)
    assert out["shape"] == [2, 32 + 6 * 256] and out["rows_equal"] and out["default"]
    assert out["width_changes"] == [True, True, True] and out["width_slot"]
    assert out["keys"] == {"base": {"c_crossattn": "CONDCrossAttn"}, "sdxl": {"y": "CONDRegular", "c_crossattn": "CONDCrossAttn"},
                           "sd3": {"y": "CONDRegular", "c_crossattn": "CONDRegular"},
                           "flux": {"y": "CONDRegular", "c_crossattn": "CONDRegular", "guidance": "CONDRegular"}}
    assert out["sd3_y"] and out["guidance"] == [3.5, 3.5, 3.5] and out["guidance_dtype"] == "torch.float32"
    assert out["no_guidance"] == ["y"] and out["guidance_2"] == [2.0]


@pytest.mark.parametrize("family", ["sdxl", "sd3", "flux"])
def test_the_family_standins_train_through_apply_model_and_use_every_cond(family):
    """Each stand-in under its family's BaseModel: deterministic under a seed, LoRA-style suffixes
    where the real network has them, forward and backward through apply_model (every Linear gets a
    gradient; Flux, like ComfyUI's, only once its rope kernel is replaced and its LayerNorms get a
    copy of the residual that the blocks then add to in place), and the output moves when y, context or (Flux) guidance change; a missing cond raises."""
    out = mock_python(f"""
        from family_standins import STANDINS
        from comfy.model_base import SD3, SDXL, Flux
        family = {family!r}
        wrapper, channels = {{"sdxl": (SDXL, 4), "sd3": (SD3, 16), "flux": (Flux, 16)}}[family]
        torch.manual_seed(0)
        net = STANDINS[family]()
        torch.manual_seed(0)
        same = all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), STANDINS[family]().state_dict().values()))
        model = wrapper(net)
        g = torch.Generator().manual_seed(1)
        x, tokens, pooled = torch.randn(2, channels, 6, 6, generator=g), torch.randn(2, 5, 48, generator=g), torch.randn(2, 32, generator=g)
        sigma = model.model_sampling.sigmas[torch.tensor([len(model.model_sampling.sigmas) // 4, len(model.model_sampling.sigmas) - 1])]
        def run(**entry):
            conds = model.extra_conds(**dict(dict(pooled_output=pooled, cross_attn=tokens), **entry))
            kwargs = {{name: c.process_cond(2).cond for name, c in conds.items()}}
            return model.apply_model(x, sigma, **kwargs)
        plain = ""
        if family == "flux":  # as in ComfyUI: comfy-kitchen's rope kernel has no backward, the blocks add in place
            import comfy.ldm.flux.math as flux_math
            try:
                run().pow(2).mean().backward()
            except RuntimeError as error:
                plain = str(error)
            net.zero_grad(set_to_none=True)
            rotate = lambda x, f: flux_math._FusedRope.forward(None, x, f)  # the kernel's forward in plain torch
            flux_math.apply_rope = lambda q, k, f: (rotate(q, f), rotate(k, f))
            for m in net.modules():
                if isinstance(m, torch.nn.LayerNorm):
                    m.register_forward_pre_hook(lambda module, args: (args[0].clone(),))
        out = run()
        out.pow(2).mean().backward()
        linears = {{n: m for n, m in net.named_modules() if isinstance(m, torch.nn.Linear)}}
        no_grad = sorted(n for n, m in linears.items() if m.weight.grad is None or m.weight.grad.abs().sum() == 0)
        with torch.no_grad():
            base = run()
            changes = {{"y": run(pooled_output=pooled + 1), "context": run(cross_attn=tokens + 1)}}
            if family == "flux": changes["guidance"] = run(guidance=1.0)
            if family == "sdxl": changes["width"] = run(width=1024)
            moved = {{k: (v - base).abs().max().item() > 1e-4 for k, v in changes.items()}}
            errors = []
            for missing in (["c_crossattn"], ["y"]) + ((["guidance"],) if family == "flux" else ()):
                conds = {{n: c.process_cond(2).cond for n, c in model.extra_conds(pooled_output=pooled, cross_attn=tokens).items()
                         if n not in missing}}
                try:
                    model.apply_model(x, sigma, **conds)
                except Exception as error:
                    errors.append(type(error).__name__)
        print(json.dumps({{"same": same, "shape": list(out.shape), "finite": bool(torch.isfinite(out).all()), "no_grad": no_grad,
                          "moved": moved, "errors": errors, "linears": sorted(linears),
                          "deterministic": torch.equal(base, run().detach()), "plain": plain}}))
    """)
    assert out["same"] and out["deterministic"] and out["finite"]
    assert ("no autograd formula" in out["plain"]) == (family == "flux"), out["plain"]
    assert out["shape"] == [2, 4 if family == "sdxl" else 16, 6, 6]
    assert out["no_grad"] == [], "every Linear takes part in the forward pass"
    assert all(out["moved"].values()), out["moved"]
    assert set(out["moved"]) >= {"y", "context"} and (family != "flux" or "guidance" in out["moved"])
    assert out["errors"] == ["ValueError"] * (3 if family == "flux" else 2)
    suffixes = {"sdxl": ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v",
                         "attn2.to_out.0", "ff.net.0.proj", "ff.net.2", "time_embed.0", "time_embed.2", "label_emb.0.0", "label_emb.0.2"],
                "sd3": ["x_block.attn.qkv", "x_block.attn.proj", "x_block.mlp.fc1", "x_block.mlp.fc2", "context_block.attn.qkv",
                        "context_block.attn.proj", "context_block.mlp.fc1", "context_block.mlp.fc2", "x_block.adaLN_modulation.1",
                        "context_block.adaLN_modulation.1", "t_embedder.mlp.0", "y_embedder.mlp.2", "context_embedder",
                        "final_layer.linear"],
                "flux": ["img_attn.qkv", "img_attn.proj", "img_mlp.0", "img_mlp.2", "txt_attn.qkv", "txt_attn.proj", "txt_mlp.0",
                         "txt_mlp.2", "img_mod.lin", "txt_mod.lin", "single_blocks.0.linear1", "single_blocks.0.linear2",
                         "single_blocks.0.modulation.lin", "time_in.in_layer", "guidance_in.out_layer", "vector_in.in_layer", "txt_in",
                         "img_in", "final_layer.linear"]}[family]
    assert all(any(name.endswith(s) for name in out["linears"]) for s in suffixes), sorted(set(suffixes) - {
        s for s in suffixes for name in out["linears"] if name.endswith(s)})
