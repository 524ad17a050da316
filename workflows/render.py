"""Draws a ComfyUI UI-format workflow as a picture, laid out as the ComfyUI frontend lays it out:
each node at its saved `pos` with its saved `size` (the title bar above `pos`, as LiteGraph draws
it), input sockets on the left, outputs on the right, its widget values below the sockets, and
links as curves coloured by type. Two kinds of picture:

- the README's graph picture (PNG, full detail: socket names and widget values);
- the template browser's thumbnail (JPEG, square, titles only), which ComfyUI's frontend asks for
  as `<workflow name>.jpg` beside `<workflow name>.json` (see generate.py).

Each picture records a digest of what it was drawn from (`provenance`): tests compare it with the
committed workflow, so a stale picture fails a test without comparing pixels.

The shipped pictures are written by workflows/generate.py (with the schemas of ComfyUI's own
nodes too); this draws any workflow with Lethe's schemas:

    .venv/bin/python workflows/render.py my-workflow.json my-workflow.png
    .venv/bin/python workflows/render.py my-workflow.json my-workflow.jpg
"""
import hashlib
import json
import math
import os
import sys

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
TYPE_COLORS = {"IMAGE": (100, 181, 246), "MASK": (129, 199, 132), "LETHE_MODEL": (186, 104, 200),
               "LETHE_DATASET": (255, 183, 77), "LETHE_OBJECTIVE": (240, 98, 146), "LETHE_TIMESTEPS": (77, 208, 225),
               "LETHE_FREQUENCY": (174, 213, 129), "LETHE_DESCRIPTOR": (255, 138, 101), "STRING": (144, 164, 174),
               "FLOAT": (144, 164, 174), "LETHE_REPORT": (121, 134, 203), "MODEL": (178, 157, 255),
               "CLIP": (255, 214, 79), "VAE": (255, 97, 97), "LATENT": (255, 158, 207), "CONDITIONING": (255, 167, 38),
               "LETHE_LORA": (128, 203, 196)}
BACKGROUND = (32, 33, 36)

# LiteGraph's geometry, as the ComfyUI frontend has it (Comfy-Org/ComfyUI_frontend,
# src/lib/litegraph: LiteGraphGlobal NODE_TITLE_HEIGHT/NODE_SLOT_HEIGHT/NODE_WIDGET_HEIGHT/
# NODE_WIDTH/NODE_TEXT_SIZE, BaseWidget margin 15 + arrowMargin 6 + arrowWidth 10 and
# minValueWidth 42, and a DOM widget's (the multiline textarea's) fallback minimum height 50).
TITLE_HEIGHT, SLOT_HEIGHT, WIDGET_HEIGHT, NODE_WIDTH, TEXT_SIZE = 30, 20, 20, 140, 14
MULTILINE_MIN_HEIGHT = 50
WIDGET_PADDING = 42 + 2 * (15 + 6 + 10)
# Nodes whose run returns images for the UI (ComfyUI's PreviewImage and SaveImage; Lethe's SSCD
# score and evaluation, native context.previews): when they arrive the frontend grows the node to
# the images' top + 220 px (setSizeForImage), so a layout leaves that room below their widgets.
PREVIEW_NODES, PREVIEW_HEIGHT = ("PreviewImage", "SaveImage", "LetheSSCDScore", "LetheEvaluate"), 220
THUMBNAIL_SIDE = 512  # the template card shows it at 256x256 CSS px (object-cover); 2x for HiDPI screens


def lethe_schemas():
    from python_bridge import _lethe

    return json.loads(_lethe.node_schemas_json(True))


def widget_rows(node, schemas):
    """(name, value, multiline) for each entry of the node's widgets_values, named by the one rule
    in native/graph/node_registry.hpp (a seed's control value is its own widget,
    control_after_generate); a node type not in `schemas` gets (None, value, False)."""
    from python_bridge import _lethe

    values = node.get("widgets_values", [])
    schema = schemas.get(node["type"])
    if schema is None:
        return [(None, value, False) for value in values]
    layout = json.loads(_lethe.widgets_values_layout(json.dumps(schema)))
    rows = []
    for name, value in zip(layout, values):
        if name is None:
            rows.append(("control_after_generate", value, False))
            continue
        spec = schema["input"]["required"].get(name) or schema["input"]["optional"].get(name)
        rows.append((name, value, spec[0] == "STRING" and bool(spec[1].get("multiline"))))
    return rows


def node_title(node, schemas):
    """What the frontend's title bar shows: the saved title, else the node type's display name."""
    return node.get("title") or schemas.get(node["type"], {}).get("display_name") or node["type"]


def sockets(node):
    """Inputs drawn as sockets (a frontend that saves widget inputs marks them with "widget")."""
    return [slot for slot in node.get("inputs", []) if "widget" not in slot]


def frontend_min_size(node, schemas, multiline_height=MULTILINE_MIN_HEIGHT):
    """[width, height] of the node's body as LGraphNode.computeSize() gives it, which is what the
    frontend grows a loaded node to when its saved size is smaller: one 20 px row per socket
    (inputs and outputs side by side, at least one row), then each widget 20 px + 4 (a multiline
    textarea: `multiline_height` + 4) and 8 below them, then a 6 px margin; the 30 px title bar is
    above `pos` and not part of it. Width: the widest of the title (30 + text + 9.9), the socket
    names (input + output + 40, + 5 when both sides have one), the widget names (+ 104) and
    NODE_WIDTH (x 1.5 with widgets); text is 0.6 x 14 px per character, LiteGraph's own estimate."""
    rows = widget_rows(node, schemas)

    def text(s):
        return TEXT_SIZE * 0.6 * len(s)

    inputs = max((text(s["name"]) for s in sockets(node)), default=0)
    outputs = max((text(s["name"]) for s in node.get("outputs", [])), default=0)
    slots_width = inputs + outputs + 2 * SLOT_HEIGHT + (5 if inputs and outputs else 0)
    named = [text(name) for name, _, _ in rows if name and name != "control_after_generate"]
    widgets_width = max(named) + WIDGET_PADDING if named else 0
    title_width = TITLE_HEIGHT + text(node_title(node, schemas)) + TITLE_HEIGHT * 0.33
    width = max(slots_width, widgets_width, title_width, NODE_WIDTH * (1.5 if rows else 1))
    height = SLOT_HEIGHT * max(1, len(sockets(node)), len(node.get("outputs", [])))
    if rows:
        height += sum((multiline_height if multiline else WIDGET_HEIGHT) + 4 for _, _, multiline in rows) + 8
    return [math.ceil(width), height + 6]


def provenance(workflow_text, schemas=None):
    """The digest a picture records: sha256 of this file's source, the workflow's JSON text and
    the labels the picture takes from the node schemas (titles, widget names), so that a change
    of any of them makes every picture drawn before it stale. A digest rather than a pixel
    comparison with a fresh render: the pixels depend on FreeType, Pillow and libjpeg versions
    and on the fonts installed, the digest only on what the picture shows."""
    schemas = lethe_schemas() if schemas is None else schemas
    workflow = json.loads(workflow_text)
    labels = [[node_title(node, schemas), [name for name, _, _ in widget_rows(node, schemas)]]
              for node in workflow["nodes"]]
    digest = hashlib.sha256()
    with open(os.path.abspath(__file__), "rb") as f:
        digest.update(f.read())
    for part in (workflow_text, json.dumps(labels, sort_keys=True)):
        digest.update(b"\0" + part.encode())
    return "lethe-render sha256:" + digest.hexdigest()


def draw(workflow, schemas, detail=True, link_width=3):
    """The workflow as an RGB image at canvas scale (1 px per canvas unit)."""
    font, bold = ImageFont.truetype(FONT, 12), ImageFont.truetype(BOLD, 13)
    boxes = {}
    for node in workflow["nodes"]:
        size = node.get("size") or frontend_min_size(node, schemas)
        boxes[node["id"]] = (node["pos"][0], node["pos"][1], size[0], size[1])
    min_x = min(b[0] for b in boxes.values()) - 40
    min_y = min(b[1] for b in boxes.values()) - TITLE_HEIGHT - 40
    width = int(max(b[0] + b[2] for b in boxes.values()) - min_x + 40)
    height = int(max(b[1] + b[3] for b in boxes.values()) - min_y + 40)
    image = Image.new("RGB", (width, height), BACKGROUND)
    canvas = ImageDraw.Draw(image)
    by_id = {node["id"]: node for node in workflow["nodes"]}

    def socket(node_id, side, slot):  # LGraphNode.getConnectionPos: (slot + 0.7) rows below pos
        x, y, w, _ = boxes[node_id]
        return (x - min_x + (w if side == "out" else 0), y - min_y + (slot + 0.7) * SLOT_HEIGHT)

    for link in workflow["links"]:
        _, src, src_slot, dst, dst_slot, kind = link[:6]
        dst_sockets = sockets(by_id[dst])
        to_slot = next((i for i, s in enumerate(dst_sockets) if s.get("link") == link[0]), dst_slot)
        (x0, y0), (x1, y1) = socket(src, "out", src_slot), socket(dst, "in", to_slot)
        points = []
        for i in range(41):  # a cubic Bezier like the frontend's splines
            t = i / 40
            cx0, cx1 = x0 + 80, x1 - 80
            bx = (1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * cx0 + 3 * (1 - t) * t ** 2 * cx1 + t ** 3 * x1
            by = (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * y0 + 3 * (1 - t) * t ** 2 * y1 + t ** 3 * y1
            points.append((bx, by))
        canvas.line(points, fill=TYPE_COLORS.get(kind, (200, 200, 200)), width=link_width)
    for node in workflow["nodes"]:
        x, y, w, h = boxes[node["id"]]
        x, y = x - min_x, y - min_y
        canvas.rounded_rectangle((x, y - TITLE_HEIGHT, x + w, y + h), radius=8, fill=(53, 53, 56), outline=(90, 90, 95))
        canvas.rounded_rectangle((x, y - TITLE_HEIGHT, x + w, y), radius=8, fill=(70, 70, 76))
        title = node_title(node, schemas)
        if detail:
            canvas.text((x + 10, y - TITLE_HEIGHT + 8), f"#{node['id']} {title}", font=bold, fill=(235, 235, 235))
        else:  # the thumbnail is scaled down about 4x: titles as large as fit in the bar
            size = 26
            while size > 12 and canvas.textlength(title, font=ImageFont.truetype(BOLD, size)) > w - 16:
                size -= 1
            canvas.text((x + 8, y - TITLE_HEIGHT + 1), title, font=ImageFont.truetype(BOLD, size), fill=(235, 235, 235))
        for i, slot in enumerate(sockets(node)):
            sx, sy = socket(node["id"], "in", i)
            canvas.ellipse((sx - 5, sy - 5, sx + 5, sy + 5), fill=TYPE_COLORS.get(slot["type"], (200, 200, 200)))
            if detail:
                canvas.text((sx + 10, sy - 8), slot["name"], font=font, fill=(210, 210, 210))
        for i, slot in enumerate(node.get("outputs", [])):
            sx, sy = socket(node["id"], "out", i)
            canvas.ellipse((sx - 5, sy - 5, sx + 5, sy + 5), fill=TYPE_COLORS.get(slot["type"], (200, 200, 200)))
            if detail:
                label = slot["name"]
                canvas.text((sx - 10 - canvas.textlength(label, font=font), sy - 8), label, font=font, fill=(210, 210, 210))
        rows = widget_rows(node, schemas)
        multiline_count = sum(1 for _, _, multiline in rows if multiline)
        spare = max(0, h - frontend_min_size(node, schemas)[1])
        if node["type"] in PREVIEW_NODES:  # the images' place
            canvas.rounded_rectangle((x + 10, y + h - spare + 2, x + w - 10, y + h - 8), radius=6, fill=(44, 44, 47))
            spare = 0
        # the frontend gives a node's spare height to its DOM widgets (the textareas)
        spare = spare // multiline_count if multiline_count else 0
        wy = y + SLOT_HEIGHT * max(1, len(sockets(node)), len(node.get("outputs", []))) + 4
        for name, value, multiline in rows:
            box_height = MULTILINE_MIN_HEIGHT + spare if multiline else WIDGET_HEIGHT
            canvas.rounded_rectangle((x + 10, wy, x + w - 10, wy + box_height), radius=6, fill=(34, 34, 36))
            if detail:
                lines = str(value).split("\n") if multiline else [f"{name}: {value}" if name else str(value)]
                for k, text in enumerate(lines[: max(1, (box_height - 4) // 16)]):
                    if len(text) > 44:
                        text = text[:41] + "..."
                    canvas.text((x + 16, wy + 3 + 16 * k), text, font=font, fill=(190, 190, 190))
            wy += box_height + 4
    return image


def render(workflow, path, schemas=None, workflow_text=None):
    """The README's picture: full detail, PNG, with its provenance in a tEXt chunk."""
    schemas = lethe_schemas() if schemas is None else schemas
    info = PngImagePlugin.PngInfo()
    info.add_text("lethe-provenance", provenance(workflow_text or json.dumps(workflow), schemas))
    draw(workflow, schemas).save(path, "PNG", pnginfo=info)


def thumbnail(workflow, path, schemas=None, workflow_text=None, side=THUMBNAIL_SIDE):
    """The template browser's thumbnail: the whole graph, titles only, fitted into a side x side
    square (the card crops to a square, so a letterbox keeps every node in view), as JPEG with
    its provenance in the JPEG comment."""
    schemas = lethe_schemas() if schemas is None else schemas
    picture = draw(workflow, schemas, detail=False, link_width=7)
    scale = (side - 16) / max(picture.size)
    picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                             Image.LANCZOS)
    square = Image.new("RGB", (side, side), BACKGROUND)
    square.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
    comment = provenance(workflow_text or json.dumps(workflow), schemas)
    square.save(path, "JPEG", quality=88, optimize=True, comment=comment.encode())


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[2].endswith((".png", ".jpg")):
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        text = f.read()
    (render if sys.argv[2].endswith(".png") else thumbnail)(json.loads(text), sys.argv[2], workflow_text=text)
    print("wrote", sys.argv[2])
