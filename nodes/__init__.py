"""Lethe's ComfyUI nodes, generated from the native node registry.

Every class here is made from a schema that the native core declares (``_lethe.node_schemas_json``),
in ComfyUI's V1 node format. A node's ``run`` hands its inputs to the native function of the
same name with the GIL released, reports progress through ComfyUI's progress bar (which is
also where ComfyUI's Cancel is raised), and shows the node's previews. No tensor math lives
here beyond layout conversion for previews.
"""
import hashlib
import json
import os

from .host_model import host_model_value
from .comfy_glue import (ProgressReporter, check_filename_prefix, from_native, model_folders, output_directory, resolve_path,
                         save_previews, to_native)

try:
    from ..python_bridge import _lethe

    _IMPORT_ERROR = None
except ImportError as error:  # keep ComfyUI starting; the placeholder node says how to build it
    _lethe = None
    _IMPORT_ERROR = error


def _changed_token(kwargs):
    """IS_CHANGED for nodes that read files: the listing, sizes and mtimes of their paths."""
    digest = hashlib.sha256()
    for key in ("folder", "path"):
        path = resolve_path(kwargs.get(key))
        if not isinstance(path, str) or not path:
            continue
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                stat = os.stat(os.path.join(path, name))
                digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        elif os.path.exists(path):
            stat = os.stat(path)
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _make_class(name, schema):
    inputs = schema["input"]
    reads_files = any(key in ("folder", "path") for group in inputs.values() for key in group)

    order = schema["input_order"]  # the schema JSON's objects are key-sorted; this is the declared order
    input_kinds = {key: spec[0] for group in inputs.values() for key, spec in group.items()}

    def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
        # ComfyUI maps a UI workflow's widgets_values by this order: it must be the declared one.
        return {
            "required": {k: tuple(inputs["required"][k]) for k in order["required"]},
            "optional": {k: tuple(inputs["optional"][k]) for k in order["optional"]},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def run(self, unique_id=None, **kwargs):
        import torch

        node_id = str(unique_id if unique_id is not None else name)
        for key in ("folder", "path"):
            if key in kwargs:
                kwargs[key] = resolve_path(kwargs[key])
        host_model = None
        for key, value in kwargs.items():
            kind = input_kinds.get(key)
            if kind in ("LATENT", "CONDITIONING") and value is not None:
                kwargs[key] = to_native(kind, value, f"node {node_id} ({name}) input '{key}'")
            elif kind == "MODEL":  # stays in Python: native code calls back into it and returns patches for it
                host_model = value
                kwargs[key] = host_model_value(_lethe, value, f"node {node_id} ({name}) input '{key}'")
        run_directory, folders = output_directory(), model_folders()
        if isinstance(kwargs.get("filename_prefix"), str):
            saves_into = {"LetheSaveLoRA": folders.get("loras", run_directory),
                          "LetheSaveModel": folders.get("output", run_directory)}.get(name, run_directory)
            check_filename_prefix(kwargs["filename_prefix"], saves_into, f"node {node_id} ({name}) input 'filename_prefix'")
        with torch.inference_mode(False), torch.enable_grad():
            outputs, ui = _lethe.run_node(name, kwargs, node_id, run_directory, ProgressReporter(node_id), folders)
        outputs = [from_native(kind, value, host_model, f"node {node_id} ({name}) output {index}")
                   for index, (kind, value) in enumerate(zip(schema["output"], outputs))]
        result = {"result": tuple(outputs)}
        images = save_previews(ui["previews"])
        if images or ui["texts"]:
            # web/results.js shows ui["text"] on the node: a list of str, one line each (docs/comfyui-contract.md §9)
            result["ui"] = {"images": images, "text": list(ui["texts"])}
        return result

    attributes = {
        "INPUT_TYPES": classmethod(INPUT_TYPES),
        "RETURN_TYPES": tuple(schema["output"]),
        "RETURN_NAMES": tuple(schema["output_name"]),
        "OUTPUT_TOOLTIPS": tuple(schema["output_tooltips"]),
        "FUNCTION": "run",
        "CATEGORY": schema["category"],
        "DESCRIPTION": schema["description"],
        "OUTPUT_NODE": bool(schema["output_node"]),
        "run": run,
        "LETHE_SCHEMA": schema,
    }
    if reads_files:
        attributes["IS_CHANGED"] = classmethod(lambda cls, **kwargs: _changed_token(kwargs))
    return type(name, (), attributes)


def _placeholder(error):
    class LetheSetupRequired:
        """Shown when the native module is missing: running it says how to build it."""

        @classmethod
        def INPUT_TYPES(cls):  # noqa: N802
            return {"required": {}}

        RETURN_TYPES = ()
        FUNCTION = "run"
        CATEGORY = "Lethe"
        OUTPUT_NODE = True
        DESCRIPTION = str(error)

        def run(self):
            raise RuntimeError(str(error))

    return {"LetheSetupRequired": LetheSetupRequired}, {"LetheSetupRequired": "Lethe (build required)"}


if _lethe is not None:
    SCHEMAS = json.loads(_lethe.node_schemas_json())
    NODE_CLASS_MAPPINGS = {name: _make_class(name, schema) for name, schema in SCHEMAS.items()}
    NODE_DISPLAY_NAME_MAPPINGS = {name: schema["display_name"] for name, schema in SCHEMAS.items()}
else:
    print(f"[lethe] {_IMPORT_ERROR}")
    SCHEMAS = {}
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _placeholder(_IMPORT_ERROR)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
