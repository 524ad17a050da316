"""Lethe as a ComfyUI custom node pack (the repository root is the pack folder).

ComfyUI imports this file as a package. The node classes are generated from the native
node registry; until the native module `_lethe` is built, importing reports how to build
it instead of failing obscurely.
"""
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

try:
    from .python_bridge import _lethe  # noqa: F401
except ImportError as error:  # keep ComfyUI starting; say what to do
    print(f"[lethe] native module not available: {error}")

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
