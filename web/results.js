// Lethe's results on the node: after a Lethe node runs, its text results (the `ui.text` lines
// its Python side returns, e.g. "memorization rate 0.67 at threshold 0.5") appear in a
// read-only box at the bottom of the node. The contract is docs/comfyui-contract.md §9.
//
// ComfyUI serves this file as /extensions/<pack folder>/results.js (WEB_DIRECTORY = "./web"
// in the pack's __init__.py), hence the imports two folders up.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const RESULTS = "lethe_results";

/** Lethe's nodes are those in its categories: "Lethe/<group>", or "Lethe" (the build-required node). */
function isLetheNode(nodeData) {
  const category = nodeData?.category;
  return typeof category === "string" && (category === "Lethe" || category.startsWith("Lethe/"));
}

/** The lines of an `executed` message's output: its `text` list of strings, or none. */
function resultLines(message) {
  const text = message?.text;
  if (text === undefined || text === null) return [];
  if (!Array.isArray(text) || !text.every((line) => typeof line === "string")) {
    console.warn(`[lethe] results: expected ui.text to be a list of strings, got ${JSON.stringify(text)}`);
    return [];
  }
  return text;
}

function resultsWidget(node) {
  const existing = node.widgets?.find((widget) => widget.name === RESULTS);
  if (existing) return existing;
  const { widget } = ComfyWidgets.STRING(node, RESULTS, ["STRING", { multiline: true }], app);
  // Results are output, not settings: widget.serialize = false keeps the box out of the
  // workflow's widgets_values (which map to widgets by position), options.serialize = false
  // keeps it out of the prompt queued to the server. It is made last, so no widget shifts.
  widget.serialize = false;
  widget.options.serialize = false;
  widget.options.read_only = true;
  widget.label = "results";
  if (widget.inputEl) widget.inputEl.readOnly = true;
  widget.options.getMinHeight = () => textHeight(widget);  // the frontend's layout grows the node to it
  return widget;
}

/** The box's height for its text: rows of the textarea's (monospace) font, long lines wrapped. */
function textHeight(widget) {
  const element = widget.inputEl;
  const font = parseFloat(element && globalThis.getComputedStyle?.(element).fontSize) || 10;
  const perRow = Math.max(20, Math.floor((element?.clientWidth || 300) / (0.6 * font)));
  const rows = String(widget.value).split("\n").reduce((n, line) => n + Math.max(1, Math.ceil(line.length / perRow)), 0);
  return Math.max(50, Math.ceil(rows * 1.25 * font) + 8);
}

/** Shows `lines` on `node`, replacing what an earlier run showed. */
function showResults(node, lines) {
  const shown = node.widgets?.some((widget) => widget.name === RESULTS);
  if (lines.length === 0 && !shown) return;
  resultsWidget(node).value = lines.join("\n");
  const [width, height] = node.computeSize();
  node.setSize([Math.max(width, node.size[0]), Math.max(height, node.size[1])]);
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "Lethe.Results",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!isLetheNode(nodeData)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      showResults(this, resultLines(message));
    };
  },
});
