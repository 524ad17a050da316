"""pytest set-up: the repository root on sys.path, seeded torch, the native module, and the tiny
SD-shaped checkpoint (tiny_sd) that several test modules share."""
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


def load_wheel_tag():
    """cmake/wheel_tag.py (the wheel's name and the pack version) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("wheel_tag", os.path.join(ROOT, "cmake", "wheel_tag.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH_MODELS = [os.path.join(ROOT, "models", "bench", f"{name}.safetensors")
                for name in ("base", "retrained", "descriptor", "classifier")]


@pytest.fixture
def bench_models():
    """The repository ships the bench models: a missing one fails the test (never a silent skip)."""
    missing = [path for path in BENCH_MODELS if not os.path.exists(path)]
    assert not missing, f"{missing} missing: the repository ships them (git checkout models/bench, or make bench-models)"
    return BENCH_MODELS


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    """(diffusers reference, checkpoint path, LDM state dict): a full-checkpoint-style file
    whose non-UNet parts (VAE, CLIP) are stand-ins the UNet loader must skip."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    from ldm_convert import diffusers_to_ldm
    from sd_helpers import SPEC

    torch.manual_seed(0)
    ref = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **SPEC)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ref.eval()
    ldm = diffusers_to_ldm(ref.state_dict(), SPEC["layers_per_block"], [False, True])
    tensors = {f"model.diffusion_model.{k}": v.contiguous() for k, v in ldm.items()}
    tensors["first_stage_model.decoder.conv_in.weight"] = torch.zeros(8, 4, 3, 3)
    tensors["cond_stage_model.transformer.text_model.final_layer_norm.weight"] = torch.ones(768)
    path = tmp_path_factory.mktemp("sd") / "tiny-sd15.safetensors"
    save_file(tensors, str(path))
    return ref, path, ldm


@pytest.fixture
def lethe():
    from python_bridge import _lethe

    return _lethe


@pytest.fixture(autouse=True)
def _seeded():
    import torch

    torch.manual_seed(0)
