"""Run by ComfyUI-Manager (and by hand) with ComfyUI's own Python after the pack is cloned. Unless a
module that loads with this Python's torch is already there, it installs a Lethe wheel made for
this torch from a local folder (`make wheel` writes them to dist/; LETHE_WHEELS names another
folder), else builds the native module against this torch (`make comfy PYTHON=<this Python>`).
Never installs or replaces torch.

    /path/to/ComfyUI/venv/bin/python custom_nodes/lethe/install.py
"""
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# What `make comfy` needs from the system (Debian/Ubuntu package names in brackets).
TOOLS = {"cmake": "cmake", "ninja": "ninja-build", "c++": "build-essential", "make": "make"}
HEADERS = {"nlohmann/json.hpp": "nlohmann-json3-dev", "stb/stb_image.h": "libstb-dev", "CLI/CLI.hpp": "libcli11-dev"}
# The measured ComfyUI user build (README): 2 cores, torch 2.14.1+cu130, nothing cached: 13 minutes
# on an AMD EPYC, 20 on an Intel Xeon.
MEASURED = "13 to 20 minutes on 2 cores, less with more"


def last_line(text):
    """The last line of a program's error output (what it ended on), or 'no message'."""
    return (text.strip().splitlines() or ["no message"])[-1]


def module_problem():
    """None when python_bridge imports in this Python (a module built for it and its torch), else
    the last line of the import's error."""
    done = subprocess.run([sys.executable, "-c", "import python_bridge"], cwd=HERE, capture_output=True, text=True)
    return None if done.returncode == 0 else last_line(done.stderr)


def module_loads():
    return module_problem() is None


def wheel_prefix(torch_version):
    """How the name of this pack's wheel for this torch starts (cmake/wheel_tag.py, its one source)."""
    spec = importlib.util.spec_from_file_location("lethe_wheel_tag", os.path.join(HERE, "cmake", "wheel_tag.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.wheel_prefix(torch_version, HERE)


def install_local_wheel(torch_version):
    """Installs the wheel for this pack version, torch and Python from the local wheel folder, if it
    has one; True when the module then loads. Says what it found either way."""
    folder = os.path.abspath(os.environ.get("LETHE_WHEELS") or os.path.join(HERE, "dist"))
    wheels = sorted(glob.glob(os.path.join(glob.escape(folder), "lethe-*.whl")))
    if not wheels:
        return False
    prefix = wheel_prefix(torch_version)
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    matching = [w for w in wheels if os.path.basename(w).startswith(f"{prefix}{python_tag}-")]
    if not matching:
        print(f"[lethe] install: {folder} has no wheel for torch {torch_version} and Python {python_tag} (expected "
              f"{prefix}{python_tag}-*.whl, found {', '.join(os.path.basename(w) for w in wheels)})")
        return False
    wheel = matching[-1]
    print(f"[lethe] install: installing {os.path.basename(wheel)} from {folder}")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", wheel],
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f"[lethe] install: pip could not install {os.path.basename(wheel)} ({last_line(done.stderr)})")
        return False
    problem = module_problem()
    if problem is not None:
        print(f"[lethe] install: {os.path.basename(wheel)} installed, but its module does not load in {sys.executable} "
              f"({problem})")
        return False
    return True


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
    if install_local_wheel(torch.__version__):
        print("[lethe] install: installed from a wheel; restart ComfyUI")
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
