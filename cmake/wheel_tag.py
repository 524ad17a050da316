"""The name of a Lethe wheel: the pack's version (pyproject.toml's `version`, its one source, which
the Comfy Registry reads) and a build tag naming the torch the native module was built against,
1torch2.14.1.cu130 for torch 2.14.1+cu130: lethe-0.1.0-1torch2.14.1.cu130-cp311-cp311-linux_x86_64.whl.

`make wheel` passes the tag to scikit-build-core (wheel.build-tag); install.py picks the wheel whose
name matches ComfyUI's torch. Run as a program it prints the tag for this Python's torch.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pack_version(root=ROOT):
    """x.y.z from pyproject.toml's [project] version line."""
    path = os.path.join(root, "pyproject.toml")
    with open(path, encoding="utf-8") as handle:
        match = re.search(r'^version = "([0-9]+\.[0-9]+\.[0-9]+)"$', handle.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f'{path}: expected a line `version = "x.y.z"` in [project], found none')
    return match.group(1)


def build_tag(torch_version):
    """The wheel build tag for a torch version: '2.14.1+cu130' -> '1torch2.14.1.cu130' (a build tag
    starts with a digit; its other characters may be anything but '-')."""
    release, _, local = torch_version.partition("+")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*([a-z]+[0-9]*)*", release) or not re.fullmatch(r"[A-Za-z0-9.]*", local):
        raise ValueError(f"torch version '{torch_version}': expected a release like 2.14.1 with an optional +local "
                         "part like +cu130")
    return "1torch" + release + ("." + local if local else "")


def wheel_prefix(torch_version, root=ROOT):
    """What the name of the wheel for this pack version and torch starts with."""
    return f"lethe-{pack_version(root)}-{build_tag(torch_version)}-"


if __name__ == "__main__":
    try:
        import torch
    except ImportError:
        sys.exit(f"{sys.executable} has no torch: a Lethe wheel is built against the torch of the Python that builds it")
    print(build_tag(torch.__version__))
