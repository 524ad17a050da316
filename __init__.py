"""Lethe as a ComfyUI custom node pack (the repository root is the pack folder:
custom_nodes/lethe). ComfyUI imports this file as a package; the node classes are generated
from Lethe's native node registry (see nodes/)."""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
