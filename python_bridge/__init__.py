"""Lethe's Python bridge: loads the compiled native module ``_lethe``.

torch is imported first so that libtorch is loaded before the extension, and a module
built against another torch gives a rebuild hint instead of an undefined-symbol error.
The pack may be imported under several package names (ComfyUI uses the folder path,
tests use ``python_bridge``); the native module is initialised once and shared.
"""
import os
import sys

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))


def _already_loaded():
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if name.endswith("_lethe") and os.path.dirname(os.path.abspath(path)) == _HERE:
            return module
    return None


_loaded = _already_loaded()
if _loaded is not None:
    _lethe = _loaded
else:
    try:
        from . import _lethe
    except ImportError as error:  # not built, or built for another Python/torch
        raise ImportError(
            "Lethe's native module _lethe could not be loaded for this Python "
            f"({error}). Build it against this environment's torch: run `make setup` in the "
            "Lethe folder, or `make build PYTHON=/path/to/python` for another interpreter "
            "(e.g. ComfyUI's)."
        ) from error
sys.modules[__name__ + "._lethe"] = _lethe

if _lethe.torch_version() != torch.__version__.split("+")[0]:
    raise ImportError(
        f"Lethe's native module was built against torch {_lethe.torch_version()} but this "
        f"Python has torch {torch.__version__}; rebuild with `make build PYTHON=<this python>`."
    )

_lethe.init_threads()

__all__ = ["_lethe"]
