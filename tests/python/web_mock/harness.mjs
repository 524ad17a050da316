// Loads frontend extensions the way the ComfyUI frontend (1.27.10) does, into a stand-in of its
// node graph, and plays one node's life: registered from its /object_info definition, created,
// executed once per message (app.ts's "executed" handler calls node.onExecuted(output)), saved and reloaded.
// The rules copied here are the frontend's: LGraphNode.serialize()/configure() for a
// workflow's widgets_values and executionUtil.ts:graphToPrompt for the queued prompt.
//
// node harness.mjs <case.json>; the case names the web root (scripts/ + extensions/), the
// extension files, the node definitions and the executed messages; prints one JSON object.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { app } = await import(pathToFileURL(path.join(spec.root, "scripts", "app.js")).href);
for (const file of spec.extensions) await import(pathToFileURL(file).href);

class LGraphNode {
  constructor(title) {
    this.title = title;
    this.widgets = [];
    this.size = [200, 60];
    this.serialize_widgets = true;
  }

  addWidget(type, name, value, callback, options = {}) {
    const widget = { type, name, value, callback, options };
    this.widgets.push(widget);
    return widget;
  }

  addDOMWidget(name, type, element, options = {}) {  // DOMWidgetImpl: its height from options.getMinHeight, else 50
    const widget = {
      type, name, element, options,
      get value() { return options.getValue?.(); },
      set value(v) { options.setValue?.(v); },
      computeLayoutSize: () => ({ minHeight: options.getMinHeight?.() ?? 50, minWidth: 0 }),
    };
    this.widgets.push(widget);
    return widget;
  }

  computeSize() {  // LGraphNode.computeSize without slots and title: widget heights + 4 each, + 8, + 6
    let height = 0;
    for (const widget of this.widgets) height += (widget.computeLayoutSize?.(this).minHeight ?? 20) + 4;
    return [200, height + 8 + 6];
  }

  setSize(size) { this.size = [size[0], size[1]]; }
  setDirtyCanvas() {}

  serialize() {  // LGraphNode.serialize: by the widget's own index, skipping serialize === false
    const o = { type: this.type };
    if (this.widgets && this.serialize_widgets) {
      o.widgets_values = [];
      for (const [i, widget] of this.widgets.entries()) {
        if (widget.serialize === false) continue;
        o.widgets_values[i] = widget ? widget.value : null;
      }
    }
    return JSON.parse(JSON.stringify(o));
  }

  configure(info) {  // LGraphNode.configure: values go to the widgets with serialize !== false, in order
    if (info.widgets_values) {
      const widgetsWithValue = this.widgets.filter((w) => w.serialize !== false);
      for (let i = 0; i < info.widgets_values.length; ++i) {
        if (widgetsWithValue[i]) widgetsWithValue[i].value = info.widgets_values[i];
      }
    }
    this.onConfigure?.(info);
  }
}

function promptInputs(node) {  // graphToPrompt: every named widget but options.serialize === false
  const inputs = {};
  for (const widget of node.widgets) {
    if (!widget.name || widget.options?.serialize === false) continue;
    inputs[widget.name] = widget.value;
  }
  return JSON.parse(JSON.stringify(inputs));
}

async function registerNodeDef(nodeData) {  // app.registerNodeDef: widgets in input order, then the extensions
  class ComfyNode extends LGraphNode {
    constructor() {
      super(nodeData.display_name);
      this.type = nodeData.name;
      for (const group of ["required", "optional"]) {
        for (const name of nodeData.input_order?.[group] ?? []) {
          const [type, options = {}] = nodeData.input[group][name];
          if (Array.isArray(type)) this.addWidget("combo", name, options.default ?? type[0], () => {}, { values: type });
          else if (["INT", "FLOAT", "STRING", "BOOLEAN"].includes(type) && !options.forceInput) {
            this.addWidget(type.toLowerCase(), name, options.default, () => {}, {});
            if (type === "INT" && options.control_after_generate) {
              this.addWidget("combo", "control_after_generate", "fixed", () => {}, { serialize: false });
            }
          }
        }
      }
      this.onNodeCreated?.();
      this.setSize(this.computeSize());
    }
  }
  for (const extension of app.extensions) {
    if ("beforeRegisterNodeDef" in extension) await extension.beforeRegisterNodeDef(ComfyNode, nodeData, app);
  }
  return ComfyNode;
}

function shown(node, made) {  // what the extension added to the node, as the user sees it
  return node.widgets.slice(made).map((w) => ({ value: w.value, readOnly: w.inputEl?.readOnly ?? null }));
}

const report = { extensions: app.extensions.map((e) => e.name), nodes: {} };
for (const nodeData of spec.definitions) {
  const NodeType = await registerNodeDef(nodeData);
  const node = new NodeType();
  const made = node.widgets.length;
  const life = { saved_before: node.serialize(), prompt_before: promptInputs(node), size_before: node.size, runs: [] };
  for (const message of spec.messages) {
    node.onExecuted?.(message);
    life.runs.push({ shown: shown(node, made), saved: node.serialize(), prompt: promptInputs(node), size: node.size });
  }
  const reloaded = new NodeType();
  reloaded.configure(life.runs.at(-1).saved);
  life.reloaded = { shown: shown(reloaded, made), saved: reloaded.serialize() };
  report.nodes[nodeData.name] = life;
}
console.log(JSON.stringify(report));
