"""The shipped workflows: they equal workflows/generate.py's output, with a fresh template
thumbnail each (and a fresh README picture); as the ComfyUI frontend lays them out no two nodes
overlap and every link crosses a gap; each unlearn node is titled by the objective wired into it;
they run headless with `lethe run` at small step counts, and bad workflows fail with errors that
name the node and the input, recorded in the run folder, with nothing pretending to be complete."""
import functools
import glob
import importlib.util
import itertools
import json
import os
import re
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
            args += ["--set", f"{node_id}.{key}={json.dumps(value) if isinstance(value, bool) else value}"]
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd or ROOT, timeout=900)


@functools.lru_cache(maxsize=None)
def generator():
    spec = importlib.util.spec_from_file_location("workflow_generator", os.path.join(WORKFLOWS, "generate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shipped():
    """{name: (JSON text, parsed)} of every workflow the generator ships."""
    out = {}
    for name in generator().WORKFLOWS:
        with open(os.path.join(WORKFLOWS, name + ".json")) as f:
            text = f.read()
        out[name] = (text, json.loads(text))
    return out


def test_committed_workflows_equal_the_generator_output():
    for name, text in generator().render_all().items():
        with open(os.path.join(WORKFLOWS, name + ".json")) as f:
            assert f.read() == text, f"workflows/{name}.json is stale: run .venv/bin/python workflows/generate.py"


# ComfyUI serves a custom node pack's templates from every folder of the pack whose name
# matches *example* or *workflow* (app/custom_node_manager.py: web.static("/api/workflow_templates/"
# + module_name, workflows_dir)) and the frontend asks for each template's thumbnail beside it
# as <name>.jpg (workflowTemplatesStore.ts: mediaSubtype 'jpg' for custom-node templates;
# useTemplateWorkflows.ts getTemplateThumbnailUrl: /api/workflow_templates/<module>/<name>.jpg),
# shown in a square card 256 CSS px wide, object-cover.
THUMBNAIL_SIZE = (512, 512)


def test_templates_are_served_from_one_folder():
    """With two matching folders the first static mount wins for the whole prefix, and the
    templates listed from the other would be served from the wrong folder."""
    folders = sorted(os.path.basename(d) for pattern in ("*example*", "*workflow*")
                     for d in glob.glob(os.path.join(ROOT, pattern)) if os.path.isdir(d))
    assert folders == ["workflows"], f"ComfyUI mounts {folders} at /api/workflow_templates/<pack>; expected only workflows"


def test_every_shipped_workflow_has_a_fresh_thumbnail_and_nothing_else_does():
    """Each template's thumbnail records the digest of what it was drawn from
    (render.provenance: the workflow's JSON text, render.py, the labels taken from the schemas);
    a thumbnail missing, of another format or size, blank, or drawn from anything else fails.
    A digest rather than a fresh render compared pixel by pixel: the pixels depend on the fonts
    and on Pillow's, FreeType's and libjpeg's versions, the digest does not."""
    from PIL import Image

    gen = generator()
    problems = []
    for name, (text, _) in shipped().items():
        path = os.path.join(WORKFLOWS, name + ".jpg")
        if not os.path.exists(path):
            problems.append(f"workflows/{name}.jpg: missing (the template browser asks for it beside {name}.json)")
            continue
        with Image.open(path) as image:
            if (image.format, image.size, image.mode) != ("JPEG",) + (THUMBNAIL_SIZE, "RGB"):
                problems.append(f"workflows/{name}.jpg: {image.format} {image.size} {image.mode}, "
                                f"expected JPEG {THUMBNAIL_SIZE} RGB")
                continue
            recorded = image.info.get("comment", b"").decode()
            lo, hi = image.convert("L").getextrema()
        expected = gen.render.provenance(text, gen.SCHEMAS)
        if recorded != expected:
            problems.append(f"workflows/{name}.jpg: drawn from {recorded or 'nothing recorded'}, "
                            f"expected {expected} (the committed {name}.json)")
        if hi - lo < 100:
            problems.append(f"workflows/{name}.jpg: blank (grey levels {lo}..{hi})")
    for name in gen.README_PICTURES:
        with Image.open(os.path.join(WORKFLOWS, name + ".png")) as image:
            recorded = image.info.get("lethe-provenance")
        if recorded != gen.render.provenance(shipped()[name][0], gen.SCHEMAS):
            problems.append(f"workflows/{name}.png: drawn from {recorded}, not from the committed {name}.json")
    pictures = {os.path.basename(p) for ext in ("jpg", "png") for p in glob.glob(os.path.join(WORKFLOWS, "*." + ext))}
    expected = {n + ".jpg" for n in gen.WORKFLOWS} | {n + ".png" for n in gen.README_PICTURES}
    if pictures != expected:
        problems.append(f"workflows/ holds {sorted(pictures - expected)} that no shipped workflow owns, "
                        f"lacks {sorted(expected - pictures)}")
    assert problems == [], "\n".join(problems) + "\nrun .venv/bin/python workflows/generate.py"


def test_the_provenance_changes_with_what_a_picture_shows():
    gen = generator()
    text, workflow = shipped()["quickstart"]
    digest = gen.render.provenance(text, gen.SCHEMAS)
    assert gen.render.provenance(text, gen.SCHEMAS) == digest
    value = copy_with(workflow, lambda w: w["nodes"][6]["widgets_values"].__setitem__(0, 161))
    title = copy_with(workflow, lambda w: w["nodes"][6].__setitem__("title", "Unlearn · NegGrad"))
    for changed in (value, title):
        assert gen.render.provenance(json.dumps(changed, indent=1) + "\n", gen.SCHEMAS) != digest
    renamed = json.loads(json.dumps(gen.SCHEMAS))
    renamed["LetheUnlearn"]["display_name"] = "Lethe Forget"
    untitled = copy_with(workflow, lambda w: w["nodes"][6].pop("title"))
    untitled_text = json.dumps(untitled)
    assert gen.render.provenance(untitled_text, renamed) != gen.render.provenance(untitled_text, gen.SCHEMAS)


def copy_with(workflow, change):
    out = json.loads(json.dumps(workflow))
    change(out)
    return out


# The size the ComfyUI frontend gives a node, written here independently of workflows/render.py
# as the reference. LGraphNode.computeSize (src/lib/litegraph; loadGraphData grows every loaded
# node to it when the saved size is smaller): the body below `pos` is one 20 px row per socket
# (inputs and outputs side by side, at least one row), then 20 + 4 px per widget (a multiline
# textarea, a DOM widget: 50 + 4; a seed's control value is a widget too) and 8 px below the
# widgets, then 6 px; the 30 px title bar sits above `pos`. The width is at least 140 px (210
# with widgets), the title (30 px + text + 9.9), the socket names (input + output + 40, + 5 when
# both sides have one) and the widget names (+ 104), text at 0.6 x 14 px a character. Nodes that
# show images after a run (ComfyUI's PreviewImage and SaveImage, Lethe's SSCD Score and Evaluate)
# then grow by 220 px below their widgets when the images arrive (setSizeForImage).
TITLE_BAR, SLOT_ROW, WIDGET_ROW, TEXTAREA_ROW, IMAGES = 30, 20, 20, 50, 220
SHOWS_IMAGES = ("PreviewImage", "SaveImage", "LetheSSCDScore", "LetheEvaluate")


def frontend_size(node, schemas):
    from python_bridge import _lethe

    schema = schemas.get(node["type"])
    values = node.get("widgets_values", [])
    layout = json.loads(_lethe.widgets_values_layout(json.dumps(schema))) if schema else [None] * len(values)
    widgets = []
    for name in layout[:len(values)]:
        spec = (schema["input"]["required"].get(name) or schema["input"]["optional"].get(name)) if name else ["", {}]
        widgets.append((name, spec[0] == "STRING" and bool(spec[1].get("multiline"))))
    sockets = [s for s in node.get("inputs", []) if "widget" not in s]
    outputs = node.get("outputs", [])
    height = SLOT_ROW * max(1, len(sockets), len(outputs)) + 6 + (IMAGES if node["type"] in SHOWS_IMAGES else 0)
    if widgets:
        height += sum((TEXTAREA_ROW if multiline else WIDGET_ROW) + 4 for _, multiline in widgets) + 8
    chars = lambda text: 14 * 0.6 * len(text)  # noqa: E731
    title = node.get("title") or (schema or {}).get("display_name") or node["type"]
    left, right = max((chars(s["name"]) for s in sockets), default=0), max((chars(s["name"]) for s in outputs), default=0)
    width = max(140 * (1.5 if widgets else 1), 30 + chars(title) + 9.9, left + right + 40 + (5 if left and right else 0),
                max((chars(n) + 104 for n, _ in widgets if n), default=0))
    return width, height


def boxes(workflow, schemas):
    """{node id: (label, left, top, right, bottom)} as the frontend draws the node: its saved size
    grown to frontend_size, the title bar included."""
    out = {}
    for node in workflow["nodes"]:
        width, height = frontend_size(node, schemas)
        saved = node.get("size") or [0, 0]
        x, y = node["pos"]
        label = f"node {node['id']} ({node.get('title') or node['type']})"
        out[node["id"]] = (label, x, y - TITLE_BAR, x + max(saved[0], width), y + max(saved[1], height))
    return out


MIN_GAP, LINK_GAP = 20, 60  # px between any two nodes; between a link's source and its target


def layout_problems(workflow, schemas):
    problems = []
    for node in workflow["nodes"]:
        width, height = frontend_size(node, schemas)
        saved = node.get("size")
        if saved is not None and (saved[0] < width or saved[1] < height):
            problems.append(f"node {node['id']} ({node.get('title') or node['type']}): saved size {saved}, "
                            f"the frontend makes it at least [{width:.0f}, {height}]")
    placed = boxes(workflow, schemas)
    for a, b in itertools.combinations(placed.values(), 2):
        across = min(a[3], b[3]) - max(a[1], b[1])
        down = min(a[4], b[4]) - max(a[2], b[2])
        if across > 0 and down > 0:
            problems.append(f"{a[0]} and {b[0]} overlap by {across:.0f} x {down:.0f} px")
        elif max(-across, -down) < MIN_GAP:
            problems.append(f"{a[0]} and {b[0]} are {max(-across, -down):.0f} px apart, expected at least {MIN_GAP}")
    for link in workflow["links"]:
        source, target = placed[link[1]], placed[link[3]]
        if target[1] - source[3] < LINK_GAP:
            problems.append(f"link {link[0]} ({link[5]}) from {source[0]} to {target[0]}: the target starts "
                            f"{target[1] - source[3]:.0f} px right of the source's right edge, expected at least {LINK_GAP}")
    return problems


SHIPPED = ["quickstart", "concept-erasure", "compare-objectives", "score-folder", "sd15-artist-removal",
           "sdxl-artist-removal", "flux-concept-erasure"]


@pytest.mark.parametrize("name", SHIPPED)
def test_no_two_nodes_overlap_and_links_cross_a_gap(name):
    assert sorted(generator().WORKFLOWS) == sorted(SHIPPED)
    problems = layout_problems(shipped()[name][1], generator().SCHEMAS)
    assert problems == [], f"workflows/{name}.json:\n" + "\n".join(problems)


def test_the_layout_check_names_the_nodes_and_the_overlap():
    """The three unlearn nodes of compare-objectives as they were laid out before (330 px apart,
    516 px tall, title bars 30 px): the check names each pair and the overlap."""
    gen = generator()
    workflow = copy_with(shipped()["compare-objectives"][1], lambda w: None)
    unlearn = [n for n in workflow["nodes"] if n["type"] == "LetheUnlearn"]
    for i, node in enumerate(unlearn):
        node["pos"], node["size"] = [720, 330 * i], [320, 516]
    problems = layout_problems(workflow, gen.SCHEMAS)
    for a, b in ((0, 1), (1, 2)):
        assert f"node {unlearn[a]['id']} ({unlearn[a]['title']}) and node {unlearn[b]['id']} " \
               f"({unlearn[b]['title']}) overlap by 320 x 216 px" in problems, problems
    node = unlearn[0]
    node["size"] = [320, 100]
    assert any(p.startswith(f"node {node['id']} ({node['title']}): saved size [320, 100], the frontend makes it at least")
               for p in layout_problems(workflow, gen.SCHEMAS))


def normalized(text):
    return re.sub(r"[^a-z0-9]", "", text.lower())


def test_objective_labels_name_every_method_of_every_objective_node():
    gen = generator()
    objective_nodes = [k for k, s in gen.SCHEMAS.items() if s.get("output") == ["LETHE_OBJECTIVE"]]
    assert len(objective_nodes) == 5, objective_nodes
    expected = set()
    for kind in objective_nodes:
        widget = gen.METHOD_WIDGET.get(kind, "method")
        expected |= {(kind, choice) for choice in gen.SCHEMAS[kind]["input"]["required"][widget][0]}
    assert set(gen.OBJECTIVE_LABELS) == expected
    for (kind, method), label in gen.OBJECTIVE_LABELS.items():
        assert normalized(method) in normalized(label), f"{kind} {method}: label {label!r}"
    assert len(set(gen.OBJECTIVE_LABELS.values())) == len(gen.OBJECTIVE_LABELS)


def test_each_unlearn_node_is_titled_by_the_objective_wired_into_it():
    from python_bridge import _lethe

    gen = generator()
    checked = 0
    for name, (_, workflow) in shipped().items():
        nodes = {n["id"]: n for n in workflow["nodes"]}
        links = {link[0]: link for link in workflow["links"]}
        for node in workflow["nodes"]:
            if node["type"] not in ("LetheUnlearn", "LetheUnlearnHostModel"):
                continue
            link = next(s["link"] for s in node["inputs"] if s["name"] == "objective")
            objective = nodes[links[link][1]]
            widget = gen.METHOD_WIDGET.get(objective["type"], "method")
            layout = json.loads(_lethe.widgets_values_layout(json.dumps(gen.SCHEMAS[objective["type"]])))
            method = objective["widgets_values"][layout.index(widget)]
            expected = "Unlearn · " + gen.OBJECTIVE_LABELS[(objective["type"], method)]
            assert node.get("title") == expected, \
                f"{name}: node {node['id']} is titled {node.get('title')!r}, its objective is node {objective['id']} " \
                f"({objective['type']}, {widget} = {method}): expected {expected!r}"
            checked += 1
    assert checked == 8  # quickstart, concept-erasure, three in compare-objectives, sd15/sdxl-artist-removal, flux-concept-erasure


def test_a_workflow_saved_before_a_widget_existed_gets_its_default():
    """retain_caption_dropout, gradient_checkpointing, ema_decay, checkpoint_minutes,
    timestep_sampling and then precision were added as LetheUnlearn's last widgets, sampling_steps
    as LetheEvaluate's; a quickstart saved before (widgets_values shorter) converts as the
    frontend loads it: the new widgets at their defaults (EMA off, as runs were then; a checkpoint
    every minute; t drawn as the model was trained; auto precision; the evaluation's 25 DDIM
    steps), the earlier positions unchanged."""
    from python_bridge import _lethe

    with open(os.path.join(WORKFLOWS, "quickstart.json")) as f:
        workflow = json.load(f)
    unlearn = next(n for n in workflow["nodes"] if n["type"] == "LetheUnlearn")
    assert unlearn["widgets_values"][-6:] == [0.1, False, 0.98, 1.0, "auto", "auto"]
    unlearn["widgets_values"] = unlearn["widgets_values"][:-6]
    unlearn["widgets_values"][0] = 77  # steps: positions before the new widgets are unchanged
    api = json.loads(_lethe.convert_workflow(json.dumps(workflow)))
    inputs = api[str(unlearn["id"])]["inputs"]
    assert inputs["steps"] == 77 and inputs["trainable"] == "full"
    assert inputs["retain_caption_dropout"] == 0.1 and inputs["gradient_checkpointing"] is False
    assert inputs["ema_decay"] == 0.0 and inputs["checkpoint_minutes"] == 1.0
    assert inputs["timestep_sampling"] == "auto" and inputs["precision"] == "auto"
    # LetheEvaluate's last widget, sampling_steps, likewise: the evaluation's default DDIM steps.
    evaluate = next(n for n in workflow["nodes"] if n["type"] == "LetheEvaluate")
    assert evaluate["widgets_values"][-2:] == ["auto", 25]
    evaluate["widgets_values"] = evaluate["widgets_values"][:-1]
    inputs = json.loads(_lethe.convert_workflow(json.dumps(workflow)))[str(evaluate["id"])]["inputs"]
    assert inputs["sampling_steps"] == 25 and inputs["precision"] == "auto" and inputs["samples_per_class"] == 50


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


def test_the_quickstart_runs_the_bench_default_recipe():
    """The quickstart and bench/configs/siss-tf.json (make unlearning-check's recipe, the README's
    results) are one recipe: every setting of the config, resolved, as the quickstart's nodes hold it."""
    from python_bridge import _lethe

    with open(os.path.join(WORKFLOWS, "quickstart.json")) as f:
        api = json.loads(_lethe.convert_workflow(f.read()))
    nodes = {entry["class_type"]: entry["inputs"] for entry in api.values()}
    done = subprocess.run([LETHE_EXE, "unlearn", "--config", os.path.join(ROOT, "bench", "configs", "siss-tf.json"),
                           "--print-config"], capture_output=True, text=True, check=True)
    config = json.loads(done.stdout)
    trainer, unlearn = config["trainer"], nodes["LetheUnlearn"]
    assert (unlearn["steps"], unlearn["batch_size"], unlearn["learning_rate"], unlearn["seed"], unlearn["ema_decay"],
            unlearn["retain_caption_dropout"], unlearn["trainable"]) == \
        (trainer["steps"], trainer["batch_size"], trainer["optimizer"]["learning_rate"], trainer["seed"],
         trainer["ema_decay"], trainer["retain_caption_dropout"], config["trainable"])
    assert nodes["LetheBenchData"]["task"] == config["data"]["task"]
    times = nodes["LetheTimestepSelection"]
    assert {k: times[k] for k in ("t_min", "t_max", "weighting")} == \
        {k: config["timesteps"][k] for k in ("t_min", "t_max", "weighting")}
    frequency = nodes["LetheFrequencySelection"]
    assert {k: frequency[k] for k in ("filter", "shape", "profile", "cutoff")} == \
        {k: config["frequency"][k] for k in ("filter", "shape", "profile", "cutoff")}
    objective = nodes["LetheObjectiveSISS"]
    assert objective["method"] == config["objective"]
    settings = config["objective_config"]
    for key, value in settings.items():
        held = objective[key]
        if key == "ablation_words":
            held = [w for w in re.split(r"[\s,]+", held) if w]
        assert held == value, f"quickstart's SISS node: {key} = {held!r}, bench/configs/siss-tf.json: {value!r}"
    assert set(settings) >= {"ablation_weight", "ablation_words", "ablation_inputs", "preservation_weight"}
