"""The mock of ComfyUI (tests/python/comfy_mock/) against the behaviours of the real one @ a125cd84
that the pack's tests lean on: validate_prompt refusing a prompt without an output node,
validate_inputs' widget coercion, the output cache across prompts keyed by input signature and
IS_CHANGED, load_models_gpu merging a ModelPatcher's patches (and skipping a shape mismatch),
and comfy.utils.unet_to_diffusers. Each runs in a fresh interpreter (comfy() of comfy_helpers.py)."""
import os

import pytest

from comfy_helpers import comfy, comfyui_unet_config
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


@pytest.mark.parametrize("case", ["tiny_sd", *sorted(CASES)])
def test_unet_to_diffusers_maps_each_diffusers_key_to_its_ldm_key(tmp_path, case):
    """Against diffusers' own key names and the LDM names the test converter (ldm_convert.py,
    validated numerically by the UNet parity tests) gives them."""
    spec = {k: v for k, v in (SPEC if case == "tiny_sd" else CASES[case]).items() if k != "heads"}
    out = comfy(tmp_path, f"""
        sys.path.insert(0, {os.path.join(ROOT, "tests", "python")!r})
        from diffusers import UNet2DConditionModel
        from ldm_convert import diffusers_to_ldm
        spec = {spec!r}
        names = list(UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **spec).state_dict())
        ldm = diffusers_to_ldm({{k: k for k in names}}, spec["layers_per_block"], ["CrossAttn" in t for t in spec["up_block_types"]])
        expected = {{diffusers: name for name, diffusers in ldm.items()}}
        mapped = comfy.utils.unet_to_diffusers({comfyui_unet_config(spec)!r})
        print(json.dumps({{"wrong": sorted(k for k in names if mapped.get(k) != expected[k]),
                          "stray": sorted(k for k, v in mapped.items() if k not in expected and v in ldm)}}))
    """)
    assert out == {"wrong": [], "stray": []}
