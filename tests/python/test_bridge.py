"""The _lethe module: imports in the venv's Python, reports versions, sets threads to the core
count, turns native errors into Python exceptions."""
import os

import torch


def test_module_reports_native_version(lethe):
    assert lethe.version() == "0.1.0"
    assert lethe.torch_version() == torch.__version__.split("+")[0]
    assert "torch" in lethe.build_info()


def test_threads_default_to_available_cores(lethe):
    assert lethe.available_cores() == len(os.sched_getaffinity(0))
    assert lethe.init_threads() == lethe.available_cores()
    assert torch.get_num_threads() == lethe.available_cores()


def test_native_errors_become_python_exceptions(lethe, tmp_path):
    import pytest

    with pytest.raises(lethe.LetheError, match="cannot open"):
        lethe.load_safetensors(str(tmp_path / "missing.safetensors"))
