"""Run by ComfyUI-Manager (and by hand) with ComfyUI's own Python after the pack is cloned:
builds Lethe's native module against this Python's torch (`make comfy PYTHON=<this Python>`),
unless a module that loads with this torch is already there. Never installs or replaces torch.

    /path/to/ComfyUI/venv/bin/python custom_nodes/lethe/install.py
"""
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# What `make comfy` needs from the system (Debian/Ubuntu package names in brackets).
TOOLS = {"cmake": "cmake", "ninja": "ninja-build", "c++": "build-essential", "make": "make"}
HEADERS = {"nlohmann/json.hpp": "nlohmann-json3-dev", "stb/stb_image.h": "libstb-dev", "CLI/CLI.hpp": "libcli11-dev"}
# The measured ComfyUI user build (README): 2-core Intel Xeon, torch 2.14.1+cu130, nothing cached.
MEASURED = "about 20 minutes on 2 cores, less with more"


def module_loads():
    """True when python_bridge imports in this Python: a module built for it and its torch."""
    done = subprocess.run([sys.executable, "-c", "import python_bridge"], cwd=HERE, capture_output=True, text=True)
    return done.returncode == 0


def missing_requirements():
    missing = {package for tool, package in TOOLS.items() if shutil.which(tool) is None}
    missing |= {package for header, package in HEADERS.items()
                if not any(os.path.exists(os.path.join(folder, header)) for folder in ("/usr/include", "/usr/local/include"))}
    return sorted(missing)


def main():
    try:
        import torch
    except ImportError:
        print(f"[lethe] install: this Python ({sys.executable}) has no torch; expected ComfyUI's Python, "
              "with ComfyUI's requirements installed")
        return 1
    if module_loads():
        print(f"[lethe] install: the native module is already built for {sys.executable} (torch {torch.__version__}); "
              "nothing to do")
        return 0
    missing = missing_requirements()
    if missing:
        print(f"[lethe] install: building the native module needs {', '.join(missing)}, not found; "
              f"install them (e.g. `sudo apt-get install {' '.join(missing)}`) and run this again")
        return 1
    print(f"[lethe] install: building the native module against torch {torch.__version__} for {sys.executable} "
          f"({MEASURED}); progress below")
    start = time.monotonic()
    done = subprocess.run(["make", "-C", HERE, "comfy", f"PYTHON={sys.executable}", f"JOBS={os.cpu_count() or 1}"])
    minutes = (time.monotonic() - start) / 60
    if done.returncode != 0 or not module_loads():
        print(f"[lethe] install: the build failed after {minutes:.0f} minutes (see above); "
              f"rerun `make -C {HERE} comfy PYTHON={sys.executable}` after fixing it")
        return 1
    print(f"[lethe] install: built in {minutes:.0f} minutes; restart ComfyUI")
    return 0


if __name__ == "__main__":
    sys.exit(main())
