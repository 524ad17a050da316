"""The pack's wheel (run by `make test-wheel`, after `make wheel` has written it to LETHE_WHEEL_DIR):
its name's build tag carries the torch it was built against, it holds the pack and the `lethe` program and no
sources; `pip install --no-build-isolation .` installs a working pack into a fresh environment
without touching the source tree; install.py (ComfyUI-Manager's path) installs the wheel into a
ComfyUI environment whose pack folder has no built module, and the mock ComfyUI then runs the
pack's nodes from it.

The fresh environments see this Python's packages (torch among them) through a .pth file, as a
ComfyUI venv has its own torch: nothing is downloaded."""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest
import torch

WHEEL_DIR = os.environ.get("LETHE_WHEEL_DIR", "")  # read before conftest clears LETHE_* variables
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
from comfy_helpers import comfy, write_score_folder_inputs  # noqa: E402
from conftest import ROOT, load_wheel_tag  # noqa: E402

wheel_tag = load_wheel_tag()
VERSION = wheel_tag.pack_version()
PY_TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"


@pytest.fixture(scope="module")
def wheel():
    assert os.path.isdir(WHEEL_DIR), "run through `make test-wheel`, which makes the wheel first (LETHE_WHEEL_DIR)"
    wheels = sorted(os.path.basename(p) for p in glob.glob(os.path.join(WHEEL_DIR, "*.whl")))
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert wheels == [f"{wheel_tag.wheel_prefix(torch.__version__)}{PY_TAG}-{PY_TAG}-{platform}.whl"]
    return os.path.join(WHEEL_DIR, wheels[0])


def fresh_venv(path):
    """A new venv at path that also sees this Python's site-packages (torch, numpy, the build backend)."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = str(path / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, "lethe-test-parent.pth"), "w") as handle:
        handle.write(sysconfig.get_paths()["purelib"] + "\n")
    return python


def run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)}\nstdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    return done.stdout


def test_wheel_holds_the_pack_and_the_program_and_no_sources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    module = [n for n in names if n.startswith("lethe/python_bridge/_lethe.") and n.endswith(".so")]
    assert len(module) == 1, module
    expected = {"lethe/__init__.py", "lethe/nodes/__init__.py", "lethe/nodes/comfy_glue.py", "lethe/nodes/host_model.py",
                "lethe/python_bridge/__init__.py", "lethe/python_bridge/_lethe.pyi", "lethe/web/results.js",
                f"lethe-{VERSION}.data/scripts/lethe"}
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.endswith((".cpp", ".hpp", ".pyc")) or n.startswith(("tests/", "native/", "lethe/tests"))]
    metadata = zipfile.ZipFile(wheel).read(f"lethe-{VERSION}.dist-info/METADATA").decode()
    assert f"\nVersion: {VERSION}\n" in metadata and "Requires-Dist: numpy" in metadata
    assert f"\nBuild: {wheel_tag.build_tag(torch.__version__)}\n" in zipfile.ZipFile(wheel).read(
        f"lethe-{VERSION}.dist-info/WHEEL").decode()


def test_pip_install_no_build_isolation_installs_a_working_pack(tmp_path):
    python = fresh_venv(tmp_path / "venv")
    source_module = sorted(glob.glob(os.path.join(ROOT, "python_bridge", "_lethe*.so")))
    before = {p: os.stat(p).st_mtime_ns for p in source_module}
    env = dict(os.environ, CMAKE_CXX_COMPILER_LAUNCHER="ccache", CXX="c++")  # as make wheel
    run([python, "-m", "pip", "install", "--no-build-isolation", "--no-deps", ROOT], env=env)
    assert {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(ROOT, "python_bridge", "_lethe*.so"))} == before
    shown = run([python, "-m", "pip", "show", "lethe"])
    assert f"Version: {VERSION}" in shown
    # Away from the source tree: the installed package and program, built against this torch.
    out = run([python, "-c", "import torch, lethe, lethe.python_bridge as b; "
               "print(b._lethe.torch_version(), torch.__version__, b.__file__, len(lethe.NODE_CLASS_MAPPINGS))"],
              cwd=str(tmp_path))
    native_torch, torch_version, bridge, count = out.split()
    assert native_torch == torch_version.split("+")[0] and bridge.startswith(str(tmp_path / "venv")) and int(count) > 10
    program = run([str(tmp_path / "venv" / "bin" / "lethe"), "--version"], cwd=str(tmp_path))
    assert program.startswith(f"lethe {VERSION} (torch {native_torch},"), program
    # torchrun starts its command with Python (`torchrun ... $(which lethe) unlearn ...`): the installed
    # program's Python entry, kept through the install's strip, runs the installed package's launcher,
    # which here names the torchrun environment it lacks.
    done = subprocess.run([python, str(tmp_path / "venv" / "bin" / "lethe"), "unlearn"], cwd=str(tmp_path),
                          capture_output=True, text=True)
    assert done.returncode == 2 and "the torchrun environment is missing RANK" in done.stderr, done.stderr
    # An installed wheel whose module does not fit this Python says to install another wheel (there
    # is no Makefile to run where it is installed).
    for module in glob.glob(os.path.join(os.path.dirname(bridge), "_lethe*.so")):
        os.remove(module)
    done = subprocess.run([python, "-c", "import lethe.python_bridge"], cwd=str(tmp_path), capture_output=True, text=True)
    assert done.returncode == 1 and "is an installed Lethe wheel: install one built for this torch" in done.stderr
    assert f"make wheel PYTHON={python}" in done.stderr and "make -C" not in done.stderr


def test_install_py_installs_the_wheel_and_comfyui_runs_the_pack_from_it(tmp_path, wheel):
    python = fresh_venv(tmp_path / "comfy-venv")
    pack = tmp_path / "custom_nodes" / "lethe"  # the pack as ComfyUI-Manager clones it: no module built
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in [f for f in files if f and not f.startswith(("models/", "tests/", "native/", "bench/"))]:
        os.makedirs(pack / os.path.dirname(name), exist_ok=True)
        shutil.copy(os.path.join(ROOT, name), pack / name)
    assert not glob.glob(str(pack / "python_bridge" / "_lethe*.so"))
    out = run([python, str(pack / "install.py")], env=dict(os.environ, LETHE_WHEELS=WHEEL_DIR))
    assert f"installing {os.path.basename(wheel)} from {WHEEL_DIR}" in out and "installed from a wheel; restart ComfyUI" in out
    assert not glob.glob(str(pack / "python_bridge" / "_lethe*.so"))  # nothing built
    again = run([python, str(pack / "install.py")])
    assert "already built for" in again and "nothing to do" in again
    write_score_folder_inputs(tmp_path)
    result = comfy(tmp_path, """
        from nodes import NODE_CLASS_MAPPINGS as M
        prompt = executor.graph_to_prompt(json.load(open(os.path.join(pack.__path__[0], "workflows", "score-folder.json"))))
        result = executor.execute(prompt)
        if result.error is not None: raise result.error
        print(json.dumps({"nodes": sorted(k for k in M if k.startswith("Lethe")), "module": native.__file__,
                          "text": [line for ui in result.ui.values() if ui for line in ui.get("text", [])]}))
    """, pack=str(pack), python=python)
    assert "LetheSetupRequired" not in result["nodes"] and "LetheSSCDScore" in result["nodes"]
    assert result["module"].startswith(str(tmp_path / "comfy-venv"))
    assert any("2 of 4 images are copies" in line for line in result["text"]), result["text"]
