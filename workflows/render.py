"""Draws a ComfyUI UI-format workflow as a PNG (the README's graph pictures): each node as a
box at its saved position with its title, input sockets on the left, outputs on the right
and its widget values, links as curves coloured by type.

    .venv/bin/python workflows/render.py workflows/quickstart.json workflows/quickstart.png
"""
import json
import os
import sys

from PIL import Image, ImageDraw, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
TYPE_COLORS = {"IMAGE": (100, 181, 246), "MASK": (129, 199, 132), "LETHE_MODEL": (186, 104, 200),
               "LETHE_DATASET": (255, 183, 77), "LETHE_OBJECTIVE": (240, 98, 146), "LETHE_TIMESTEPS": (77, 208, 225),
               "LETHE_FREQUENCY": (174, 213, 129), "LETHE_DESCRIPTOR": (255, 138, 101), "STRING": (144, 164, 174),
               "FLOAT": (144, 164, 174), "LETHE_REPORT": (121, 134, 203)}
ROW, TITLE, WIDTH, SCALE = 18, 26, 300, 1.0


def widget_names(kind):
    """Widget names of a node type in widgets_values order (seed-control slots as None), by the
    one rule in native/graph/node_registry.hpp."""
    from python_bridge import _lethe

    schemas = json.loads(_lethe.node_schemas_json(True))
    if kind not in schemas:
        return []
    return json.loads(_lethe.widgets_values_layout(json.dumps(schemas[kind])))


def render(workflow, path):
    font, bold = ImageFont.truetype(FONT, 12), ImageFont.truetype(BOLD, 13)
    boxes = {}
    for node in workflow["nodes"]:
        names = widget_names(node["type"])
        widgets = [(n, v) for n, v in zip(names, node.get("widgets_values", [])) if n is not None]
        rows = max(len(node.get("inputs", [])), len(node.get("outputs", []))) + len(widgets)
        x, y = node["pos"]
        boxes[node["id"]] = (x, y, WIDTH, TITLE + ROW * rows + 8, widgets)
    min_x = min(b[0] for b in boxes.values()) - 40
    min_y = min(b[1] for b in boxes.values()) - 40
    width = int(max(b[0] + b[2] for b in boxes.values()) - min_x + 40)
    height = int(max(b[1] + b[3] for b in boxes.values()) - min_y + 40)
    image = Image.new("RGB", (width, height), (32, 33, 36))
    draw = ImageDraw.Draw(image)

    def socket(node_id, side, slot):
        x, y, w, _, _ = boxes[node_id]
        return (x - min_x + (w if side == "out" else 0), y - min_y + TITLE + ROW * slot + ROW / 2)

    for link in workflow["links"]:
        _, src, src_slot, dst, dst_slot, kind = link[:6]
        (x0, y0), (x1, y1) = socket(src, "out", src_slot), socket(dst, "in", dst_slot)
        color = TYPE_COLORS.get(kind, (200, 200, 200))
        points = []
        for i in range(41):  # a cubic Bezier like the frontend's splines
            t = i / 40
            cx0, cx1 = x0 + 80, x1 - 80
            bx = (1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * cx0 + 3 * (1 - t) * t ** 2 * cx1 + t ** 3 * x1
            by = (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * y0 + 3 * (1 - t) * t ** 2 * y1 + t ** 3 * y1
            points.append((bx, by))
        draw.line(points, fill=color, width=3)
    for node in workflow["nodes"]:
        x, y, w, h, widgets = boxes[node["id"]]
        x, y = x - min_x, y - min_y
        draw.rounded_rectangle((x, y, x + w, y + h), radius=8, fill=(53, 53, 56), outline=(90, 90, 95))
        draw.rounded_rectangle((x, y, x + w, y + TITLE), radius=8, fill=(70, 70, 76))
        draw.text((x + 10, y + 6), f"#{node['id']} {node.get('title', node['type'])}", font=bold, fill=(235, 235, 235))
        for i, slot in enumerate(node.get("inputs", [])):
            sx, sy = socket(node["id"], "in", i)
            draw.ellipse((sx - 5, sy - 5, sx + 5, sy + 5), fill=TYPE_COLORS.get(slot["type"], (200, 200, 200)))
            draw.text((sx + 10, sy - 8), slot["name"], font=font, fill=(210, 210, 210))
        for i, slot in enumerate(node.get("outputs", [])):
            sx, sy = socket(node["id"], "out", i)
            draw.ellipse((sx - 5, sy - 5, sx + 5, sy + 5), fill=TYPE_COLORS.get(slot["type"], (200, 200, 200)))
            label = slot["name"]
            draw.text((sx - 10 - draw.textlength(label, font=font), sy - 8), label, font=font, fill=(210, 210, 210))
        first = max(len(node.get("inputs", [])), len(node.get("outputs", [])))
        for j, (name, value) in enumerate(widgets):
            text = f"{name}: {value}".replace("\n", " / ")
            if len(text) > 44:
                text = text[:41] + "..."
            wy = y + TITLE + ROW * (first + j) + 2
            draw.rounded_rectangle((x + 8, wy, x + w - 8, wy + ROW - 3), radius=6, fill=(34, 34, 36))
            draw.text((x + 14, wy + 1), text, font=font, fill=(190, 190, 190))
    image.save(path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        render(json.load(f), sys.argv[2])
    print("wrote", sys.argv[2])
