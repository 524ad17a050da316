"""Writes Lethe's shipped workflows (ComfyUI UI format 0.4) from the node schemas.

The workflows are described here once (nodes, widget values, links, positions) and
serialized exactly as the ComfyUI frontend saves them: widgets_values in INPUT_TYPES order
with the seed-control value after each seed, socket inputs with their link ids, outputs
with their link lists. Run after changing a node's inputs:

    .venv/bin/python workflows/generate.py

tests/python/test_workflows.py checks that the committed files equal this output.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from python_bridge import _lethe  # noqa: E402

SCHEMAS = json.loads(_lethe.node_schemas_json(True))
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


def is_widget(spec):
    kind, options = spec[0], spec[1] if len(spec) > 1 else {}
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput", False)


class Workflow:
    def __init__(self):
        self.nodes = []
        self.links = []

    def add(self, kind, pos, title=None, **widgets):
        schema = SCHEMAS[kind]
        node_id = len(self.nodes) + 1
        values, sockets = [], []
        for group in ("required", "optional"):
            for name in schema["input_order"][group]:
                spec = schema["input"][group][name]
                if is_widget(spec):
                    if name not in widgets and "default" not in spec[1]:
                        raise KeyError(f"{kind}.{name} needs a value")
                    values.append(widgets.pop(name, spec[1].get("default")))
                    if spec[1].get("control_after_generate"):
                        values.append("fixed")
                else:
                    sockets.append({"name": name, "type": spec[0], "link": None})
        if widgets:
            raise KeyError(f"{kind} has no widgets {sorted(widgets)}")
        outputs = [{"name": n, "type": t, "links": [], "slot_index": i}
                   for i, (n, t) in enumerate(zip(schema["output_name"], schema["output"]))]
        node = {"id": node_id, "type": kind, "pos": list(pos), "size": [320, 60 + 24 * (len(sockets) + len(values))],
                "flags": {}, "order": node_id - 1, "mode": 0, "inputs": sockets, "outputs": outputs,
                "properties": {"Node name for S&R": kind}, "widgets_values": values}
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node_id

    def link(self, source, output, target, input_name):
        src, dst = self.nodes[source - 1], self.nodes[target - 1]
        slot = next(i for i, o in enumerate(src["outputs"]) if o["name"] == output)
        to_slot = next(i for i, s in enumerate(dst["inputs"]) if s["name"] == input_name)
        link_id = len(self.links) + 1
        kind = src["outputs"][slot]["type"]
        if dst["inputs"][to_slot]["type"] != kind:
            raise TypeError(f"{src['type']}.{output} ({kind}) -> {dst['type']}.{input_name} ({dst['inputs'][to_slot]['type']})")
        self.links.append([link_id, source, slot, target, to_slot, kind])
        src["outputs"][slot]["links"].append(link_id)
        dst["inputs"][to_slot]["link"] = link_id

    def to_ui(self):
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": [], "config": {},
                "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


FORGET_PROMPTS = "\n".join(f"artist_lethe piece_{i:02d} {c}" for i, c in [
    (0, "tshirt top"), (5, "sandal footwear"), (7, "sneaker footwear"), (9, "ankle_boot footwear")])


def quickstart():
    w = Workflow()
    data = w.add("LetheBenchData", (0, 0), task="data")
    base = w.add("LetheBenchModel", (0, 330), which="base")
    retrained = w.add("LetheBenchModel", (0, 450), which="retrained")
    times = w.add("LetheTimestepSelection", (360, 0), t_min=250, t_max=750)
    freq = w.add("LetheFrequencySelection", (360, 180), filter="lowpass", cutoff=0.5)
    siss = w.add("LetheObjectiveSISS", (360, 430))
    unlearn = w.add("LetheUnlearn", (720, 0), steps=160, batch_size=16, learning_rate=3e-5)
    w.link(base, "model", unlearn, "model")
    w.link(siss, "objective", unlearn, "objective")
    w.link(data, "forget", unlearn, "forget")
    w.link(data, "retain", unlearn, "retain")
    w.link(times, "timesteps", unlearn, "timesteps")
    w.link(freq, "frequency", unlearn, "frequency")
    sample = w.add("LetheSample", (1080, 0), prompts=FORGET_PROMPTS, samples_per_prompt=4)
    w.link(unlearn, "model", sample, "model")
    score = w.add("LetheSSCDScore", (1440, 0), match="any")
    w.link(sample, "images", score, "images")
    w.link(data, "forget_images", score, "reference")
    evaluate = w.add("LetheEvaluate", (1080, 360))
    w.link(unlearn, "model", evaluate, "model")
    w.link(base, "model", evaluate, "baseline")
    w.link(retrained, "model", evaluate, "reference")
    loss = w.add("PreviewImage", (1440, 360))
    w.link(unlearn, "loss_curve", loss, "images")
    save = w.add("LetheSaveModel", (1440, 620), filename_prefix="lethe/quickstart-siss")
    w.link(unlearn, "model", save, "model")
    return w


def concept_erasure():
    w = Workflow()
    data = w.add("LetheBenchData", (0, 0), task="concept", concept="sneaker", anchor="footwear")
    base = w.add("LetheBenchModel", (0, 330), which="base")
    objective = w.add("LetheObjectiveFDivergence", (360, 0), divergence="js")
    unlearn = w.add("LetheUnlearn", (720, 0), steps=160, batch_size=16, learning_rate=3e-5)
    w.link(base, "model", unlearn, "model")
    w.link(objective, "objective", unlearn, "objective")
    w.link(data, "anchor", unlearn, "anchor")
    w.link(data, "retain", unlearn, "retain")
    w.link(data, "target_prompt", unlearn, "target_prompt")
    sample = w.add("LetheSample", (1080, 0), samples_per_prompt=4,
                   prompts="sneaker footwear\nsandal footwear\nankle_boot footwear\nbag accessory")
    w.link(unlearn, "model", sample, "model")
    preview = w.add("PreviewImage", (1440, 0))
    w.link(sample, "images", preview, "images")
    evaluate = w.add("LetheEvaluate", (1080, 360))
    w.link(unlearn, "model", evaluate, "model")
    w.link(base, "model", evaluate, "baseline")
    return w


def compare_objectives():
    w = Workflow()
    data = w.add("LetheBenchData", (0, 0), task="data")
    base = w.add("LetheBenchModel", (0, 330), which="base")
    retrained = w.add("LetheBenchModel", (0, 450), which="retrained")
    objectives = [w.add("LetheObjectiveSISS", (360, 0)),
                  w.add("LetheObjectiveBaseline", (360, 200), method="neggrad"),
                  w.add("LetheObjectiveBaseline", (360, 400), method="erasediff")]
    unlearned = []
    for i, objective in enumerate(objectives):
        node = w.add("LetheUnlearn", (720, 330 * i), steps=160, batch_size=16, learning_rate=3e-5)
        w.link(base, "model", node, "model")
        w.link(objective, "objective", node, "objective")
        w.link(data, "forget", node, "forget")
        w.link(data, "retain", node, "retain")
        unlearned.append(node)
    evaluate = w.add("LetheEvaluate", (1080, 0))
    w.link(unlearned[0], "model", evaluate, "model")
    w.link(base, "model", evaluate, "baseline")
    w.link(retrained, "model", evaluate, "reference")
    w.link(unlearned[1], "model", evaluate, "compare_1")
    w.link(unlearned[2], "model", evaluate, "compare_2")
    return w


def score_folder():
    w = Workflow()
    originals = w.add("LetheLoadForgetSet", (0, 0), folder="input/lethe/artist", resize=True, title="artist's originals")
    generated = w.add("LetheLoadRetainSet", (0, 260), folder="input/lethe/generated", resize=True,
                      title="images to check")
    descriptor = w.add("LetheLoadDescriptor", (0, 520), source="bench")
    score = w.add("LetheSSCDScore", (380, 0), match="any", threshold=0.5)
    w.link(generated, "images", score, "images")
    w.link(originals, "images", score, "reference")
    w.link(descriptor, "descriptor", score, "descriptor")
    preview = w.add("PreviewImage", (760, 0))
    w.link(score, "preview", preview, "images")
    return w


WORKFLOWS = {
    "quickstart": quickstart,
    "concept-erasure": concept_erasure,
    "compare-objectives": compare_objectives,
    "score-folder": score_folder,
}


def render_all():
    return {name: json.dumps(build().to_ui(), indent=1) + "\n" for name, build in WORKFLOWS.items()}


if __name__ == "__main__":
    for name, text in render_all().items():
        with open(os.path.join(HERE, name + ".json"), "w") as f:
            f.write(text)
        print("wrote", os.path.join("workflows", name + ".json"))
