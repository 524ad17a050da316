"""Helpers the Python tests share: running `lethe`, reading safetensors metadata and checkpoint
steps, waiting for a file, checking that a message is clean (no library text), and a bench model
that is not shipped."""
import json
import os
import signal
import struct
import subprocess
import time

from conftest import LETHE_EXE, ROOT

BENCH = os.path.join(ROOT, "models", "bench")
BASE = os.path.join(BENCH, "base.safetensors")
RETRAINED = os.path.join(BENCH, "retrained.safetensors")

# Text that must never reach a user: library exception tags and C++/torch backtraces.
LEAKS = ("json.exception", "map::at", "basic_string", "Exception raised from", "frame #", "terminate called")


def unshipped_model(tmp_path):
    """The base model with one convolution nudged (1e-3 noise, seeded), in `tmp_path`: not a shipped
    model, so its evaluation is computed, never read from the evaluation cache."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tensors = load_file(BASE)
    with safe_open(BASE, "pt") as f:
        meta = f.metadata()
    key = next(k for k in sorted(tensors) if k.startswith("diffusion_model.") and tensors[k].dim() == 4)
    tensors[key] = tensors[key] + 1e-3 * torch.randn(tensors[key].shape, generator=torch.Generator().manual_seed(0))
    model = tmp_path / "model.safetensors"
    save_file(tensors, str(model), metadata=meta)
    return model


def metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def checkpoint_step(path):
    """The step recorded in a checkpoint, or -1 while it does not exist (or is being replaced)."""
    try:
        return int(metadata(path)["step"])
    except (OSError, ValueError, KeyError, struct.error):
        return -1


def wait_for(condition, process, timeout=180, what="the condition"):
    """Polls `condition` until true; fails if `process` exits first or time runs out."""
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"process exited ({process.returncode}) before {what}:\n{err}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"timed out waiting for {what}")


def lethe(*args, cwd=ROOT, env=None, timeout=600, input=None):
    return subprocess.run([LETHE_EXE, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
                          input=input)


def start(*args, cwd=ROOT, env=None):
    return subprocess.Popen([LETHE_EXE, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, env=env)


def interrupt(process, how):
    process.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    out, err = process.communicate(timeout=120)
    return process.returncode, err


def error_line(stderr):
    """The `lethe: error: ...` part of a run's stderr (progress lines come before it)."""
    return stderr[stderr.rindex("lethe: error:"):] if "lethe: error:" in stderr else stderr


def assert_clean(message, *fragments, limit=1200):
    for leak in LEAKS:
        assert leak not in message, f"{leak!r} reached the user: {message!r}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert len(message) < limit, f"{len(message)} characters: {message[:300]!r}..."


def api(graph):
    """{id: (class_type, inputs)} -> an API-format prompt."""
    return {str(k): {"class_type": t, "inputs": i} for k, (t, i) in graph.items()}
