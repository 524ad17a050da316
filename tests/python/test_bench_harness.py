"""`make bench` cannot rot: its harness runs end to end at toy sizes (no timing asserted),
and the README's generated tables match the JSON they are generated from."""
import json
import os
import subprocess
import sys

from conftest import ROOT


def test_bench_harness_runs_at_tiny_sizes(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run_bench.py"), "--tiny", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["tiny"] is True
    native, python = results["native"], results["python"]
    for key in ("machine", "ceiling", "train_step", "sampling", "scoring", "scaling"):
        assert key in native
    assert native["machine"]["threads"] == native["machine"]["cores"]
    assert native["train_step"]["median_seconds"] > 0 and python["train_step"]["median_seconds"] > 0
    assert python["train_step"]["flops"] > 0
    assert results["ratios"]["train_step_speedup"] > 0
    assert (tmp_path / "scaling.png").stat().st_size > 1000
    assert "| SISS training step" in done.stdout


def test_readme_tables_are_generated_from_the_measurements():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "readme_tables.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
