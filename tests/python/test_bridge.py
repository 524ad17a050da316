"""The _lethe module: imports in the venv's Python, reports versions, sets threads to the core
count, turns native errors into Python exceptions."""
import os
import re

import torch

from comfy_helpers import needs_bench


def test_module_reports_native_version(lethe):
    assert lethe.version() == "0.1.0"
    assert lethe.torch_version() == torch.__version__.split("+")[0]
    assert "torch" in lethe.build_info()


def test_threads_default_to_available_cores(lethe):
    assert lethe.available_cores() == len(os.sched_getaffinity(0))
    assert lethe.init_threads() == lethe.available_cores()
    assert torch.get_num_threads() == lethe.available_cores()


def test_native_errors_become_python_exceptions(lethe, tmp_path):
    import pytest

    with pytest.raises(lethe.LetheError, match="cannot open"):
        lethe.load_safetensors(str(tmp_path / "missing.safetensors"))


@needs_bench
def test_a_progress_callback_returning_false_cancels_as_lethe_cancelled(lethe, tmp_path):
    """Native lethe::Cancelled reaches Python as _lethe.Cancelled (a LetheError), not as the base
    class: pybind11 tries translators newest first, so the subclass must be registered last."""
    import pytest

    forget, retain, *_ = lethe.run_node("LetheBenchData", {"task": "data", "forget_pieces": "all", "concept": "sneaker",
                                                       "anchor": "footwear", "retain_limit": 32}, "1", str(tmp_path))[0]
    model = lethe.run_node("LetheBenchModel", {"which": "base"}, "2", str(tmp_path))[0][0]
    objective = lethe.run_node("LetheObjectiveBaseline", {"method": "neggrad", "scale": 1.0, "eta": 1e-3}, "3",
                               str(tmp_path))[0][0]
    steps = []

    def progress(event):
        if event["stage"] == "train":
            steps.append(event["step"])
        return not steps or steps[-1] < 3  # False at step 3: stop

    inputs = {"model": model, "objective": objective, "forget": forget, "retain": retain, "steps": 50, "batch_size": 2,
              "learning_rate": 1e-4, "seed": 0, "trainable": "full", "lora_rank": 4, "retain_caption_dropout": 0.1}
    with pytest.raises(lethe.Cancelled, match="train: cancelled by the progress callback at step 3 of 50") as raised:
        lethe.run_node("LetheUnlearn", inputs, "4", str(tmp_path), progress)
    assert type(raised.value) is lethe.Cancelled and isinstance(raised.value, lethe.LetheError)
    assert max(steps) == 3
    # A text instead of False cancels too, and is the reason the message gives.
    steps.clear()
    with pytest.raises(lethe.Cancelled, match=r"train: cancelled \(SIGINT\) at step 1 of 50"):
        lethe.run_node("LetheUnlearn", inputs, "5", str(tmp_path / "by-signal"), lambda event: "SIGINT")
    checkpoints = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs if f == "checkpoint.safetensors"]
    assert checkpoints, "a cancel leaves a checkpoint"
    # Any other error stays a plain LetheError.
    with pytest.raises(lethe.LetheError) as other:
        lethe.load_safetensors(str(tmp_path / "missing.safetensors"))
    assert type(other.value) is lethe.LetheError


def test_the_type_stub_matches_the_module(tmp_path):
    """python_bridge/_lethe.pyi is what pybind11-stubgen makes of the built module (`make stub`)."""
    import subprocess
    import sys

    from conftest import ROOT

    bridge = os.path.join(ROOT, "python_bridge")
    done = subprocess.run([sys.executable, "-m", "pybind11_stubgen", "_lethe", "-o", str(tmp_path), "--exit-code"],
                          cwd=bridge, env=dict(os.environ, PYTHONPATH=bridge), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with open(os.path.join(bridge, "_lethe.pyi")) as f:
        committed = f.read()
    assert (tmp_path / "_lethe.pyi").read_text() == committed, "python_bridge/_lethe.pyi is stale: run `make stub`"
    assert "class Cancelled(LetheError)" in committed and "def run_node(" in committed


@needs_bench
def test_bench_data_names_its_forget_pieces_field_on_a_bad_list(lethe, tmp_path):
    """'0,1' and 'all' are lists; an empty item ('0,,3', '0,') or a piece outside 0..9 is an error
    naming the field and what it got, not the list without the empty item."""
    import pytest

    def data(pieces):
        return lethe.run_node("LetheBenchData", {"task": "data", "forget_pieces": pieces, "concept": "sneaker",
                                                 "anchor": "footwear", "retain_limit": 8}, "1", str(tmp_path))[0]

    assert data("0, 1")[0] is not None
    for bad in ["0,,3", "0,", ",2", "10", "x", ","]:
        with pytest.raises(lethe.LetheError, match=r"forget_pieces.*expected 'all' or a comma-separated list of "
                                                   r"pieces 0\.\.9, got '" + re.escape(bad) + "'"):
            data(bad)


def test_the_siss_node_takes_the_caption_ablation_and_names_what_is_missing(lethe, tmp_path):
    import pytest

    settings = {"method": "siss", "lambda": 0.5, "scaling_norm": 30.0, "ablation_weight": 1.0}
    lethe.run_node("LetheObjectiveSISS", dict(settings, ablation_words="artist_lethe, piece_*"), "3", str(tmp_path))
    with pytest.raises(lethe.LetheError, match="ablation_words: expected the words to remove"):
        lethe.run_node("LetheObjectiveSISS", dict(settings, ablation_words=" , "), "3", str(tmp_path))
    with pytest.raises(lethe.LetheError, match=r"node 3 .*ablation_weight.*method siss only.*siss_no_is"):
        lethe.run_node("LetheObjectiveSISS", dict(settings, method="siss_no_is", ablation_words="x"), "3", str(tmp_path))
    # Off (0): the words are not needed.
    lethe.run_node("LetheObjectiveSISS", dict(settings, ablation_weight=0.0), "3", str(tmp_path))
    # The preservation term's widget
    ablated = dict(settings, ablation_words="artist_lethe, piece_*")
    lethe.run_node("LetheObjectiveSISS", dict(ablated, preservation_weight=1.0, ablation_inputs="retain_same_caption"), "3",
                   str(tmp_path))
    with pytest.raises(lethe.LetheError, match=r"node 3 .*'ablation_inputs'.*anchor"):
        lethe.run_node("LetheObjectiveSISS", dict(ablated, ablation_inputs="anchor"), "3", str(tmp_path))
    with pytest.raises(lethe.LetheError, match=r"node 3 .*'preservation_weight'.*-1 is below the minimum 0"):
        lethe.run_node("LetheObjectiveSISS", dict(ablated, preservation_weight=-1.0), "3", str(tmp_path))
