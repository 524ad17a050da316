"""The committed bench models: their hashes match their model cards, and a small sample of
the bench's properties holds (`lethe bench check --quick`: classifier accuracy on 500 test
images, descriptor copy detection on 100 queries, one forget caption regurgitated by base)."""
import json
import os
import subprocess

import pytest

from comfy_helpers import needs_bench
from conftest import LETHE_EXE, ROOT

BENCH = os.path.join(ROOT, "models", "bench")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    subprocess.run([LETHE_EXE, "bench", "check", "--quick", "--out", str(out)], capture_output=True, text=True, timeout=300)
    return json.loads((out / "report.json").read_text())


@needs_bench
def test_quick_check_verifies_every_model_hash(quick_report):
    assert quick_report["mode"] == "quick"
    for name in ("base", "retrained", "descriptor", "classifier"):
        card = json.load(open(os.path.join(BENCH, f"{name}.card.json")))
        assert quick_report["models"][name]["sha256"] == card["sha256"]


@needs_bench
def test_classifier_accuracy_on_500_test_images(quick_report):
    assert quick_report["classifier"]["pass"], quick_report["classifier"]


# The quick sample of copy detection: 100 augmented queries against a 1000-image database.
@needs_bench
def test_descriptor_ranks_augmented_copies_first(quick_report):
    assert quick_report["descriptor"]["pass"], quick_report["descriptor"]


# base's 8 quick samples of piece_00 (t-shirt): at least 80% score as copies.
@needs_bench
def test_base_regurgitates_a_forget_caption(quick_report):
    assert quick_report["memorization"]["pass"], quick_report["memorization"]


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
