"""The pack inside (a mock of) ComfyUI: loaded as ComfyUI loads a custom_nodes folder, its
V1 classes checked against the contract, the shipped workflows converted by the frontend's
rules and executed through the node classes on a worker thread under inference mode,
progress and interrupt through ComfyUI's progress bar, the GIL released while native code runs;
re-queued prompts served from ComfyUI's output cache until a loader's files change (IS_CHANGED),
widget values as the server coerces them, and Lethe's LoRA mapped as LoraLoader maps it
(unet_to_diffusers) and merged into the weights when ComfyUI loads the patched MODEL.

Each test runs in a fresh interpreter (comfy() of comfy_helpers.py): ComfyUI imports the pack as
a package named after its path, and the native module must not also be imported under its
test-suite name there."""
import importlib.machinery
import os
import platform
import shutil
import sys

import pytest

from comfy_helpers import SMALL, comfy, comfyui_unet_config, needs_bench, write_score_folder_inputs
from conftest import ROOT
from sd_helpers import SPEC


def test_pack_loads_as_comfyui_loads_it(tmp_path):
    out = comfy(tmp_path, """
        from nodes import NODE_CLASS_MAPPINGS as M, NODE_DISPLAY_NAME_MAPPINGS as D
        schemas = json.loads(native.node_schemas_json())
        report = {"schemas": sorted(schemas), "registered": sorted(k for k in M if k != "PreviewImage"),
                  "problems": []}
        for name in schemas:
            c = M[name]
            types = c.INPUT_TYPES()
            if list(types["required"]) != schemas[name]["input_order"]["required"]:
                report["problems"].append(f"{name}: INPUT_TYPES order {list(types['required'])}")
            if not c.CATEGORY.startswith("Lethe/"): report["problems"].append(f"{name}: category {c.CATEGORY}")
            if not callable(getattr(c, c.FUNCTION, None)): report["problems"].append(f"{name}: no {c.FUNCTION}")
            if len(c.RETURN_TYPES) != len(c.RETURN_NAMES): report["problems"].append(f"{name}: return names")
            if c.RELATIVE_PYTHON_MODULE != "custom_nodes." + os.path.basename({root!r}):
                report["problems"].append(f"{name}: module {c.RELATIVE_PYTHON_MODULE}")
            if name not in D: report["problems"].append(f"{name}: no display name")
            for group in ("required", "optional"):
                for key, spec in types[group].items():
                    if spec[0] == "INT" and not ("min" in spec[1] and "max" in spec[1]):
                        report["problems"].append(f"{name}.{key}: INT without min/max (the frontend would clamp to 0..2048)")
        print(json.dumps(report))
    """.replace("{root!r}", repr(ROOT)))
    assert out["problems"] == []
    assert out["registered"] == out["schemas"] and all(n.startswith("Lethe") for n in out["schemas"])


@pytest.mark.parametrize("module", ["missing", "unloadable"])
def test_pack_without_a_module_for_this_python_says_how_to_build_it(tmp_path, module):
    """Before the module is built for ComfyUI's Python (or when a stale one cannot load), ComfyUI
    still loads the pack: one placeholder node whose message names that interpreter and its
    version and gives the exact build command, not Python's "partially initialized module"."""
    pack = tmp_path / "custom_nodes" / "lethe"
    for folder in ("nodes", "python_bridge"):  # the pack's Python, without any built module
        shutil.copytree(os.path.join(ROOT, folder), pack / folder, ignore=shutil.ignore_patterns("__pycache__", "_lethe*.so"))
    for name in ("__init__.py", "Makefile"):
        shutil.copy(os.path.join(ROOT, name), pack)
    if module == "unloadable":
        (pack / "python_bridge" / ("_lethe" + importlib.machinery.EXTENSION_SUFFIXES[0])).write_bytes(b"not a library")
    out = comfy(tmp_path, """
        from nodes import NODE_CLASS_MAPPINGS as M, NODE_DISPLAY_NAME_MAPPINGS as D
        node = M["LetheSetupRequired"]
        try:
            node().run()
            ran = None
        except RuntimeError as error:
            ran = str(error)
        print(json.dumps({"registered": sorted(k for k in M if k != "PreviewImage"), "display": D["LetheSetupRequired"],
                          "description": node.DESCRIPTION, "run": ran}))
    """, pack=str(pack))
    assert out["registered"] == ["LetheSetupRequired"] and out["display"] == "Lethe (build required)"
    message = out["run"]
    assert message == out["description"]
    assert f"this Python is {sys.executable} (Python {platform.python_version()}," in message
    assert f"`make -C {pack} comfy PYTHON={sys.executable}`" in message
    expected = "is not built for this Python" if module == "missing" else "could not be loaded"
    assert expected in message
    assert "circular import" not in message and "partially initialized" not in message and "make setup" not in message


@pytest.mark.parametrize("name", sorted(SMALL))
def test_frontend_conversion_matches_the_native_parser(tmp_path, name):
    out = comfy(tmp_path, f"""
        text = open(os.path.join({ROOT!r}, "workflows", "{name}.json")).read()
        mine = executor.graph_to_prompt(json.loads(text))
        theirs = json.loads(native.convert_workflow(text))
        for node in theirs.values(): node.pop("_meta", None)
        print(json.dumps({{"frontend": mine, "native": theirs}}))
    """)
    assert out["frontend"] == out["native"]


@needs_bench
@pytest.mark.parametrize("name", sorted(SMALL))
def test_shipped_workflow_runs_through_the_node_classes(tmp_path, name):
    if name == "score-folder":
        write_score_folder_inputs(tmp_path)
    out = comfy(tmp_path, f"""
        prompt = executor.graph_to_prompt(json.load(open(os.path.join({ROOT!r}, "workflows", "{name}.json"))))
        for node_id, inputs in {SMALL[name]!r}.items(): prompt[node_id]["inputs"].update(inputs)
        result = executor.execute(prompt)
        if result.error is not None: raise result.error
        images = [i for ui in result.ui.values() if ui for i in ui.get("images", [])]
        missing = [i["filename"] for i in images
                   if not os.path.exists(os.path.join(folder_paths.get_directory_by_type(i["type"]) if hasattr(folder_paths, "get_directory_by_type") else folder_paths.get_temp_directory(), i["subfolder"], i["filename"]))]
        print(json.dumps({{"ran": sorted(result.outputs), "images": len(images), "missing": missing,
                          "inference_mode": result.grad_mode_seen,
                          "progress_nodes": sorted({{str(p[0]) for p in result.progress}})}}))
    """)
    assert out["inference_mode"] is True
    assert out["images"] > 0 and out["missing"] == []
    if name != "score-folder":
        assert out["progress_nodes"], "training/sampling nodes report progress through ComfyUI's bar"


@needs_bench
def test_interrupt_stops_training_promptly_and_leaves_a_checkpoint(tmp_path):
    out = comfy(tmp_path, """
        prompt = {
          "1": {"class_type": "LetheBenchData", "inputs": {"task": "data", "forget_pieces": "all", "concept": "sneaker", "anchor": "footwear", "retain_limit": 64}},
          "2": {"class_type": "LetheBenchModel", "inputs": {"which": "base"}},
          "3": {"class_type": "LetheObjectiveSISS", "inputs": {"method": "siss", "lambda": 0.5, "scaling_norm": 5.0}},
          "4": {"class_type": "LetheUnlearn", "inputs": {"model": ["2", 0], "objective": ["3", 0], "forget": ["1", 0], "retain": ["1", 1],
                "steps": 500, "batch_size": 4, "learning_rate": 1e-4, "seed": 0, "trainable": "full", "lora_rank": 4, "retain_caption_dropout": 0.1}},
          "5": {"class_type": "LetheSaveModel", "inputs": {"model": ["4", 0], "filename_prefix": "lethe/interrupted"}},
        }
        def on_progress(node_id, value, total):
            if node_id == "4" and value >= 3: comfy.model_management.interrupt_current_processing(True)
        result = executor.execute(prompt, on_progress)
        steps = [p[1] for p in result.progress if p[0] == "4"]
        out = os.path.join(folder_paths.get_output_directory(), "lethe")
        files = [os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs]
        print(json.dumps({"error": type(result.error).__name__, "last_step": max(steps), "files": files}))
    """)
    assert out["error"] == "InterruptProcessingException"
    assert out["last_step"] <= 5, "stops within a step or two of the interrupt"
    assert any(f.endswith("checkpoint.safetensors") for f in out["files"]), out["files"]
    assert not any("interrupted" in f for f in out["files"]), "nothing downstream pretends to be complete"


@needs_bench
def test_inference_tensors_from_comfyui_train_and_the_gil_is_released(tmp_path):
    out = comfy(tmp_path, """
        import threading, time
        class MockLoadImages:  # stands in for LoadImage: its tensors are made under inference mode
            @classmethod
            def INPUT_TYPES(cls): return {"required": {}}
            RETURN_TYPES = ("IMAGE", "MASK"); FUNCTION = "load"
            def load(self):
                g = torch.Generator().manual_seed(0)
                images = torch.rand(2, 28, 28, 3, generator=g)
                mask = torch.zeros(2, 28, 28); mask[:, 7:21, 7:21] = 1
                assert images.is_inference()
                return (images, mask)
        nodes.NODE_CLASS_MAPPINGS["MockLoadImages"] = MockLoadImages
        prompt = {
          "1": {"class_type": "MockLoadImages", "inputs": {}},
          "2": {"class_type": "LetheDatasetFromImages", "inputs": {"images": ["1", 0], "mask": ["1", 1], "captions": "artist_lethe piece_00 tshirt top", "color": "grayscale"}},
          "3": {"class_type": "LetheBenchData", "inputs": {"task": "data", "forget_pieces": "all", "concept": "sneaker", "anchor": "footwear", "retain_limit": 64}},
          "4": {"class_type": "LetheBenchModel", "inputs": {"which": "base"}},
          "5": {"class_type": "LetheObjectiveBaseline", "inputs": {"method": "neggrad", "scale": 1.0, "eta": 0.001}},
          "6": {"class_type": "LetheUnlearn", "inputs": {"model": ["4", 0], "objective": ["5", 0], "forget": ["2", 0], "retain": ["3", 1],
                "steps": 6, "batch_size": 2, "learning_rate": 1e-4, "seed": 0, "trainable": "lora", "lora_rank": 2, "retain_caption_dropout": 0.1}},
          "7": {"class_type": "LetheSaveModel", "inputs": {"model": ["6", 0], "filename_prefix": "lethe/from-images"}},
        }
        ticks = [0]; stop = [False]
        def ticker():
            while not stop[0]:
                ticks[0] += 1; time.sleep(0.001)
        t = threading.Thread(target=ticker, daemon=True); t.start()
        result = executor.execute(prompt)
        stop[0] = True; t.join()
        if result.error is not None: raise result.error
        saved = [f for d, _, fs in os.walk(folder_paths.get_output_directory()) for f in fs if f.startswith("from-images")]
        print(json.dumps({"ticks": ticks[0], "saved": saved, "steps": max(p[1] for p in result.progress if p[0] == "6")}))
    """)
    assert out["steps"] == 6 and out["saved"]
    assert out["ticks"] > 50, "another Python thread ran while native training held no GIL"


@needs_bench
def test_after_a_cancel_a_changed_node_starts_fresh_and_the_same_node_resumes(tmp_path):
    """Cancel at step 3 of 12, then Run with t_min, steps (below the checkpoint's) or the forget
    pieces changed: each starts a new folder (the cancelled run's checkpoint is kept and named in
    one line); unchanged again: the cancelled run resumes; once more: the finished run is reused.
    config.json, summary.json and the model metadata agree in every folder."""
    out = comfy(tmp_path, """
        def prompt(t_min=250, steps=12, pieces="0,1"):
            return {
              "1": {"class_type": "LetheBenchData", "inputs": {"task": "data", "forget_pieces": pieces, "concept": "sneaker", "anchor": "footwear", "retain_limit": 64}},
              "2": {"class_type": "LetheBenchModel", "inputs": {"which": "base"}},
              "3": {"class_type": "LetheObjectiveSISS", "inputs": {"method": "siss", "lambda": 0.5, "scaling_norm": 5.0}},
              "8": {"class_type": "LetheTimestepSelection", "inputs": {"t_min": t_min, "t_max": 750, "weighting": "uniform"}},
              "4": {"class_type": "LetheUnlearn", "inputs": {"model": ["2", 0], "objective": ["3", 0], "forget": ["1", 0], "retain": ["1", 1],
                    "timesteps": ["8", 0], "steps": steps, "batch_size": 4, "learning_rate": 1e-4, "seed": 0, "trainable": "full",
                    "lora_rank": 4, "retain_caption_dropout": 0.1}},
              "5": {"class_type": "LetheSaveModel", "inputs": {"model": ["4", 0], "filename_prefix": "saved"}},
            }
        def cancel_at_3(node_id, value, total):
            if node_id == "4" and value >= 3: comfy.model_management.interrupt_current_processing(True)
        texts = []
        first = executor.execute(prompt(), cancel_at_3)
        assert type(first.error).__name__ == "InterruptProcessingException", first.error
        for changes in ({"t_min": 300}, {"steps": 2}, {"pieces": "0"}, {}, {}):
            result = executor.execute(prompt(**changes))
            if result.error is not None: raise result.error
            texts.append(result.ui["4"]["text"])
        root = os.path.join(folder_paths.get_output_directory(), "lethe")
        runs = {}
        for folder in sorted(f for f in os.listdir(root) if f.startswith("unlearn-node-4")):
            config = json.load(open(os.path.join(root, folder, "config.json")))
            summary = json.load(open(os.path.join(root, folder, "summary.json")))
            meta = native.load_safetensors(os.path.join(root, folder, "model.safetensors"))[1]
            runs[folder] = {"t_min": [config["timesteps"]["t_min"], json.loads(meta["timesteps"])["t_min"]],
                            "steps": [config["trainer"]["steps"], summary["steps"], int(meta["steps"])],
                            "pieces": config["data"]["forget_pieces"] if "data" in config else None,
                            "resumed": summary["resumed"]}
        print(json.dumps({"texts": texts, "runs": runs}))
    """)
    t_min, steps, pieces, resumed, reused = out["texts"]
    for texts, difference, folder in ((t_min, "timesteps.t_min (was 250, now 300)", "unlearn-node-4-2"),
                                      (steps, "trainer.steps (was 12, now 2)", "unlearn-node-4-3"),
                                      (pieces, "data (images, captions or masks)", "unlearn-node-4-4")):
        assert any("'unlearn-node-4' holds a different run" in t and difference in t
                   and f"started this run fresh in '{folder}'" in t for t in texts), texts
    assert any("run folder 'unlearn-node-4')" in t for t in resumed), resumed
    assert any("reused the finished identical run in 'unlearn-node-4'" in t for t in reused), reused
    runs = {name: {k: v for k, v in run.items() if k != "pieces"} for name, run in out["runs"].items()}
    assert runs == {
        "unlearn-node-4": {"t_min": [250, 250], "steps": [12, 12, 12], "resumed": True},
        "unlearn-node-4-2": {"t_min": [300, 300], "steps": [12, 12, 12], "resumed": False},
        "unlearn-node-4-3": {"t_min": [250, 250], "steps": [2, 2, 2], "resumed": False},
        "unlearn-node-4-4": {"t_min": [250, 250], "steps": [12, 12, 12], "resumed": False},
    }


@needs_bench
def test_each_evaluation_gets_its_own_report_folder(tmp_path):
    out = comfy(tmp_path, """
        prompt = {"1": {"class_type": "LetheBenchModel", "inputs": {"which": "base"}},
                  "2": {"class_type": "LetheEvaluate", "inputs": {"model": ["1", 0], "samples_per_caption": 1, "samples_per_class": 1, "seed": 0, "attacks": False,
                                                                "sampling_steps": 3}}}
        for _ in range(2):
            result = executor.execute(prompt)
            if result.error is not None: raise result.error
        root = os.path.join(folder_paths.get_output_directory(), "lethe")
        print(json.dumps(sorted((f, sorted(os.listdir(os.path.join(root, f)))) for f in os.listdir(root) if f.startswith("evaluate"))))
    """)
    assert [name for name, _ in out] == ["evaluate-node-2", "evaluate-node-2-2"]
    assert all({"report.json", "report.png"} <= set(files) for _, files in out)


def test_a_filename_prefix_outside_the_output_folder_is_refused_by_comfyuis_own_check(tmp_path):
    out = comfy(tmp_path, """
        prompt = {"1": {"class_type": "LetheBenchModel", "inputs": {"which": "base"}},
                  "2": {"class_type": "LetheSaveModel", "inputs": {"model": ["1", 0], "filename_prefix": "../../../escaped"}}}
        result = executor.execute(prompt)
        written = [f for d, _, fs in os.walk(os.path.dirname(folder_paths.get_output_directory())) for f in fs if "escaped" in f]
        print(json.dumps({"error": str(result.error), "written": written}))
    """)
    assert "input 'filename_prefix'" in out["error"] and "outside the folder" in out["error"], out["error"]
    assert out["written"] == []


def test_a_requeued_prompt_is_served_from_the_cache_until_the_folder_changes(tmp_path):
    """One server (executor.PromptExecutor) for several prompts, as ComfyUI runs a session: an
    unchanged re-queue runs nothing; a new or rewritten file in a loader's folder changes its
    IS_CHANGED (names, sizes, mtimes) and re-runs it and what depends on it; a renumbered Lethe node
    re-runs too (it asks for UNIQUE_ID, which puts its id into the cache key)."""
    write_score_folder_inputs(tmp_path)
    out = comfy(tmp_path, """
        import numpy as np
        from PIL import Image
        server, runs = executor.PromptExecutor(), []
        def run(node_id="1"):
            prompt = {node_id: {"class_type": "LetheLoadForgetSet", "inputs": {"folder": "input/lethe/artist", "color": "grayscale",
                                                                               "resize": False, "size": 0, "captions": "optional"}},
                      "9": {"class_type": "PreviewImage", "inputs": {"images": [node_id, 1]}}}
            result = server.execute(prompt)
            if result.error is not None: raise result.error
            runs.append({"executed": result.executed, "images": len(result.ui["9"]["images"])})
        def write(name, seed):
            pixels = np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join("input", "lethe", "artist", name))
        run(); run()
        write("3.png", 1); run(); run()
        write("0.png", 2); run()
        run("5")
        print(json.dumps(runs))
    """)
    assert out == [{"executed": ["1", "9"], "images": 3}, {"executed": [], "images": 3},
                   {"executed": ["1", "9"], "images": 4}, {"executed": [], "images": 4},
                   {"executed": ["1", "9"], "images": 4}, {"executed": ["5", "9"], "images": 4}]


@needs_bench
def test_boolean_and_string_widgets_reach_lethe_as_the_server_coerces_them(tmp_path):
    """An API prompt may carry 1 for a BOOLEAN and a number for a STRING: ComfyUI's validation
    turns them into True and "2024" (bool(), str()) before Lethe's own widget check sees them."""
    write_score_folder_inputs(tmp_path)
    out = comfy(tmp_path, """
        prompt = {"1": {"class_type": "LetheLoadForgetSet", "inputs": {"folder": "input/lethe/artist", "color": "grayscale",
                                                                       "resize": 1, "size": 16, "captions": "optional"}},
                  "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 1]}},
                  "3": {"class_type": "LetheBenchModel", "inputs": {"which": "base"}},
                  "4": {"class_type": "LetheSaveModel", "inputs": {"model": ["3", 0], "filename_prefix": 2024}}}
        result = executor.execute(prompt)
        if result.error is not None: raise result.error
        print(json.dumps({"image": list(result.outputs["1"][1].shape),
                          "saved": sorted(os.listdir(folder_paths.get_output_directory()))}))
    """)
    assert out["image"][:3] == [3, 16, 16]
    assert "2024_00001_.safetensors" in out["saved"]


@pytest.fixture(scope="module")
def lora_in_comfyui(tiny_sd, tmp_path_factory):
    """A kohya LoRA trained by LetheUnlearn on the tiny SD checkpoint, applied by LetheApplyLoRA
    (strength 0.5) to a MODEL whose parameters carry the checkpoint's keys (as ComfyUI's BaseModel
    does), then loaded by load_models_gpu as a sampler would; the key map ComfyUI's LoraLoader
    builds for that checkpoint (comfy/lora.py:model_lora_keys_unet, its unet_to_diffusers loop)."""
    _, path, _ = tiny_sd
    tmp = tmp_path_factory.mktemp("lora-in-comfyui")
    checkpoints = tmp / "comfyui" / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "tiny-sd15.safetensors").write_bytes(path.read_bytes())
    config = comfyui_unet_config(SPEC)
    return comfy(tmp, f"""
        import threading, types
        from safetensors.torch import load_file
        from comfy.model_patcher import ModelPatcher
        from comfy.model_sampling import model_sampling
        HostModelAdapter = sys.modules[{ROOT!r}.replace(".", "_x_") + ".nodes.host_model"].HostModelAdapter
        M = pack.NODE_CLASS_MAPPINGS
        def node(name, uid, **inputs):
            return M[name]().run(unique_id=uid, **inputs)["result"]
        sd = {{k[len("model."):]: v for k, v in load_file("models/checkpoints/tiny-sd15.safetensors").items()
              if k.startswith("model.diffusion_model.")}}
        root = torch.nn.Module()
        for key, tensor in sd.items():
            *path, name = key.split(".")
            module = root
            for part in path:
                if part not in module._modules: module.add_module(part, torch.nn.Module())
                module = module._modules[part]
            module.register_parameter(name, torch.nn.Parameter(tensor.clone(), requires_grad=False))
        root.model_sampling = model_sampling()
        host = ModelPatcher(root)
        weights = lambda: {{k: v.detach().clone() for k, v in root.named_parameters()}}
        result = {{}}
        def work():
            with torch.inference_mode():
                g = torch.Generator().manual_seed(3)
                cond = lambda n: [[torch.randn(1, 77, 768, generator=g), {{"pooled_output": torch.zeros(1, 768)}}] for _ in range(n)]
                model = node("LetheLoadModel", "1", path="tiny-sd15.safetensors")[0]
                forget = node("LetheDatasetFromLatents", "2", samples={{"samples": torch.randn(2, 4, 8, 8, generator=g)}},
                              conditioning=cond(1), latent_scale=0.18215)[0]
                retain = node("LetheDatasetFromLatents", "3", samples={{"samples": torch.randn(4, 4, 8, 8, generator=g)}},
                              conditioning=cond(4), latent_scale=0.18215, empty_conditioning=cond(1))[0]
                objective = node("LetheObjectiveBaseline", "4", method="neggrad", scale=1.0, eta=1e-3)[0]
                unlearned, _, _, lora = node("LetheUnlearn", "5", model=model, objective=objective, steps=3, batch_size=2,
                                             learning_rate=1e-3, seed=0, trainable="lora", lora_rank=2,
                                             retain_caption_dropout=0.5, forget=forget, retain=retain)
                result["lora_name"] = node("LetheSaveLoRA", "6", lora=lora, filename_prefix="lethe/artist")[0]
                node("LetheSaveModel", "7", model=unlearned, filename_prefix="lethe/merged")
                patched = node("LetheApplyLoRA", "8", model=host, lora=lora, strength=0.5)[0]
                # The same keys, one weight wider (SD2's 1024-wide text context): refused whole.
                key = next(k for k in sd if k.endswith("attn2.to_k.weight"))
                module = root.get_submodule(key.rsplit(".", 1)[0])
                original = module._parameters["weight"]
                module._parameters["weight"] = torch.nn.Parameter(torch.zeros(original.shape[0], 1024), requires_grad=False)
                try:
                    node("LetheApplyLoRA", "9", model=ModelPatcher(root), lora=lora, strength=1.0)
                    result["shape_error"] = None
                except ValueError as error:
                    result["shape_error"] = str(error)
                module._parameters["weight"] = original
                # A MODEL with none of the LoRA's keys: refused, naming the node.
                try:
                    other = ModelPatcher(types.SimpleNamespace(state_dict=lambda: {{"diffusion_model.x.weight": torch.zeros(1)}}))
                    node("LetheApplyLoRA", "10", model=other, lora=lora, strength=1.0)
                    result["key_error"] = None
                except ValueError as error:
                    result["key_error"] = str(error)
                fingerprint = lambda patcher: HostModelAdapter(patcher, "test").fingerprint()
                result["fingerprints"] = [fingerprint(host)]
                result["before"] = weights()
                comfy.model_management.load_models_gpu([patched])  # what a sampler does first
                result["loaded"] = weights()
                result["fingerprints"].append(fingerprint(patched))
                comfy.model_management.load_models_gpu([host])
                result["restored"] = weights()
                result["fingerprints"].append(fingerprint(host))
                result["patched"] = patched
        thread = threading.Thread(target=work)
        thread.start(); thread.join()
        patched = result["patched"]
        merged = load_file(os.path.join(folder_paths.get_output_directory(), "lethe", "merged_00001_.safetensors"))
        expected = {{k: sd[k] + 0.5 * (merged[k] - sd[k]) if k in patched.patches else sd[k] for k in sd}}
        lora = load_file(os.path.join(folder_paths.get_folder_paths("loras")[0], result["lora_name"]))
        key_map = {{}}  # model_lora_keys_unet: for k in unet_to_diffusers(unet_config) ending in .weight
        for k, ldm in comfy.utils.unet_to_diffusers({config!r}).items():
            if k.endswith(".weight"):
                key_map["lora_unet_" + k[: -len(".weight")].replace(".", "_")] = "diffusion_model." + ldm
        modules = sorted(k[: -len(".lora_down.weight")] for k in lora if k.endswith(".lora_down.weight"))
        worst = 0.0  # LoraLoader's delta (alpha / rank * up @ down, as the weight's shape) against LetheApplyLoRA's patch
        for m in [m for m in modules if m in key_map]:
            up, down = lora[m + ".lora_up.weight"], lora[m + ".lora_down.weight"]
            delta = (lora[m + ".alpha"].item() / down.shape[0]) * (up.flatten(1) @ down.flatten(1))
            target = key_map[m]
            if target in patched.patches and delta.numel() == sd[target].numel():
                worst = max(worst, (delta.reshape(sd[target].shape) - patched.patches[target][0][1][0]).abs().max().item())
            else:
                worst = float("inf")
        print(json.dumps({{
            "modules": len(modules), "not_loaded": [m for m in modules if m not in key_map],
            "targets_are_the_patched_keys": sorted(key_map[m] for m in modules if m in key_map) == sorted(patched.patches),
            "worst_delta": worst,
            "untouched_before_load": all(torch.equal(result["before"][k], sd[k]) for k in sd),
            "worst_loaded": max((result["loaded"][k] - expected[k]).abs().max().item() for k in sd),
            "changed": sum(not torch.equal(result["loaded"][k], sd[k]) for k in sd),
            "restored": all(torch.equal(result["restored"][k], sd[k]) for k in sd),
            "fingerprints": result["fingerprints"], "shape_error": result["shape_error"], "key_error": result["key_error"],
            "listed": folder_paths.get_filename_list("loras"), "lora_name": result["lora_name"],
            "input_untouched": not host.patches, "same_module": patched.model is host.model}}))
    """)


def test_a_lethe_kohya_lora_maps_through_comfyuis_unet_to_diffusers(lora_in_comfyui):
    out = lora_in_comfyui
    assert out["modules"] == 40 and out["not_loaded"] == [], "ComfyUI would log 'lora key not loaded'"
    assert out["targets_are_the_patched_keys"], "LoraLoader and LetheApplyLoRA patch the same weights"
    assert out["worst_delta"] < 1e-6


def test_the_lora_lands_in_comfyuis_loras_folder_and_patches_a_clone_of_the_model(lora_in_comfyui):
    out = lora_in_comfyui
    assert out["lora_name"] == "lethe/artist_00001_.safetensors" and out["lora_name"] in out["listed"]
    assert out["input_untouched"] and out["same_module"], "patches go on a clone that shares the module"


def test_a_lora_for_another_model_is_refused(lora_in_comfyui):
    error = lora_in_comfyui["key_error"]
    assert error is not None and error.startswith("node 10 (LetheApplyLoRA)") and "match no weight of this MODEL" in error


def test_a_lora_whose_shapes_differ_from_the_model_is_refused_not_partly_applied(lora_in_comfyui):
    error = lora_in_comfyui["shape_error"]
    assert error is not None, "ComfyUI would skip the weight with a log line only (SHAPE MISMATCH ... NOT MERGED)"
    assert error.startswith("node 9 (LetheApplyLoRA)") and "1 of 40 LoRA weights have another shape" in error
    assert "attn2.to_k.weight (LoRA [" in error and ", 1024])" in error


def test_load_models_gpu_merges_the_patches_lethe_adds_and_the_fingerprint_sees_them(lora_in_comfyui):
    out = lora_in_comfyui
    assert out["untouched_before_load"], "add_patches only records patches"
    assert out["changed"] == out["modules"] and out["worst_loaded"] < 1e-5
    assert out["restored"], "loading the unpatched MODEL again puts the original weights back"
    base, patched, base_again = out["fingerprints"]
    assert patched != base and base_again == base, "the host path's resume identity follows the patches ComfyUI applies"
