"""Lethe's Python bridge: loads the compiled native module ``_lethe``.

torch is imported first so that libtorch is loaded before the extension, and a module
built against another torch gives a rebuild hint instead of an undefined-symbol error.
The pack may be imported under several package names (ComfyUI uses the folder path,
tests use ``python_bridge``); the native module is initialised once and shared. The module is
looked for in this folder (`make comfy`, `make build`), then in the Lethe wheel installed in
this Python (`pip install --no-build-isolation .`, or install.py from a `make wheel` wheel).
"""
import glob
import importlib.machinery
import importlib.util
import os
import platform
import shlex
import sys

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))


def _build_hint():
    """Which Python this is and the exact command that builds the module for it."""
    pack = os.path.dirname(_HERE)
    this = f"this Python is {sys.executable} (Python {platform.python_version()}, torch {torch.__version__})"
    if not os.path.exists(os.path.join(pack, "Makefile")):  # an installed wheel: nothing to build here
        return (f"{this}; {pack} is an installed Lethe wheel: install one built for this torch (`make wheel "
                f"PYTHON={shlex.quote(sys.executable)}` in Lethe's source folder, then install.py or pip install it)")
    return f"{this}; build the module for it with `make -C {shlex.quote(pack)} comfy PYTHON={shlex.quote(sys.executable)}`"


def _installed_folder():
    """python_bridge/ of the Lethe wheel installed in this Python (`pip install --no-build-isolation .`,
    or install.py from a wheel made by `make wheel`), when this file is not that one: the pack in
    custom_nodes/ then uses the wheel's module."""
    from importlib import metadata

    try:
        distribution = metadata.distribution("lethe")
    except metadata.PackageNotFoundError:
        return None
    folder = os.path.abspath(str(distribution.locate_file(os.path.join("lethe", "python_bridge"))))
    return folder if folder != _HERE and os.path.isdir(folder) else None


def _modules_in(folder):
    """The native modules in folder named for this Python (_lethe.cpython-311-x86_64-linux-gnu.so)."""
    return [path for suffix in importlib.machinery.EXTENSION_SUFFIXES
            for path in glob.glob(os.path.join(glob.escape(folder), "_lethe" + suffix))]


_FOLDERS = [_HERE] + [folder for folder in [_installed_folder()] if folder]


def _already_loaded():
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if name.endswith("_lethe") and os.path.dirname(os.path.abspath(path)) in _FOLDERS:
            return module
    return None


def _load(path):
    """The native module at path, named as this package's submodule (its init function is PyInit__lethe)."""
    if os.path.dirname(path) == _HERE:
        from . import _lethe as module
        return module
    spec = importlib.util.spec_from_file_location(__name__ + "._lethe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # pybind11 modules initialise in two phases
    return module


_loaded = _already_loaded()
if _loaded is not None:
    _lethe = _loaded
else:
    # Python names a native module for its version and platform (_lethe.cpython-311-x86_64-linux-gnu.so):
    # with none for this Python, `from . import _lethe` would only say "cannot import name".
    found_for_this_python = [path for folder in _FOLDERS for path in _modules_in(folder)]
    if not found_for_this_python:
        found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(_HERE), "_lethe*.so")))
        raise ImportError(
            f"Lethe's native module is not built for this Python: {_HERE} has "
            f"{', '.join(found) + ' (for another Python)' if found else 'no _lethe module'}, expected "
            f"_lethe{importlib.machinery.EXTENSION_SUFFIXES[0]}"
            f"{'' if len(_FOLDERS) > 1 else ', and no Lethe wheel is installed'}; {_build_hint()}"
        )
    try:
        _lethe = _load(found_for_this_python[0])
    except ImportError as error:  # built against another torch, or its libraries are missing
        raise ImportError(f"Lethe's native module {found_for_this_python[0]} could not be loaded ({error}); "
                          f"{_build_hint()}") from None
sys.modules[__name__ + "._lethe"] = _lethe

if _lethe.torch_version() != torch.__version__.split("+")[0]:
    raise ImportError(
        f"Lethe's native module was built against torch {_lethe.torch_version()}, "
        f"not this Python's torch {torch.__version__}; {_build_hint()}"
    )

_lethe.init_threads()

__all__ = ["_lethe"]
