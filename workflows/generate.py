"""Writes Lethe's shipped workflows (ComfyUI UI format 0.4) from the node schemas, with their
template thumbnails and the README's graph picture.

The workflows are described here once (nodes, widget values, links, grid cells) and
serialized exactly as the ComfyUI frontend saves them: widgets_values in INPUT_TYPES order
with the seed-control value after each seed, socket inputs with their link ids, outputs
with their link lists. Layout: each node names a grid cell (column, row); columns are as wide
as their widest node plus GAP_X, nodes in a column are stacked GAP_Y apart, title bars
included, each node as large as the frontend would make it (render.frontend_min_size), so no
two nodes overlap and every link crosses a gap. Unlearn nodes are titled by the objective wired
into them ("Unlearn · SISS"). Run after changing a node's inputs:

    .venv/bin/python workflows/generate.py

It writes workflows/<name>.json, workflows/<name>.jpg (the thumbnail ComfyUI's template browser
asks for beside each template: /api/workflow_templates/<pack>/<name>.jpg, served from this
folder) and workflows/quickstart.png (the README's picture). tests/python/test_workflows.py
checks that the committed files equal this output.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from python_bridge import _lethe  # noqa: E402
from workflows import render  # noqa: E402

SCHEMAS = json.loads(_lethe.node_schemas_json(True))
# In ComfyUI a PreviewImage is ComfyUI's own node (the native one is the headless stand-in): its name there.
SCHEMAS["PreviewImage"] = dict(SCHEMAS["PreviewImage"], display_name="Preview Image")


def _core(inputs, outputs, display_name, output_names=None):
    """A ComfyUI core node's schema, as its INPUT_TYPES declares it (ComfyUI @ a125cd84, nodes.py)."""
    return {"input": {"required": dict(inputs), "optional": {}},
            "input_order": {"required": [k for k, _ in inputs], "optional": []},
            "output": list(outputs), "output_name": list(output_names or outputs), "display_name": display_name}


SEED = ["INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}]
# ComfyUI's own nodes used by the Stable Diffusion workflow (only ComfyUI runs them).
SCHEMAS.update({
    "CheckpointLoaderSimple": _core([("ckpt_name", [["v1-5-pruned-emaonly.safetensors"], {}])], ["MODEL", "CLIP", "VAE"],
                                    "Load Checkpoint"),
    "CLIPTextEncode": _core([("text", ["STRING", {"multiline": True, "dynamicPrompts": True}]), ("clip", ["CLIP", {}])],
                            ["CONDITIONING"], "CLIP Text Encode (Prompt)"),
    "VAEEncode": _core([("pixels", ["IMAGE", {}]), ("vae", ["VAE", {}])], ["LATENT"], "VAE Encode"),
    "VAEDecode": _core([("samples", ["LATENT", {}]), ("vae", ["VAE", {}])], ["IMAGE"], "VAE Decode"),
    "EmptyLatentImage": _core([("width", ["INT", {"default": 512}]), ("height", ["INT", {"default": 512}]),
                               ("batch_size", ["INT", {"default": 1}])], ["LATENT"], "Empty Latent Image"),
    "KSampler": _core([("model", ["MODEL", {}]), ("seed", SEED), ("steps", ["INT", {"default": 20}]),
                       ("cfg", ["FLOAT", {"default": 8.0}]), ("sampler_name", [["euler", "ddim"], {}]),
                       ("scheduler", [["normal", "simple", "ddim_uniform"], {}]), ("positive", ["CONDITIONING", {}]),
                       ("negative", ["CONDITIONING", {}]), ("latent_image", ["LATENT", {}]),
                       ("denoise", ["FLOAT", {"default": 1.0}])], ["LATENT"], "KSampler"),
    # The Flux workflow's (ComfyUI @ a125cd84: nodes.py, comfy_extras/nodes_flux.py, nodes_sd3.py).
    "UNETLoader": _core([("unet_name", [["flux1-dev.safetensors"], {}]),
                         ("weight_dtype", [["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"], {}])],
                        ["MODEL"], "Load Diffusion Model"),
    "DualCLIPLoader": _core([("clip_name1", [["clip_l.safetensors"], {}]), ("clip_name2", [["t5xxl_fp16.safetensors"], {}]),
                             ("type", [["sdxl", "sd3", "flux", "hunyuan_video"], {}])], ["CLIP"], "DualCLIPLoader"),
    "VAELoader": _core([("vae_name", [["ae.safetensors"], {}])], ["VAE"], "Load VAE"),
    "FluxGuidance": _core([("conditioning", ["CONDITIONING", {}]), ("guidance", ["FLOAT", {"default": 3.5}])],
                          ["CONDITIONING"], "FluxGuidance"),
    "EmptySD3LatentImage": _core([("width", ["INT", {"default": 1024}]), ("height", ["INT", {"default": 1024}]),
                                  ("batch_size", ["INT", {"default": 1}])], ["LATENT"], "EmptySD3LatentImage"),
})
# What an unlearn node's title calls its objective: (objective node type, value of its method
# widget) -> name. The f-divergence node's method widget is `divergence`.
OBJECTIVE_LABELS = {
    ("LetheObjectiveSISS", "siss"): "SISS", ("LetheObjectiveSISS", "siss_no_is"): "SISS (no IS)",
    ("LetheObjectiveBaseline", "neggrad"): "NegGrad", ("LetheObjectiveBaseline", "naive_deletion"): "naive deletion",
    ("LetheObjectiveBaseline", "erasediff"): "EraseDiff",
    ("LetheObjectivePreference", "npo"): "NPO", ("LetheObjectivePreference", "dpo"): "DPO",
    ("LetheObjectiveFDivergence", "js"): "JS divergence", ("LetheObjectiveFDivergence", "hellinger"): "Hellinger",
    ("LetheObjectiveFDivergence", "kl"): "KL", ("LetheObjectiveFDivergence", "reverse_kl"): "reverse KL",
    ("LetheObjectiveFDivergence", "chi2"): "chi2", ("LetheObjectiveFDivergence", "mse"): "MSE",
    ("LetheObjectiveFDivergence", "alpha"): "alpha divergence", ("LetheObjectiveFDivergence", "tv"): "TV",
    ("LetheObjectiveErasure", "esd"): "ESD", ("LetheObjectiveErasure", "uce"): "UCE",
}
METHOD_WIDGET = {"LetheObjectiveFDivergence": "divergence"}  # every other objective node: "method"
UNLEARN_NODES = ("LetheUnlearn", "LetheUnlearnHostModel")
# Layout: a node at least this wide (or as wide as the frontend makes it), columns GAP_X apart
# (room for the links between them), nodes in a column GAP_Y apart; a multiline textarea gets
# three lines (the frontend's minimum, 50 px, shows two).
NODE_WIDTH, GAP_X, GAP_Y, MULTILINE_HEIGHT = 320, 100, 40, 74
README_PICTURES = ("quickstart",)


def widgets_values_layout(schema):
    """The frontend's widgets_values order (None for a seed-control value), by the one rule in
    native/graph/node_registry.hpp."""
    return json.loads(_lethe.widgets_values_layout(json.dumps(schema)))


class Workflow:
    def __init__(self):
        self.nodes = []
        self.links = []
        self.cells = []

    def add(self, kind, cell, title=None, **widgets):
        """A node of type `kind` in grid cell (column, row): row orders the nodes of a column."""
        schema = SCHEMAS[kind]
        node_id = len(self.nodes) + 1
        layout = widgets_values_layout(schema)
        values, sockets = [], []
        for slot in layout:
            if slot is None:
                values.append("fixed")  # the seed's control value
                continue
            spec = schema["input"]["required" if slot in schema["input"]["required"] else "optional"][slot]
            if slot not in widgets and "default" not in spec[1]:
                raise KeyError(f"{kind}.{slot} needs a value")
            values.append(widgets.pop(slot, spec[1].get("default")))
        for group in ("required", "optional"):
            for name in schema["input_order"][group]:
                if name not in layout:
                    sockets.append({"name": name, "type": schema["input"][group][name][0], "link": None})
        if widgets:
            raise KeyError(f"{kind} has no widgets {sorted(widgets)}")
        outputs = [{"name": n, "type": t, "links": [], "slot_index": i}
                   for i, (n, t) in enumerate(zip(schema["output_name"], schema["output"]))]
        node = {"id": node_id, "type": kind, "pos": [0, 0], "size": [0, 0],
                "flags": {}, "order": node_id - 1, "mode": 0, "inputs": sockets, "outputs": outputs,
                "properties": {"Node name for S&R": kind}, "widgets_values": values}
        if title:
            node["title"] = title
        self.nodes.append(node)
        self.cells.append(cell)
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

    def widget(self, node, name):
        return node["widgets_values"][widgets_values_layout(SCHEMAS[node["type"]]).index(name)]

    def title_unlearn_nodes(self):
        """Each unlearn node is titled by the objective wired into its `objective` input."""
        for node in self.nodes:
            if node["type"] not in UNLEARN_NODES:
                continue
            link = next(s["link"] for s in node["inputs"] if s["name"] == "objective")
            if link is None:
                raise ValueError(f"node {node['id']} ({node['type']}): input 'objective' is not linked; "
                                 "expected a link from an objective node, which names the node's title")
            objective = self.nodes[next(l[1] for l in self.links if l[0] == link) - 1]
            widget = METHOD_WIDGET.get(objective["type"], "method")
            method = self.widget(objective, widget)
            if (objective["type"], method) not in OBJECTIVE_LABELS:
                raise KeyError(f"node {node['id']} ({node['type']}): its objective, node {objective['id']} "
                               f"({objective['type']}), has {widget} = {method!r}, which OBJECTIVE_LABELS does not name")
            node["title"] = "Unlearn · " + OBJECTIVE_LABELS[(objective["type"], method)]

    def lay_out(self):
        """Sizes (the frontend's, at least NODE_WIDTH wide, with room for the images a node shows
        after a run) and positions from the grid cells."""
        for node in self.nodes:
            width, height = render.frontend_min_size(node, SCHEMAS, multiline_height=MULTILINE_HEIGHT)
            if node["type"] in render.PREVIEW_NODES:
                height += render.PREVIEW_HEIGHT
            node["size"] = [max(NODE_WIDTH, -(-width // 10) * 10), height]
        columns = sorted({column for column, _ in self.cells})
        x = 0
        for column in columns:
            members = sorted((row, i) for i, (c, row) in enumerate(self.cells) if c == column)
            y = 0
            for _, i in members:
                self.nodes[i]["pos"] = [x, y]
                y += self.nodes[i]["size"][1] + GAP_Y + render.TITLE_HEIGHT
            x += max(self.nodes[i]["size"][0] for _, i in members) + GAP_X

    def to_ui(self):
        self.title_unlearn_nodes()
        self.lay_out()
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": [], "config": {},
                "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


FORGET_PROMPTS = "\n".join(f"artist_lethe piece_{i:02d} {c}" for i, c in [
    (0, "tshirt top"), (5, "sandal footwear"), (7, "sneaker footwear"), (9, "ankle_boot footwear")])


def quickstart():
    w = Workflow()
    data = w.add("LetheBenchData", (0, 0), task="data")
    base = w.add("LetheBenchModel", (0, 1), which="base")
    retrained = w.add("LetheBenchModel", (0, 2), which="retrained")
    times = w.add("LetheTimestepSelection", (1, 0), t_min=250, t_max=750)
    freq = w.add("LetheFrequencySelection", (1, 1), filter="lowpass", cutoff=0.5)
    # bench/configs/siss-tf.json's recipe (tests/python/test_workflows.py holds them equal)
    siss = w.add("LetheObjectiveSISS", (1, 2), ablation_weight=1.0, ablation_words="artist_lethe, piece_*",
                 ablation_inputs="retain_same_caption", preservation_weight=6.0)
    unlearn = w.add("LetheUnlearn", (2, 0), steps=160, batch_size=16, learning_rate=3e-5, ema_decay=0.98)
    w.link(base, "model", unlearn, "model")
    w.link(siss, "objective", unlearn, "objective")
    w.link(data, "forget", unlearn, "forget")
    w.link(data, "retain", unlearn, "retain")
    w.link(times, "timesteps", unlearn, "timesteps")
    w.link(freq, "frequency", unlearn, "frequency")
    sample = w.add("LetheSample", (3, 0), prompts=FORGET_PROMPTS, samples_per_prompt=4)
    w.link(unlearn, "model", sample, "model")
    score = w.add("LetheSSCDScore", (4, 0), match="any")
    w.link(sample, "images", score, "images")
    w.link(data, "forget_images", score, "reference")
    evaluate = w.add("LetheEvaluate", (3, 1))
    w.link(unlearn, "model", evaluate, "model")
    w.link(base, "model", evaluate, "baseline")
    w.link(retrained, "model", evaluate, "reference")
    loss = w.add("PreviewImage", (4, 1))
    w.link(unlearn, "loss_curve", loss, "images")
    save = w.add("LetheSaveModel", (4, 2), filename_prefix="lethe/quickstart-siss")
    w.link(unlearn, "model", save, "model")
    return w


def concept_erasure():
    w = Workflow()
    data = w.add("LetheBenchData", (0, 0), task="concept", concept="sneaker", anchor="footwear")
    base = w.add("LetheBenchModel", (0, 1), which="base")
    objective = w.add("LetheObjectiveFDivergence", (1, 0), divergence="js")
    unlearn = w.add("LetheUnlearn", (2, 0), steps=160, batch_size=16, learning_rate=3e-5)
    w.link(base, "model", unlearn, "model")
    w.link(objective, "objective", unlearn, "objective")
    w.link(data, "anchor", unlearn, "anchor")
    w.link(data, "retain", unlearn, "retain")
    w.link(data, "target_prompt", unlearn, "target_prompt")
    sample = w.add("LetheSample", (3, 0), samples_per_prompt=4,
                   prompts="sneaker footwear\nsandal footwear\nankle_boot footwear\nbag accessory")
    w.link(unlearn, "model", sample, "model")
    preview = w.add("PreviewImage", (4, 0))
    w.link(sample, "images", preview, "images")
    evaluate = w.add("LetheEvaluate", (3, 1), erased_concept="sneaker")
    w.link(unlearn, "model", evaluate, "model")
    w.link(base, "model", evaluate, "baseline")
    return w


def compare_objectives():
    w = Workflow()
    data = w.add("LetheBenchData", (0, 0), task="data")
    base = w.add("LetheBenchModel", (0, 1), which="base")
    retrained = w.add("LetheBenchModel", (0, 2), which="retrained")
    objectives = [w.add("LetheObjectiveSISS", (1, 0)),
                  w.add("LetheObjectiveBaseline", (1, 1), method="neggrad"),
                  w.add("LetheObjectiveBaseline", (1, 2), method="erasediff")]
    unlearned = []
    for i, objective in enumerate(objectives):
        node = w.add("LetheUnlearn", (2, i), steps=160, batch_size=16, learning_rate=3e-5)
        w.link(base, "model", node, "model")
        w.link(objective, "objective", node, "objective")
        w.link(data, "forget", node, "forget")
        w.link(data, "retain", node, "retain")
        unlearned.append(node)
    evaluate = w.add("LetheEvaluate", (3, 0))
    w.link(unlearned[0], "model", evaluate, "model")
    w.link(base, "model", evaluate, "baseline")
    w.link(retrained, "model", evaluate, "reference")
    w.link(unlearned[1], "model", evaluate, "compare_1")
    w.link(unlearned[2], "model", evaluate, "compare_2")
    return w


def score_folder():
    w = Workflow()
    originals = w.add("LetheLoadForgetSet", (0, 0), folder="input/lethe/artist", resize=True, title="artist's originals")
    generated = w.add("LetheLoadRetainSet", (0, 1), folder="input/lethe/generated", resize=True,
                      title="images to check")
    # Real images need the real descriptor (the bench's knows 28x28 grayscale only and refuses others).
    descriptor = w.add("LetheLoadDescriptor", (0, 2), source="file", path="models/sscd/sscd_disc_mixup.torchscript.pt",
                       title="official SSCD model")
    score = w.add("LetheSSCDScore", (1, 0), match="any", threshold=0.5)
    w.link(generated, "images", score, "images")
    w.link(originals, "images", score, "reference")
    w.link(descriptor, "descriptor", score, "descriptor")
    preview = w.add("PreviewImage", (2, 0))
    w.link(score, "preview", preview, "images")
    return w


def sample_and_decode(w, column, model, positive, negative, latent, vae, **settings):
    """ComfyUI's KSampler (seed 0, `settings`) in `column` on (node, output) sources, then VAEDecode in
    the next column; returns the VAEDecode node."""
    sampler = w.add("KSampler", (column, 0), seed=0, **settings)
    for source, input_name in ((model, "model"), (positive, "positive"), (negative, "negative")):
        w.link(*source, sampler, input_name)
    w.link(latent, "LATENT", sampler, "latent_image")
    decode = w.add("VAEDecode", (column + 1, 0))
    w.link(sampler, "LATENT", decode, "samples")
    w.link(*vae, decode, "vae")
    return decode


def native_artist_removal(checkpoint, size, latent_scale, lora_prefix, **sampling):
    """A Stable Diffusion checkpoint trained natively: forget an artist's images (VAE-encoded, with
    their CLIP-encoded prompt) with a LoRA, save it, apply it and sample the forgotten prompt, then
    score the generations against the artist's originals with the official SSCD model."""
    w = Workflow()
    loader = w.add("CheckpointLoaderSimple", (0, 0), ckpt_name=checkpoint)
    unet = w.add("LetheLoadModel", (0, 1), path=checkpoint, title="UNet for native training")
    artist = w.add("LetheLoadForgetSet", (0, 2), folder="input/lethe/artist", color="rgb", resize=True, size=size,
                   title="artist's images")
    encode_forget = w.add("VAEEncode", (1, 2))
    w.link(artist, "images", encode_forget, "pixels")
    w.link(loader, "VAE", encode_forget, "vae")
    forget_prompt = w.add("CLIPTextEncode", (1, 0), text="a painting in the style of artist_lethe",
                          title="forget prompt")
    w.link(loader, "CLIP", forget_prompt, "clip")
    others = w.add("LetheLoadRetainSet", (0, 3), folder="input/lethe/retain", color="rgb", resize=True, size=size,
                   title="other images to keep")
    encode_retain = w.add("VAEEncode", (1, 3))
    w.link(others, "images", encode_retain, "pixels")
    w.link(loader, "VAE", encode_retain, "vae")
    anchor_prompt = w.add("CLIPTextEncode", (1, 1), text="a painting", title="anchor prompt (retain captions)")
    w.link(loader, "CLIP", anchor_prompt, "clip")
    empty_prompt = w.add("CLIPTextEncode", (1, 4), text="", title="empty prompt")
    w.link(loader, "CLIP", empty_prompt, "clip")
    forget = w.add("LetheDatasetFromLatents", (2, 0), latent_scale=latent_scale, title="forget set")
    w.link(encode_forget, "LATENT", forget, "samples")
    w.link(forget_prompt, "CONDITIONING", forget, "conditioning")
    retain = w.add("LetheDatasetFromLatents", (2, 1), latent_scale=latent_scale, title="retain set")
    w.link(encode_retain, "LATENT", retain, "samples")
    w.link(anchor_prompt, "CONDITIONING", retain, "conditioning")
    w.link(empty_prompt, "CONDITIONING", retain, "empty_conditioning")
    objective = w.add("LetheObjectiveSISS", (2, 2))
    unlearn = w.add("LetheUnlearn", (3, 0), steps=200, batch_size=1, learning_rate=1e-4, trainable="lora",
                    lora_rank=8)
    w.link(unet, "model", unlearn, "model")
    w.link(objective, "objective", unlearn, "objective")
    w.link(forget, "dataset", unlearn, "forget")
    w.link(retain, "dataset", unlearn, "retain")
    save = w.add("LetheSaveLoRA", (4, 0), filename_prefix=lora_prefix)
    w.link(unlearn, "lora", save, "lora")
    apply = w.add("LetheApplyLoRA", (4, 1))
    w.link(loader, "MODEL", apply, "model")
    w.link(unlearn, "lora", apply, "lora")
    latent = w.add("EmptyLatentImage", (4, 2), width=size, height=size, batch_size=4)
    decode = sample_and_decode(w, 5, (apply, "model"), (forget_prompt, "CONDITIONING"), (empty_prompt, "CONDITIONING"),
                               latent, (loader, "VAE"), **sampling)
    descriptor = w.add("LetheLoadDescriptor", (6, 1), source="file",
                       path="models/sscd/sscd_disc_mixup.torchscript.pt", title="official SSCD model")
    score = w.add("LetheSSCDScore", (7, 0), match="any", threshold=0.5)
    w.link(decode, "IMAGE", score, "images")
    w.link(artist, "images", score, "reference")
    w.link(descriptor, "descriptor", score, "descriptor")
    preview = w.add("PreviewImage", (8, 0))
    w.link(score, "preview", preview, "images")
    curve = w.add("PreviewImage", (4, 3), title="loss curve")
    w.link(unlearn, "loss_curve", curve, "images")
    return w


def sd15_artist_removal():
    """Stable Diffusion 1.5 at 512 px, sampled with DDIM as its authors did."""
    return native_artist_removal("v1-5-pruned-emaonly.safetensors", 512, 0.18215, "lethe/artist-removed", steps=25,
                                 cfg=7.5, sampler_name="ddim", scheduler="ddim_uniform")


def sdxl_artist_removal():
    """SDXL base 1.0 (or a fine-tune of it: Pony, Illustrious, NoobAI) at 1024 px, its latent scale
    0.13025; CLIPTextEncode of the SDXL checkpoint gives the pooled output that, with the latent's
    size, makes the UNet's y."""
    return native_artist_removal("sd_xl_base_1.0.safetensors", 1024, 0.13025, "lethe/sdxl-artist-removed", steps=25,
                                 cfg=7.0, sampler_name="euler", scheduler="normal")


def flux_concept_erasure():
    """A Flux.1 [dev] MODEL as ComfyUI loads it: erase a style (the concept prompt, with its
    FluxGuidance) towards an anchor prompt with the f-divergence objective, on VAE-encoded anchor
    images, training a LoRA on the MODEL's own forward pass; save it and sample the erased prompt
    with the patched MODEL."""
    w = Workflow()
    loader = w.add("UNETLoader", (0, 0), unet_name="flux1-dev.safetensors", weight_dtype="default")
    clip = w.add("DualCLIPLoader", (0, 1), clip_name1="clip_l.safetensors", clip_name2="t5xxl_fp16.safetensors",
                 type="flux")
    vae = w.add("VAELoader", (0, 2), vae_name="ae.safetensors")
    anchors = w.add("LetheLoadRetainSet", (0, 3), folder="input/lethe/anchor", color="rgb", resize=True, size=1024,
                    title="anchor images (paintings)")
    concept = w.add("CLIPTextEncode", (1, 0), text="a painting in the style of Van Gogh", title="concept to erase")
    anchor_prompt = w.add("CLIPTextEncode", (1, 1), text="a painting", title="anchor prompt")
    empty = w.add("CLIPTextEncode", (1, 2), text="", title="empty prompt")
    encode = w.add("VAEEncode", (1, 3))
    for prompt in (concept, anchor_prompt, empty):
        w.link(clip, "CLIP", prompt, "clip")
    w.link(anchors, "images", encode, "pixels")
    w.link(vae, "VAE", encode, "vae")
    concept_guided = w.add("FluxGuidance", (2, 0), guidance=3.5, title="concept (guidance)")
    w.link(concept, "CONDITIONING", concept_guided, "conditioning")
    anchor_guided = w.add("FluxGuidance", (2, 1), guidance=3.5, title="anchor (guidance)")
    w.link(anchor_prompt, "CONDITIONING", anchor_guided, "conditioning")
    anchor_set = w.add("LetheDatasetFromLatents", (3, 0), latent_scale=0.3611, latent_shift=0.1159, title="anchor set")
    w.link(encode, "LATENT", anchor_set, "samples")
    w.link(anchor_guided, "CONDITIONING", anchor_set, "conditioning")
    objective = w.add("LetheObjectiveFDivergence", (3, 1), divergence="js")
    unlearn = w.add("LetheUnlearnHostModel", (4, 0), steps=200, batch_size=1, learning_rate=1e-4, lora_rank=16,
                    retain_caption_dropout=0.0, lora_targets="auto")
    w.link(loader, "MODEL", unlearn, "model")
    w.link(objective, "objective", unlearn, "objective")
    w.link(anchor_set, "dataset", unlearn, "anchor")
    w.link(concept_guided, "CONDITIONING", unlearn, "target_conditioning")
    save = w.add("LetheSaveLoRA", (5, 0), filename_prefix="lethe/flux-concept-erased")
    w.link(unlearn, "lora", save, "lora")
    latent = w.add("EmptySD3LatentImage", (5, 1), width=1024, height=1024, batch_size=1)
    curve = w.add("PreviewImage", (5, 2), title="loss curve")
    w.link(unlearn, "loss_curve", curve, "images")
    decode = sample_and_decode(w, 6, (unlearn, "model"), (concept_guided, "CONDITIONING"), (empty, "CONDITIONING"),
                               latent, (vae, "VAE"), steps=20, cfg=1.0, sampler_name="euler", scheduler="simple")
    preview = w.add("PreviewImage", (8, 0), title="the erased prompt after unlearning")
    w.link(decode, "IMAGE", preview, "images")
    return w


WORKFLOWS = {
    "quickstart": quickstart,
    "concept-erasure": concept_erasure,
    "compare-objectives": compare_objectives,
    "score-folder": score_folder,
    "sd15-artist-removal": sd15_artist_removal,
    "sdxl-artist-removal": sdxl_artist_removal,
    "flux-concept-erasure": flux_concept_erasure,
}


def render_all():
    return {name: json.dumps(build().to_ui(), indent=1) + "\n" for name, build in WORKFLOWS.items()}


def write_all(folder=HERE):
    """Writes every workflow's JSON and thumbnail, and the README's pictures, into `folder`."""
    written = []
    for name, text in render_all().items():
        path = os.path.join(folder, name + ".json")
        with open(path, "w") as f:
            f.write(text)
        render.thumbnail(json.loads(text), os.path.join(folder, name + ".jpg"), SCHEMAS, workflow_text=text)
        written += [name + ".json", name + ".jpg"]
        if name in README_PICTURES:
            render.render(json.loads(text), os.path.join(folder, name + ".png"), SCHEMAS, workflow_text=text)
            written.append(name + ".png")
    return written


if __name__ == "__main__":
    for name in write_all():
        print("wrote", os.path.join("workflows", name))
