"""`lethe unlearn --config`: the run folder (unlearned model with provenance metadata, resolved
config, loss curve, selection pictures, summary, snapshots), overrides, refusal to reuse a
finished run folder, and config errors that name the key and list the known ones."""
import json
import os
import struct
import subprocess

import pytest

from conftest import LETHE_EXE, ROOT

BASE = os.path.join(ROOT, "models", "bench", "base.safetensors")
needs_base = pytest.mark.skipif(not os.path.exists(BASE), reason="bench base model missing")


def metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))["__metadata__"]


def unlearn(tmp_path, config, *extra):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run([LETHE_EXE, "unlearn", "--config", str(path), *extra], capture_output=True, text=True, timeout=600)


TINY = {"data": {"preset": "bench", "task": "data", "retain_limit": 64}, "objective": "siss",
        "timesteps": {"t_min": 250, "t_max": 750}, "frequency": {"filter": "lowpass", "cutoff": 0.5},
        "trainer": {"steps": 3, "batch_size": 4}, "snapshot_every": 2}


@needs_base
def test_run_folder_holds_model_provenance_pictures_and_snapshots(tmp_path):
    out = tmp_path / "run"
    done = unlearn(tmp_path, dict(TINY, output=str(out)), "--set", "trainer.seed=5")
    assert done.returncode == 0, done.stderr
    for name in ("model.safetensors", "config.json", "summary.json", "loss.png", "snapshots/step-00002.safetensors"):
        assert (out / name).exists(), name
    assert not (out / "checkpoint.safetensors").exists()
    assert not (out / "snapshots" / "step-00003.safetensors").exists()  # the last step is model.safetensors
    meta = metadata(out / "model.safetensors")
    assert meta["objective"] == "siss" and meta["steps"] == "3" and meta["seed"] == "5"
    card = json.load(open(os.path.join(ROOT, "models", "bench", "base.card.json")))
    assert meta["source_model_sha256"] == card["sha256"]
    assert json.loads(meta["frequency"])["filter"] == "lowpass"
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["trainer"]["seed"] == 5 and resolved["objective_config"]["lambda"] == 0.5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["samples_seen"] == 12
    assert (out / "selections.png").stat().st_size > 1000  # timestep weights and frequency mask
    again = unlearn(tmp_path, dict(TINY, output=str(out)))
    assert again.returncode != 0 and "already holds a finished run" in again.stderr


@needs_base
def test_snapshots_need_full_parameter_training(tmp_path):
    done = unlearn(tmp_path, dict(TINY, output=str(tmp_path / "run"), trainable="lora"))
    assert done.returncode != 0 and "snapshot_every" in done.stderr and "lora" in done.stderr


def test_unknown_config_keys_are_rejected_with_the_known_ones(tmp_path):
    done = unlearn(tmp_path, {"objective": "siss", "trainer": {"stepz": 3}})
    assert done.returncode != 0
    assert "stepz" in done.stderr and "steps" in done.stderr and "batch_size" in done.stderr


@needs_base
def test_lora_runs_write_kohya_named_adapters(tmp_path):
    out = tmp_path / "run"
    config = dict(TINY, output=str(out), trainable="lora", snapshot_every=0, lora={"rank": 2, "alpha": 2.0})
    done = unlearn(tmp_path, config)
    assert done.returncode == 0, done.stderr
    from safetensors.torch import load_file

    tensors = load_file(str(out / "lora.safetensors"))
    assert tensors and all(k.startswith("lora_unet_") for k in tensors)
    modules = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in tensors}
    for module in modules:
        down, up, alpha = (tensors[f"{module}.lora_down.weight"], tensors[f"{module}.lora_up.weight"], tensors[f"{module}.alpha"])
        assert down.shape[0] == 2 and up.shape[1] == 2 and alpha.item() == 2.0
    assert "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q" in modules
    meta = metadata(out / "lora.safetensors")
    assert meta["ss_network_dim"] == "2" and meta["lethe.lora_format"] == "kohya"
