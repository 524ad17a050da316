"""Lethe as a ComfyUI custom node pack (the repository root is the pack folder:
custom_nodes/lethe). ComfyUI imports this file as a package; the node classes are generated
from Lethe's native node registry (see nodes/). WEB_DIRECTORY is the frontend extension that
shows a node's text results on the node (web/results.js, docs/comfyui-contract.md §9)."""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
