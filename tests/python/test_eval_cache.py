"""Evaluations of the shipped bench models are cached (they are seeded, so they never
change): a second identical evaluation reads the cache and reports the same numbers; any
change of settings misses it."""
import json
import os
import subprocess

from conftest import LETHE_EXE, ROOT

BASE = os.path.join(ROOT, "models", "bench", "base.safetensors")


# Attacks on a small budget: their results are cached with the rest.
SMALL_ATTACKS = {"attacks": {"prompt_steps": 2, "prompt_samples": 1, "relearn_max_steps": 2, "relearn_check_every": 1,
                             "relearn_samples": 1}}


def evaluate(tmp_path, name, *extra):
    env = dict(os.environ, LETHE_EVAL_CACHE=str(tmp_path / "cache"))
    config = tmp_path / "attacks.json"
    config.write_text(json.dumps(SMALL_ATTACKS))
    done = subprocess.run([LETHE_EXE, "eval", "--model", BASE, "--samples-per-caption", "1", "--samples-per-class", "1",
                           "--config", str(config), "--out", str(tmp_path / name), *extra],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / name / "report.json").read_text())


def test_shipped_model_evaluations_are_cached_exactly(tmp_path):
    first = evaluate(tmp_path, "first")
    assert first["cached_evaluations"] == {}
    assert len(os.listdir(tmp_path / "cache")) == 1
    second = evaluate(tmp_path, "second")
    assert list(second["cached_evaluations"]) == ["evaluated"]
    assert second["models"]["evaluated"] == first["models"]["evaluated"]
    assert first["models"]["evaluated"]["attacks"]["relearn"]["budget"] == 2  # the attacks' details come back too
    other_seed = evaluate(tmp_path, "other-seed", "--seed", "1")
    assert other_seed["cached_evaluations"] == {}
    assert other_seed["models"]["evaluated"]["sscd_mean"] != first["models"]["evaluated"]["sscd_mean"]
