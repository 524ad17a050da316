"""The layers of docs/architecture.md: the core never includes the bench, the bridge or
Python; the bench sits on top of the core. The native tests link the core library alone, so a
core that needed the bench would not even link (CMakeLists.txt)."""
import os
import re

from conftest import ROOT

CORE = ("core", "io", "data", "draw", "diffusion", "models", "unlearn", "eval", "graph")


def includes(folder):
    for directory, _, files in os.walk(os.path.join(ROOT, "native", folder)):
        for name in files:
            if name.endswith((".hpp", ".cpp")):
                path = os.path.join(directory, name)
                with open(path) as f:
                    for number, line in enumerate(f, 1):
                        match = re.match(r'\s*#\s*include\s*[<"]([^">]+)[">]', line)
                        if match:
                            yield os.path.relpath(path, ROOT), number, match.group(1)


def test_no_core_folder_includes_the_bench_python_or_the_bridge():
    offending = [f"{path}:{number}: {header}" for folder in CORE for path, number, header in includes(folder)
                 if header.startswith(("bench/", "cli/", "pybind11", "torch/extension.h", "Python.h"))]
    assert offending == []


def test_the_native_tests_link_the_core_alone():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        cmake = f.read()
    link = re.search(r"target_link_libraries\(lethe_tests ([^)]*)\)", cmake).group(1)
    assert "lethe_core" in link and "lethe_bench" not in link
