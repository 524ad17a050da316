"""Lethe's Python bridge: loads the compiled native module ``_lethe``.

torch is imported first so that libtorch is loaded before the extension, and a module
built against another torch gives a rebuild hint instead of an undefined-symbol error.
The pack may be imported under several package names (ComfyUI uses the folder path,
tests use ``python_bridge``); the native module is initialised once and shared.
"""
import glob
import importlib.machinery
import os
import platform
import shlex
import sys

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))


def _build_hint():
    """Which Python this is and the exact command that builds the module for it."""
    pack = os.path.dirname(_HERE)
    return (f"this Python is {sys.executable} (Python {platform.python_version()}, torch {torch.__version__}); "
            f"build the module for it with `make -C {shlex.quote(pack)} comfy PYTHON={shlex.quote(sys.executable)}`")


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
    # Python names a native module for its version and platform (_lethe.cpython-311-x86_64-linux-gnu.so):
    # with none for this Python, `from . import _lethe` would only say "cannot import name".
    built_here = [path for suffix in importlib.machinery.EXTENSION_SUFFIXES
                  for path in glob.glob(os.path.join(glob.escape(_HERE), "_lethe" + suffix))]
    if not built_here:
        found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(_HERE), "_lethe*.so")))
        raise ImportError(
            f"Lethe's native module is not built for this Python: {_HERE} has "
            f"{', '.join(found) + ' (for another Python)' if found else 'no _lethe module'}, expected "
            f"_lethe{importlib.machinery.EXTENSION_SUFFIXES[0]}; {_build_hint()}"
        )
    try:
        from . import _lethe
    except ImportError as error:  # built against another torch, or its libraries are missing
        raise ImportError(f"Lethe's native module {built_here[0]} could not be loaded ({error}); {_build_hint()}") from None
sys.modules[__name__ + "._lethe"] = _lethe

if _lethe.torch_version() != torch.__version__.split("+")[0]:
    raise ImportError(
        f"Lethe's native module was built against torch {_lethe.torch_version()}, "
        f"not this Python's torch {torch.__version__}; {_build_hint()}"
    )

_lethe.init_threads()

__all__ = ["_lethe"]
