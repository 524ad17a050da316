"""The pack inside (a mock of) ComfyUI: loaded as ComfyUI loads a custom_nodes folder, its
V1 classes checked against the contract, the shipped workflows converted by the frontend's
rules and executed through the node classes on a worker thread under inference mode,
progress and interrupt through ComfyUI's progress bar, the GIL released while native code runs.

Each test runs in a fresh interpreter (comfy() of comfy_helpers.py): ComfyUI imports the pack as
a package named after its path, and the native module must not also be imported under its
test-suite name there."""
import pytest

from comfy_helpers import SMALL, comfy, needs_bench, write_score_folder_inputs
from conftest import ROOT


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
                  "2": {"class_type": "LetheEvaluate", "inputs": {"model": ["1", 0], "samples_per_caption": 1, "samples_per_class": 1, "seed": 0}}}
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
