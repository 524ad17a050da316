"""The frontend's UI→API conversion and the server's validation and execution, reduced to
what docs/comfyui-contract.md §3 describes (ComfyUI @ a125cd84, frontend executionUtil.ts:graphToPrompt)."""
import threading

import torch

import comfy.model_management
import comfy.utils
import nodes

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


class ValidationError(Exception):
    def __init__(self, node_id, class_type, kind, input_name, message):
        super().__init__(f"node {node_id} ({class_type}) {kind} on input '{input_name}': {message}")
        self.node_id, self.class_type, self.kind, self.input_name = node_id, class_type, kind, input_name


def _is_widget(spec):
    kind = spec[0]
    options = spec[1] if len(spec) > 1 else {}
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput", False)


def _has_control(name, spec):
    """The frontend adds a seed-control widget (one extra widgets_values entry) after an INT named
    seed/noise_seed unless control_after_generate is False, or after any with it True."""
    if spec[0] != "INT":
        return False
    options = spec[1] if len(spec) > 1 else {}
    if "control_after_generate" in options:
        return bool(options["control_after_generate"])
    return name in ("seed", "noise_seed")


def graph_to_prompt(workflow):
    """UI workflow (version 0.4 or 1) → API prompt, by the frontend's rules."""
    links = {}
    for link in workflow["links"]:
        if isinstance(link, dict):
            links[link["id"]] = (link["origin_id"], link["origin_slot"])
        else:
            links[link[0]] = (link[1], link[2])
    present = {node["id"] for node in workflow["nodes"] if node.get("mode", 0) == 0}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) != 0:
            continue
        types = nodes.NODE_CLASS_MAPPINGS[node["type"]].INPUT_TYPES()
        declared = list(types.get("required", {}).items()) + list(types.get("optional", {}).items())
        values = list(node.get("widgets_values", []))
        inputs, position = {}, 0
        for name, spec in declared:
            if not _is_widget(spec):
                continue
            if position < len(values):
                inputs[name] = values[position]
            position += 1
            if _has_control(name, spec):
                position += 1  # the control value: serialize=false
        for slot in node.get("inputs", []):
            if slot.get("link") is not None and slot["link"] in links:
                origin, origin_slot = links[slot["link"]]
                if origin in present:
                    inputs[slot["name"]] = [str(origin), origin_slot]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def validate(prompt):
    """Server-side validation: known classes, required inputs, link types, min/max, combos."""
    for node_id, node in prompt.items():
        class_type = node["class_type"]
        if class_type not in nodes.NODE_CLASS_MAPPINGS:
            raise ValidationError(node_id, class_type, "invalid_prompt", "", f"unknown node type {class_type}")
        types = nodes.NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()
        for group in ("required", "optional"):
            for name, spec in types.get(group, {}).items():
                value = node["inputs"].get(name)
                if value is None:
                    if group == "required":
                        raise ValidationError(node_id, class_type, "required_input_missing", name, "missing")
                    continue
                if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                    source = prompt.get(value[0])
                    if source is None:
                        raise ValidationError(node_id, class_type, "bad_linked_input", name, f"no node {value[0]}")
                    got = nodes.NODE_CLASS_MAPPINGS[source["class_type"]].RETURN_TYPES[value[1]]
                    wanted = spec[0]
                    if not isinstance(wanted, list) and wanted != "*" and got != wanted:
                        raise ValidationError(node_id, class_type, "return_type_mismatch", name, f"{got} != {wanted}")
                    continue
                options = spec[1] if len(spec) > 1 else {}
                if isinstance(spec[0], list):
                    if value not in spec[0]:
                        raise ValidationError(node_id, class_type, "value_not_in_list", name, repr(value))
                    continue
                if spec[0] in ("INT", "FLOAT"):
                    value = int(value) if spec[0] == "INT" else float(value)
                    if "min" in options and value < options["min"]:
                        raise ValidationError(node_id, class_type, "value_smaller_than_min", name, repr(value))
                    if "max" in options and value > options["max"]:
                        raise ValidationError(node_id, class_type, "value_bigger_than_max", name, repr(value))
                    node["inputs"][name] = value


def _order(prompt):
    """Ancestors of output nodes, dependencies first; a cycle is an error."""
    wanted, order, state = [], [], {}
    for node_id, node in prompt.items():
        if getattr(nodes.NODE_CLASS_MAPPINGS[node["class_type"]], "OUTPUT_NODE", False):
            wanted.append(node_id)

    def visit(node_id):
        if state.get(node_id) == "done":
            return
        if state.get(node_id) == "visiting":
            raise ValidationError(node_id, prompt[node_id]["class_type"], "invalid_prompt", "", "cycle")
        state[node_id] = "visiting"
        for value in prompt[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                visit(value[0])
        state[node_id] = "done"
        order.append(node_id)

    for node_id in wanted:
        visit(node_id)
    return order


class Execution:
    """What one prompt produced: per-node outputs and ui dicts, progress events, errors."""

    def __init__(self):
        self.outputs, self.ui, self.progress, self.error = {}, {}, [], None
        self.grad_mode_seen = None


def execute(prompt, on_progress=None):
    """Runs a validated prompt as PromptExecutor does: on a worker thread, inside
    torch.inference_mode(), one node instance per id, the progress hook raising interrupts."""
    validate(prompt)
    order = _order(prompt)
    result = Execution()

    def hook(value, total, preview, node_id=None):
        result.progress.append((node_id, value, total))
        if on_progress is not None:
            on_progress(node_id, value, total)
        comfy.model_management.throw_exception_if_processing_interrupted()

    def worker():
        comfy.utils.set_progress_bar_global_hook(hook)
        try:
            with torch.inference_mode():
                result.grad_mode_seen = torch.is_inference_mode_enabled()
                for node_id in order:
                    node = prompt[node_id]
                    node_class = nodes.NODE_CLASS_MAPPINGS[node["class_type"]]
                    kwargs = {}
                    for name, value in node["inputs"].items():
                        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                            kwargs[name] = result.outputs[value[0]][value[1]]
                        else:
                            kwargs[name] = value
                    hidden = node_class.INPUT_TYPES().get("hidden", {})
                    if "unique_id" in hidden:
                        kwargs["unique_id"] = node_id
                    comfy.model_management.throw_exception_if_processing_interrupted()
                    output = getattr(node_class(), node_class.FUNCTION)(**kwargs)
                    if isinstance(output, dict):
                        result.ui[node_id] = output.get("ui")
                        output = output.get("result", ())
                    result.outputs[node_id] = tuple(output)
        except BaseException as error:  # noqa: BLE001 (reported to the caller, like execution_error)
            result.error = error
        finally:
            comfy.utils.set_progress_bar_global_hook(None)

    thread = threading.Thread(target=worker, name="prompt_worker", daemon=True)
    thread.start()
    thread.join()
    return result
