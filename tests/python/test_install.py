"""install.py, as ComfyUI-Manager runs it with ComfyUI's Python: with a module that loads for this
Python it does nothing; without one it names the build tools it lacks (never a traceback)."""
import os
import shutil
import subprocess
import sys

from conftest import ROOT


def test_install_does_nothing_when_the_module_is_built_for_this_python():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "install.py")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"already built for {sys.executable}" in done.stdout and "nothing to do" in done.stdout


def test_install_names_the_build_tools_it_lacks(tmp_path):
    pack = tmp_path / "lethe"
    (pack / "python_bridge").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "install.py"), pack)
    shutil.copy(os.path.join(ROOT, "python_bridge", "__init__.py"), pack / "python_bridge")  # no module built
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run([sys.executable, str(pack / "install.py")], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PATH=str(empty)))
    assert done.returncode == 1
    assert "building the native module needs" in done.stdout and "cmake" in done.stdout and "ninja-build" in done.stdout
    assert "sudo apt-get install" in done.stdout and "Traceback" not in done.stdout + done.stderr
