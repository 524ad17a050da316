"""The frontend's UI→API conversion and the server's validation and execution, reduced to
what docs/comfyui-contract.md §3 describes (ComfyUI @ a125cd84, frontend executionUtil.ts:graphToPrompt)."""
import itertools
import logging
import threading
from collections.abc import Mapping, Sequence

import torch

import comfy.model_management
import comfy.utils
import nodes

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


class ValidationError(Exception):
    def __init__(self, node_id, class_type, kind, input_name, message):
        where = f"node {node_id} ({class_type}) {kind} on input '{input_name}'" if node_id is not None else kind
        super().__init__(f"{where}: {message}")
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


def _is_link(value):
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def validate(prompt):
    """execution.py:validate_prompt and validate_inputs: known classes, at least one output node
    ("Prompt has no outputs"), required inputs, link types, widget values coerced as the server
    does (int(), float(), str(), bool(): a BOOLEAN "false" string is True), min/max, combos."""
    outputs = []
    for node_id, node in prompt.items():
        class_type = node["class_type"]
        if class_type not in nodes.NODE_CLASS_MAPPINGS:
            raise ValidationError(node_id, class_type, "invalid_prompt", "", f"unknown node type {class_type}")
        if getattr(nodes.NODE_CLASS_MAPPINGS[class_type], "OUTPUT_NODE", False) is True:
            outputs.append(node_id)
    if not outputs:
        raise ValidationError(None, None, "prompt_no_outputs", None, "Prompt has no outputs")
    for node_id, node in prompt.items():
        class_type = node["class_type"]
        types = nodes.NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()
        for group in ("required", "optional"):
            for name, spec in types.get(group, {}).items():
                value = node["inputs"].get(name)
                if value is None:
                    if group == "required":
                        raise ValidationError(node_id, class_type, "required_input_missing", name, "missing")
                    continue
                if _is_link(value):
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
                convert = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}.get(spec[0])
                if convert is not None:
                    try:
                        value = convert(value)
                    except Exception as error:  # noqa: BLE001 (as the real code)
                        raise ValidationError(node_id, class_type, "invalid_input_type", name,
                                              f"Failed to convert an input value to a {spec[0]} value: {error}") from None
                    node["inputs"][name] = value
                if "min" in options and value < options["min"]:
                    raise ValidationError(node_id, class_type, "value_smaller_than_min", name, repr(value))
                if "max" in options and value > options["max"]:
                    raise ValidationError(node_id, class_type, "value_bigger_than_max", name, repr(value))


class Unhashable:
    def __init__(self):
        self.value = float("NaN")


def to_hashable(obj):
    """comfy_execution/caching.py:to_hashable."""
    if isinstance(obj, (int, float, str, bool, bytes, type(None))):
        return obj
    if isinstance(obj, Mapping):
        return frozenset([(to_hashable(k), to_hashable(v)) for k, v in sorted(obj.items())])
    if isinstance(obj, Sequence):
        return frozenset(zip(itertools.count(), [to_hashable(i) for i in obj]))
    return Unhashable()


def _get_input_data(node_id, node, node_class, outputs):
    """execution.py:get_input_data without list wrapping: declared constants, linked outputs (None
    when not given, as for IS_CHANGED) and the hidden UNIQUE_ID."""
    types = node_class.INPUT_TYPES()
    declared = set(types.get("required", {})) | set(types.get("optional", {}))
    kwargs = {}
    for name, value in node["inputs"].items():
        if _is_link(value):
            kwargs[name] = outputs[value[0]][value[1]] if outputs is not None else None
        elif name in declared:
            kwargs[name] = value
    for name, kind in types.get("hidden", {}).items():
        if kind == "UNIQUE_ID":
            kwargs[name] = node_id
    return kwargs


class Execution:
    """What one prompt produced: per-node outputs and ui dicts (cached nodes' included), the nodes
    run and the nodes served from the cache, progress events, errors."""

    def __init__(self):
        self.outputs, self.ui, self.progress, self.error = {}, {}, [], None
        self.executed, self.cached = [], []
        self.grad_mode_seen = None


class PromptExecutor:
    """execution.py:PromptExecutor, the one object main.py's prompt_worker keeps for the server's
    life, with the classic cache (CacheSet.init_classic_cache): a node's outputs and ui are kept
    under its input signature (comfy_execution/caching.py:CacheKeySetInputSignature: class_type,
    the IS_CHANGED result, the node id when the class asks for UNIQUE_ID or is NOT_IDEMPOTENT, its
    constant inputs, and the same for every ancestor), its instance under (node id, class_type);
    entries the current prompt does not use are dropped. A node whose signature is cached is not
    run, nor are ancestors only it needs."""

    def __init__(self):
        self.outputs, self.ui, self.objects = {}, {}, {}

    def _is_changed(self, prompt, node_id, memo):
        """execution.py:IsChangedCache.get: False without IS_CHANGED, else [IS_CHANGED(**constants)],
        NaN (never equal: always re-run) when it raises."""
        if node_id not in memo:
            node = prompt[node_id]
            node_class = nodes.NODE_CLASS_MAPPINGS[node["class_type"]]
            if not hasattr(node_class, "IS_CHANGED"):
                memo[node_id] = False
            else:
                try:
                    memo[node_id] = [node_class.IS_CHANGED(**_get_input_data(node_id, node, node_class, None))]
                except Exception as error:  # noqa: BLE001 (as the real code)
                    logging.warning("WARNING: {}".format(error))
                    memo[node_id] = float("NaN")
        return memo[node_id]

    def _signature(self, prompt, node_id, memo):
        """CacheKeySetInputSignature.get_node_signature: the node's immediate signature, then its
        ancestors' in the order their links are met (inputs sorted by name)."""
        ancestors, order = [], {}

        def walk(current):
            if current not in prompt:
                return
            for key in sorted(prompt[current]["inputs"]):
                value = prompt[current]["inputs"][key]
                if _is_link(value) and value[0] not in order:
                    ancestors.append(value[0])
                    order[value[0]] = len(ancestors) - 1
                    walk(value[0])

        def immediate(current):
            if current not in prompt:
                return [float("NaN")]
            node = prompt[current]
            node_class = nodes.NODE_CLASS_MAPPINGS[node["class_type"]]
            signature = [node["class_type"], self._is_changed(prompt, current, memo)]
            if getattr(node_class, "NOT_IDEMPOTENT", False) or "UNIQUE_ID" in node_class.INPUT_TYPES().get("hidden", {}).values():
                signature.append(current)
            for key in sorted(node["inputs"]):
                value = node["inputs"][key]
                signature.append((key, ("ANCESTOR", order[value[0]], value[1])) if _is_link(value) else (key, value))
            return signature

        walk(node_id)
        return to_hashable([immediate(node_id)] + [immediate(a) for a in ancestors])

    def execute(self, prompt, on_progress=None):
        """Runs a validated prompt as PromptExecutor.execute does: on a worker thread, inside
        torch.inference_mode(), one node instance per (id, class_type), cached outputs reused, the
        progress hook raising interrupts."""
        validate(prompt)
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
                    memo = {}
                    keys = {node_id: self._signature(prompt, node_id, memo) for node_id in prompt}  # cache.set_prompt
                    for cache in (self.outputs, self.ui):  # cache.clean_unused()
                        for key in [k for k in cache if k not in keys.values()]:
                            del cache[key]
                    for key in [k for k in self.objects if prompt.get(k[0], {}).get("class_type") != k[1]]:
                        del self.objects[key]
                    result.cached = [node_id for node_id in prompt if keys[node_id] in self.outputs]
                    for node_id in _order(prompt, lambda n: keys[n] in self.outputs):
                        node = prompt[node_id]
                        if keys[node_id] in self.outputs:
                            result.outputs[node_id] = self.outputs[keys[node_id]]
                            result.ui[node_id] = self.ui.get(keys[node_id])
                            continue
                        node_class = nodes.NODE_CLASS_MAPPINGS[node["class_type"]]
                        kwargs = _get_input_data(node_id, node, node_class, result.outputs)
                        comfy.model_management.throw_exception_if_processing_interrupted()
                        if (node_id, node["class_type"]) not in self.objects:
                            self.objects[(node_id, node["class_type"])] = node_class()
                        output = getattr(self.objects[(node_id, node["class_type"])], node_class.FUNCTION)(**kwargs)
                        if isinstance(output, dict):
                            result.ui[node_id] = output.get("ui")
                            output = output.get("result", ())
                        result.outputs[node_id] = tuple(output)
                        self.outputs[keys[node_id]] = result.outputs[node_id]
                        if result.ui.get(node_id):
                            self.ui[keys[node_id]] = result.ui[node_id]
                        result.executed.append(node_id)
            except BaseException as error:  # noqa: BLE001 (reported to the caller, like execution_error)
                result.error = error
            finally:
                comfy.utils.set_progress_bar_global_hook(None)

        thread = threading.Thread(target=worker, name="prompt_worker", daemon=True)
        thread.start()
        thread.join()
        return result


def _order(prompt, is_cached):
    """Output nodes and the ancestors they need, dependencies first (comfy_execution/graph.py:
    ExecutionList.add_node stops at cached nodes); a cycle is an error."""
    wanted, order, state = [], [], {}
    for node_id, node in prompt.items():
        if getattr(nodes.NODE_CLASS_MAPPINGS[node["class_type"]], "OUTPUT_NODE", False) is True:
            wanted.append(node_id)

    def visit(node_id):
        if state.get(node_id) == "done":
            return
        if state.get(node_id) == "visiting":
            raise ValidationError(node_id, prompt[node_id]["class_type"], "invalid_prompt", "", "cycle")
        state[node_id] = "visiting"
        if not is_cached(node_id):
            for value in prompt[node_id]["inputs"].values():
                if _is_link(value):
                    visit(value[0])
        state[node_id] = "done"
        order.append(node_id)

    for node_id in wanted:
        visit(node_id)
    return order


def execute(prompt, on_progress=None):
    """One prompt on a fresh server (nothing cached): PromptExecutor().execute(prompt)."""
    return PromptExecutor().execute(prompt, on_progress)
