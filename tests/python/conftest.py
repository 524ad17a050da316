"""pytest set-up: the repository root on sys.path, seeded torch, and the native module."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
BUILD = os.environ.get("LETHE_BUILD", os.path.join(ROOT, "build"))
LETHE_EXE = os.path.join(BUILD, "lethe")
# Tests never write evaluation caches into models/bench/eval-cache (subprocesses inherit this).
os.environ.setdefault("LETHE_EVAL_CACHE", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"lethe-test-eval-cache-{os.getpid()}"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long tests, run by `make test-all`")
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped without one")


@pytest.fixture
def lethe():
    from python_bridge import _lethe

    return _lethe


@pytest.fixture(autouse=True)
def _seeded():
    import torch

    torch.manual_seed(0)
