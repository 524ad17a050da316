// Stand-in for the ComfyUI frontend's scripts/widgets.js module (the names 1.27.10 exports).
// ComfyWidgets.STRING with multiline is its addMultilineWidget: a textarea DOM widget whose
// value is the textarea's, with minNodeSize [400, 200].
export const IS_CONTROL_WIDGET = Symbol("IS_CONTROL_WIDGET");
export function updateControlWidgetLabel() {}
export function addValueControlWidget() {}
export function addValueControlWidgets() {}

function stringWidget(node, name, inputData) {
  const [type, options = {}] = inputData;
  if (type !== "STRING") throw new Error(`Invalid input data: ${JSON.stringify(inputData)}`);
  let widget;
  if (options.multiline) {
    const inputEl = { value: options.default ?? "", readOnly: false, className: "comfy-multiline-input" };
    widget = node.addDOMWidget(name, "customtext", inputEl, {
      getValue: () => inputEl.value,
      setValue: (value) => { inputEl.value = value; },
    });
    widget.inputEl = inputEl;
    widget.options.minNodeSize = [400, 200];
  } else {
    widget = node.addWidget("text", name, options.default ?? "", () => {}, {});
  }
  return { widget, minWidth: widget.options.minNodeSize?.[0], minHeight: widget.options.minNodeSize?.[1] };
}

export const ComfyWidgets = { STRING: stringWidget };
