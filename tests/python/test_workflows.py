"""The shipped workflows: they equal workflows/generate.py's output, run headless with
`lethe run` at small step counts, and bad workflows fail with errors that name the node and
the input, recorded in the run folder, with nothing pretending to be complete."""
import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from comfy_helpers import SMALL, needs_bench, write_score_folder_inputs
from conftest import LETHE_EXE, ROOT

WORKFLOWS = os.path.join(ROOT, "workflows")


def lethe_run(workflow, out, *sets, cwd=None):
    args = [LETHE_EXE, "run", str(workflow), "--out", str(out)]
    for node_id, inputs in sets:
        for key, value in inputs.items():
            args += ["--set", f"{node_id}.{key}={value}"]
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd or ROOT, timeout=900)


def test_committed_workflows_equal_the_generator_output():
    import importlib.util

    spec = importlib.util.spec_from_file_location("workflow_generator", os.path.join(WORKFLOWS, "generate.py"))
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    for name, text in generator.render_all().items():
        with open(os.path.join(WORKFLOWS, name + ".json")) as f:
            assert f.read() == text, f"workflows/{name}.json is stale: run .venv/bin/python workflows/generate.py"


def test_a_workflow_saved_before_a_widget_existed_gets_its_default():
    """retain_caption_dropout, gradient_checkpointing, ema_decay and then checkpoint_minutes were
    added as LetheUnlearn's last widgets; a quickstart saved before (widgets_values four shorter)
    converts as the frontend loads it: the new widgets at their defaults (EMA off, as runs were
    then; a checkpoint every minute), the earlier positions unchanged."""
    from python_bridge import _lethe

    with open(os.path.join(WORKFLOWS, "quickstart.json")) as f:
        workflow = json.load(f)
    unlearn = next(n for n in workflow["nodes"] if n["type"] == "LetheUnlearn")
    assert unlearn["widgets_values"][-4:] == [0.1, False, 0.98, 1.0]
    unlearn["widgets_values"] = unlearn["widgets_values"][:-4]
    unlearn["widgets_values"][0] = 77  # steps: positions before the new widgets are unchanged
    api = json.loads(_lethe.convert_workflow(json.dumps(workflow)))
    inputs = api[str(unlearn["id"])]["inputs"]
    assert inputs["steps"] == 77 and inputs["trainable"] == "full"
    assert inputs["retain_caption_dropout"] == 0.1 and inputs["gradient_checkpointing"] is False
    assert inputs["ema_decay"] == 0.0 and inputs["checkpoint_minutes"] == 1.0


@needs_bench
@pytest.mark.parametrize("name", sorted(SMALL))
def test_shipped_workflow_runs_headless(tmp_path, name):
    cwd = ROOT
    if name == "score-folder":
        write_score_folder_inputs(tmp_path)
        cwd = tmp_path / "comfyui"
    done = lethe_run(os.path.join(WORKFLOWS, name + ".json"), tmp_path / "run", *SMALL[name].items(), cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "success"
    api = json.loads((tmp_path / "run" / "workflow_api.json").read_text())
    for node_id, inputs in SMALL[name].items():  # the resolved graph carries the overrides
        for key, value in inputs.items():
            assert api[node_id]["inputs"][key] == value
    assert all(entry["status"] == "done" for entry in record["nodes"].values())
    if name != "score-folder":
        assert (tmp_path / "run" / "report.png").exists() or any(
            f.endswith("report.png") for entry in record["nodes"].values() for f in entry.get("files", []))


def _api(nodes):
    return {str(i): {"class_type": c, "inputs": inputs} for i, (c, inputs) in nodes.items()}


SELECTION = ("LetheTimestepSelection", {"t_min": 250, "t_max": 750, "weighting": "uniform"})
PREVIEW_OF = lambda source: ("PreviewImage", {"images": [str(source), 1]})  # noqa: E731


@pytest.mark.parametrize(
    "case, graph, expected",
    [
        ("missing link", {1: ("PreviewImage", {})}, ["node 1", "PreviewImage", "images"]),
        ("wrong type", {1: ("LetheBenchModel", {"which": "base"}), 2: ("PreviewImage", {"images": ["1", 0]})},
         ["node 2", "images", "IMAGE", "LETHE_MODEL"]),
        ("out of range", {1: ("LetheTimestepSelection", {"t_min": 250, "t_max": 5000, "weighting": "uniform"}), 2: PREVIEW_OF(1)},
         ["node 1", "t_max", "5000", "1000"]),
        ("unknown node", {1: ("LetheTeleport", {}), 2: PREVIEW_OF(1)}, ["node 1", "LetheTeleport", "LetheUnlearn"]),
        ("comfyui node", {1: ("CLIPTextEncode", {"text": "x"}), 2: PREVIEW_OF(1)},
         ["node 1", "CLIPTextEncode", "a ComfyUI node the headless runner cannot run", "CLIP text encoder", "inside ComfyUI"]),
        ("cycle", {1: ("LetheSpatialMask", {"dataset": ["2", 0], "mask": ["3", 2]}),
                   2: ("LetheSpatialMask", {"dataset": ["1", 0], "mask": ["3", 2]}),
                   3: ("LetheLoadForgetSet", {"folder": "x", "color": "grayscale", "resize": False, "size": 0}),
                   4: ("LetheSampleless", {})}, ["cycle"]),
        ("missing folder", {1: ("LetheLoadForgetSet", {"folder": "/nonexistent/artist", "color": "grayscale", "resize": False, "size": 0}),
                            2: PREVIEW_OF(1)}, ["node 1", "LetheLoadForgetSet", "folder", "/nonexistent/artist"]),
    ],
)
def test_bad_workflows_fail_clearly_and_are_recorded(tmp_path, case, graph, expected):
    if case == "cycle":  # a cycle needs an output node downstream of it
        graph = dict(graph)
        graph.pop(4)
        graph[4] = ("LetheUnlearn", {"model": ["5", 0], "objective": ["6", 0], "forget": ["1", 0], "steps": 1, "batch_size": 1,
                                     "learning_rate": 1e-4, "seed": 0, "trainable": "full", "lora_rank": 4,
                                     "retain_caption_dropout": 0.1})
        graph[5] = ("LetheLoadModel", {"path": "x.safetensors"})
        graph[6] = ("LetheObjectiveBaseline", {"method": "neggrad", "scale": 1.0, "eta": 0.001})
        graph[7] = ("LetheSaveModel", {"model": ["4", 0], "filename_prefix": "x"})
    path = tmp_path / f"{case.replace(' ', '-')}.json"
    path.write_text(json.dumps(_api(graph)))
    done = lethe_run(path, tmp_path / "run")
    assert done.returncode != 0
    message = done.stderr
    for fragment in expected:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] in ("invalid", "error")
    assert "error" in record
    assert not (tmp_path / "run" / "report.json").exists()


def test_wrong_image_size_names_the_node_and_the_file(tmp_path):
    folder = tmp_path / "artist"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((40, 36), np.uint8)).save(folder / "b.png")
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(_api({
        1: ("LetheLoadForgetSet", {"folder": str(folder), "color": "grayscale", "resize": False, "size": 0}),
        2: PREVIEW_OF(1),
    })))
    done = lethe_run(path, tmp_path / "run")
    assert done.returncode != 0
    for fragment in ("node 1", "LetheLoadForgetSet", "b.png", "40", "28"):
        assert fragment in done.stderr, f"{fragment!r} not in {done.stderr!r}"
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "error" and record["error"]["node_id"] == "1"
    assert record["nodes"]["1"]["status"] == "failed"


def test_a_run_folder_is_never_overwritten(tmp_path):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(_api({1: ("PreviewImage", {})})))
    lethe_run(path, tmp_path / "run")
    again = lethe_run(path, tmp_path / "run")
    assert again.returncode != 0 and "already holds a run" in again.stderr


def test_the_widgets_values_layout_follows_the_frontends_rule_as_the_mock_writes_it(lethe):
    """The one native rule (graph::widgets_values_layout: parser, generate.py, render.py) against
    the mock's independent copy of the frontend's (tests/python/comfy_mock/executor.py), for
    every Lethe node and ComfyUI's KSampler (seed with its control value) and a seed-named INT
    that opts out."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "comfy_mock"))
    try:
        import executor
    finally:
        sys.path.pop(0)
    schemas = json.loads(lethe.node_schemas_json(True))
    schemas["KSampler"] = {"input": {"required": {"model": ["MODEL", {}], "seed": ["INT", {"default": 0}],
                                                  "steps": ["INT", {"default": 20}], "sampler_name": [["euler"], {}]},
                                     "optional": {"noise_seed": ["INT", {"control_after_generate": False}],
                                                  "strength": ["FLOAT", {"forceInput": True}]}},
                           "input_order": {"required": ["model", "seed", "steps", "sampler_name"],
                                           "optional": ["noise_seed", "strength"]}}

    def mock_layout(schema):
        layout = []
        for group in ("required", "optional"):
            for name in schema["input_order"][group]:
                spec = schema["input"][group][name]
                if executor._is_widget(spec):
                    layout.append(name)
                    if executor._has_control(name, spec):
                        layout.append(None)
        return layout

    assert json.loads(lethe.widgets_values_layout(json.dumps(schemas["KSampler"]))) == \
        ["seed", None, "steps", "sampler_name", "noise_seed"]
    for name, schema in schemas.items():
        assert json.loads(lethe.widgets_values_layout(json.dumps(schema))) == mock_layout(schema), name
