"""The committed bench models: their hashes match their model cards, and a small sample of
the bench's properties holds (`lethe bench check --quick`: classifier accuracy on 500 test
images, descriptor copy detection on 100 queries, one forget caption regurgitated by base)."""
import json
import os
import subprocess

import pytest

from conftest import LETHE_EXE, ROOT
from test_comfy_pack import needs_bench

BENCH = os.path.join(ROOT, "models", "bench")


@needs_bench
def test_quick_bench_check_passes(tmp_path):
    done = subprocess.run([LETHE_EXE, "bench", "check", "--quick", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mode"] == "quick"
    for name in ("base", "retrained", "descriptor", "classifier"):
        card = json.load(open(os.path.join(BENCH, f"{name}.card.json")))
        assert report["models"][name]["sha256"] == card["sha256"]
    assert report["classifier"]["pass"], report["classifier"]
    assert report["descriptor"]["pass"], report["descriptor"]
    assert report["memorization"]["pass"], report["memorization"]
    assert done.returncode == 0 and report["pass"], done.stdout + done.stderr


@needs_bench
def test_a_changed_model_file_is_caught(tmp_path):
    for name in ("base", "retrained", "descriptor", "classifier"):
        for suffix in (".safetensors", ".card.json"):
            src = os.path.join(BENCH, name + suffix)
            os.symlink(src, tmp_path / (name + suffix))
    card = json.load(open(os.path.join(BENCH, "classifier.card.json")))
    card["sha256"] = "0" * 64
    os.remove(tmp_path / "classifier.card.json")
    (tmp_path / "classifier.card.json").write_text(json.dumps(card))
    done = subprocess.run([LETHE_EXE, "bench", "check", "--quick", "--models", str(tmp_path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "classifier.safetensors" in done.stderr and "0" * 64 in done.stderr
