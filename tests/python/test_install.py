"""install.py, as ComfyUI-Manager runs it with ComfyUI's Python: with a module that loads for this
Python it does nothing; without one it names the build tools it lacks (never a traceback)."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, load_wheel_tag


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


def test_install_says_when_the_wheel_folder_has_no_wheel_for_this_torch(tmp_path):
    """A wheel for another torch is never installed: install.py names what it expected and found,
    then goes on to the build (here stopped by the missing tools)."""
    import torch

    pack = tmp_path / "lethe"
    for folder in ("python_bridge", "cmake"):
        (pack / folder).mkdir(parents=True)
    for name in ("install.py", "pyproject.toml", "cmake/wheel_tag.py", "python_bridge/__init__.py"):
        shutil.copy(os.path.join(ROOT, name), pack / name)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    other = f"lethe-0.1.0-1torch1.0.0.cu100-{python_tag}-{python_tag}-linux_x86_64.whl"
    (wheels / other).write_bytes(b"")
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run([sys.executable, str(pack / "install.py")], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PATH=str(empty), LETHE_WHEELS=str(wheels)))
    tag = "1torch" + torch.__version__.replace("+", ".")
    version = load_wheel_tag().pack_version()
    assert f"{wheels} has no wheel for torch {torch.__version__} and Python {python_tag}" in done.stdout
    assert f"expected lethe-{version}-{tag}-{python_tag}-*.whl, found {other}" in done.stdout
    assert done.returncode == 1 and "building the native module needs" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_wheel_tag_names_the_torch_and_the_version_is_pyprojects():
    import re

    module = load_wheel_tag()
    cmake_reads = "file(STRINGS pyproject.toml lethe_version_line" in open(os.path.join(ROOT, "CMakeLists.txt")).read()
    version = re.search(r'^version = "([0-9.]+)"$', open(os.path.join(ROOT, "pyproject.toml")).read(), re.M).group(1)
    assert cmake_reads and module.pack_version() == version
    assert module.build_tag("2.14.1+cu130") == "1torch2.14.1.cu130" and module.build_tag("2.13.0") == "1torch2.13.0"
    assert module.build_tag("2.6.0a0+git1234") == "1torch2.6.0a0.git1234"
    assert module.wheel_prefix("2.13.0+cpu") == f"lethe-{version}-1torch2.13.0.cpu-"
    with pytest.raises(ValueError, match="torch version '2.1 beta'"):
        module.build_tag("2.1 beta")


def test_pyproject_is_what_the_comfy_registry_reads():
    """The fields comfy-cli's `comfy node publish` takes from pyproject.toml (project.name, a static
    X.Y.Z version, description, license, urls.Repository; tool.comfy PublisherId, DisplayName,
    Icon), with the registry's rules for the node id; the icon is a picture this repository ships."""
    import re
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        data = tomllib.load(handle)
    project, comfy = data["project"], data["tool"]["comfy"]
    assert "version" not in project.get("dynamic", []) and re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", project["version"])
    name = project["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", name) and not re.search(r"[_.-]{2}", name)
    assert "comfyui" not in name.lower()
    assert project["description"] and project["license"] and project["urls"]["Repository"].startswith("https://")
    assert comfy["PublisherId"] and comfy["DisplayName"]
    repository = project["urls"]["Repository"].replace("https://github.com/", "https://raw.githubusercontent.com/")
    assert comfy["Icon"].startswith(repository + "/main/")
    assert os.path.isfile(os.path.join(ROOT, comfy["Icon"][len(repository + "/main/"):]))
