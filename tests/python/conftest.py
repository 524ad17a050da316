"""pytest set-up: the repository root on sys.path, seeded torch, and the native module."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
BUILD = os.environ.get("LETHE_BUILD", os.path.join(ROOT, "build"))
LETHE_EXE = os.path.join(BUILD, "lethe")
# Hermetic: no LETHE_* setting of the caller's shell reaches the tests (threads, memory caps,
# resource folders); LETHE_BUILD only says which build is under test.
for _key in [k for k in os.environ if k.startswith("LETHE_") and k != "LETHE_BUILD"]:
    del os.environ[_key]
_TMP = os.environ.get("TMPDIR", "/tmp")
# Tests never write evaluation caches into models/bench/eval-cache, nor logs into the user's
# state folder (subprocesses inherit these).
os.environ["LETHE_EVAL_CACHE"] = os.path.join(_TMP, f"lethe-test-eval-cache-{os.getpid()}")
os.environ["LETHE_LOG_DIR"] = os.path.join(_TMP, f"lethe-test-logs-{os.getpid()}")


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
