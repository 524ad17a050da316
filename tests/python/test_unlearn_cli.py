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
needs_base = pytest.mark.usefixtures("bench_models")  # shipped: missing ones fail


def metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))["__metadata__"]


def unlearn(tmp_path, config, *extra, env=None):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run([LETHE_EXE, "unlearn", "--config", str(path), *extra], capture_output=True, text=True,
                          timeout=600, env=env)


TINY = {"data": {"preset": "bench", "task": "data", "retain_limit": 64}, "objective": "siss",
        "timesteps": {"t_min": 250, "t_max": 750}, "frequency": {"filter": "lowpass", "cutoff": 0.5},
        "trainer": {"steps": 3, "batch_size": 4}, "snapshot_every": 2}


@needs_base
def test_run_folder_holds_model_provenance_pictures_and_snapshots(tmp_path):
    out = tmp_path / "run"
    done = unlearn(tmp_path, dict(TINY, output=str(out)), "--set", "trainer.seed=5",
                   env=dict(os.environ, LETHE_THREADS="1"))
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
    # What wall_seconds depends on: $LETHE_THREADS, the processor, `lethe` flushing subnormals and
    # keeping freed memory.
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    assert summary["machine"] == {"threads": 1, "cpu": cpu, "flush_denormals": True, "freed_memory_kept": True}
    assert (out / "selections.png").stat().st_size > 1000  # timestep weights and frequency mask
    again = unlearn(tmp_path, dict(TINY, output=str(out)), "--set", "trainer.seed=5")
    assert again.returncode != 0 and "already holds a finished run" in again.stderr
    other = unlearn(tmp_path, dict(TINY, output=str(out)))
    assert other.returncode != 0 and "holds a different run" in other.stderr and "trainer.seed (was 5, now 0)" in other.stderr


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


@needs_base
def test_cross_attention_kv_training_moves_only_the_key_and_value_projections(tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    done = unlearn(tmp_path, dict(TINY, output=str(out), trainable="cross_attention_kv", snapshot_every=0))
    assert done.returncode == 0, done.stderr
    before, after = load_file(BASE), load_file(str(out / "model.safetensors"))
    kv = [k for k in before if k.startswith("diffusion_model.") and (k.endswith("attn2.to_k.weight") or k.endswith("attn2.to_v.weight"))]
    assert kv
    moved = {k for k in before if k.startswith("diffusion_model.") and not torch_equal(before[k], after[k])}
    assert moved and moved <= set(kv), sorted(moved - set(kv))[:5]
    wrong = unlearn(tmp_path, dict(TINY, output=str(tmp_path / "other"), trainable="cross_attn"))
    assert wrong.returncode != 0 and "expected full, lora or cross_attention_kv, got 'cross_attn'" in wrong.stderr


def torch_equal(a, b):
    return bool((a == b).all())


@needs_base
def test_ema_runs_save_the_ema_of_the_raw_trajectory(tmp_path):
    # The same seeded run twice: without EMA (raw weights after step 1 as a snapshot, after
    # step 2 as the model) and with trainer.ema_decay d, whose model must be
    # d^2 theta_0 + d (1 - d) theta_1 + (1 - d) theta_2 (EMA starting from the source weights).
    from safetensors.torch import load_file

    d = 0.6
    raw = dict(TINY, output=str(tmp_path / "raw"), snapshot_every=1, trainer={"steps": 2, "batch_size": 4})
    ema = dict(TINY, output=str(tmp_path / "ema"), snapshot_every=0, trainer={"steps": 2, "batch_size": 4, "ema_decay": d})
    for config in (raw, ema):
        done = unlearn(tmp_path, config)
        assert done.returncode == 0, done.stderr
    theta0 = load_file(BASE)
    theta1 = load_file(str(tmp_path / "raw" / "snapshots" / "step-00001.safetensors"))
    theta2 = load_file(str(tmp_path / "raw" / "model.safetensors"))
    averaged = load_file(str(tmp_path / "ema" / "model.safetensors"))
    unet = [k for k in theta2 if k.startswith("diffusion_model.")]
    assert unet and any(not (theta2[k] == theta0[k]).all() for k in unet)  # training moved the weights
    for key in unet:
        expected = d * d * theta0[key] + d * (1 - d) * theta1[key] + (1 - d) * theta2[key]
        assert (averaged[key] - expected).abs().max().item() < 1e-6, key


def test_one_source_of_defaults_for_the_cli_the_nodes_and_the_bench_config(tmp_path):
    """The trainer's struct defaults are the defaults everywhere: `lethe unlearn` without a
    config, the unlearn nodes' widgets, and bench/configs (which set only what differs)."""
    done = subprocess.run([LETHE_EXE, "unlearn", "--print-config"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    defaults = json.loads(done.stdout)
    schemas = json.loads(subprocess.run([LETHE_EXE, "nodes", "--json"], capture_output=True, text=True, timeout=60,
                                        check=True).stdout)
    trainer = defaults["trainer"]
    expected = {"steps": trainer["steps"], "batch_size": trainer["batch_size"],
                "learning_rate": trainer["optimizer"]["learning_rate"],
                "retain_caption_dropout": trainer["retain_caption_dropout"], "lora_rank": defaults["lora"]["rank"]}
    for node in ("LetheUnlearn", "LetheUnlearnHostModel"):
        inputs = schemas[node]["input"]
        widgets = {**inputs["required"], **inputs["optional"]}
        for name, value in expected.items():
            assert widgets[name][1]["default"] == value, (node, name)
        assert widgets["checkpoint_minutes"][1]["default"] * 60 == trainer["checkpoint_seconds"]
    assert widgets_of("LetheUnlearn", schemas)["ema_decay"][1]["default"] == trainer["ema_decay"]
    assert (trainer["steps"], trainer["batch_size"], trainer["optimizer"]["learning_rate"]) == (160, 16, 3e-5)
    bench = json.load(open(os.path.join(ROOT, "bench", "configs", "siss-tf.json")))
    for key, value in bench["trainer"].items():
        assert value != trainer[key], f"bench/configs/siss-tf.json repeats the default trainer.{key}"


def widgets_of(node, schemas):
    inputs = schemas[node]["input"]
    return {**inputs["required"], **inputs["optional"]}
