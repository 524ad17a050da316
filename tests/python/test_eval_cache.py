"""Evaluations of the shipped bench models are cached (they are seeded, so they never
change): a second identical evaluation reads the cache and reports the same numbers; any
change of settings misses it; an entry that cannot be read is evaluated again and replaced.
The references every evaluation compares with (descriptor embeddings of the forget and retain
images, classifier features of the real images) are cached for any model: the same numbers
with and without them."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import LETHE_EXE, ROOT
from lethe_helpers import unshipped_model

BASE = os.path.join(ROOT, "models", "bench", "base.safetensors")


# 5 DDIM steps per generation and attacks on a small budget: their results are cached with the rest.
SMALL_SETTINGS = {"sampling": {"steps": 5},
                  "attacks": {"prompt_steps": 2, "prompt_samples": 1, "relearn_max_steps": 2, "relearn_check_every": 1,
                              "relearn_samples": 1}}


def evaluate(tmp_path, name, *extra, model=BASE):
    env = dict(os.environ, LETHE_EVAL_CACHE=str(tmp_path / "cache"))
    config = tmp_path / "settings.json"
    config.write_text(json.dumps(SMALL_SETTINGS))
    done = subprocess.run([LETHE_EXE, "eval", "--model", str(model), "--samples-per-caption", "1", "--samples-per-class",
                           "1", "--config", str(config), "--out", str(tmp_path / name), *extra],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / name / "report.json").read_text())


def model_entries(tmp_path):
    """The cached model evaluations (not the references)."""
    return [tmp_path / "cache" / name for name in sorted(os.listdir(tmp_path / "cache")) if not name.startswith("references-")]


@pytest.fixture(scope="module")
def first_evaluation(tmp_path_factory):
    """The base model's first evaluation into an empty cache, once for the tests below: its report
    and the cache it left."""
    folder = tmp_path_factory.mktemp("first-evaluation")
    return evaluate(folder, "first"), folder / "cache"


def with_first_evaluation(tmp_path, first_evaluation):
    """This test's cache as the first evaluation left it (a copy); returns that evaluation's report."""
    report, cache = first_evaluation
    shutil.copytree(cache, tmp_path / "cache")
    return report


def test_shipped_model_evaluations_are_cached_exactly(tmp_path, first_evaluation):
    first = with_first_evaluation(tmp_path, first_evaluation)
    assert first["cached_evaluations"] == {}
    assert len(model_entries(tmp_path)) == 1
    second = evaluate(tmp_path, "second")
    assert list(second["cached_evaluations"]) == ["evaluated"]
    assert second["models"]["evaluated"] == first["models"]["evaluated"]
    assert first["models"]["evaluated"]["attacks"]["relearn"]["budget"] == 2  # the attacks' details come back too
    other_seed = evaluate(tmp_path, "other-seed", "--seed", "1")
    assert other_seed["cached_evaluations"] == {}
    assert other_seed["models"]["evaluated"]["sscd_mean"] != first["models"]["evaluated"]["sscd_mean"]


def measured(report):
    """The evaluated model's metrics, without its timings."""
    return {name: value for name, value in report["models"]["evaluated"].items()
            if isinstance(value, (int, float)) and "seconds" not in name}


def test_an_unreadable_cache_entry_is_evaluated_again_and_replaced(tmp_path, first_evaluation):
    from safetensors import safe_open
    from safetensors.torch import save_file

    first = with_first_evaluation(tmp_path, first_evaluation)
    [entry] = model_entries(tmp_path)
    with safe_open(str(entry), "pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
        metadata = f.metadata()
    # Its key still matches, but the values are not what Lethe writes.
    save_file(tensors, str(entry), metadata=dict(metadata, metrics='{"fid": "high"}', seconds="soon"))
    edited = evaluate(tmp_path, "edited")
    assert edited["cached_evaluations"] == {} and measured(edited) == measured(first)
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    truncated = evaluate(tmp_path, "truncated")
    assert truncated["cached_evaluations"] == {} and measured(truncated) == measured(first)
    again = evaluate(tmp_path, "again")  # the entry was replaced by a readable one
    assert list(again["cached_evaluations"]) == ["evaluated"]


def test_reference_statistics_are_cached_for_any_model_and_change_no_number(tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    model = unshipped_model(tmp_path)  # its evaluation is computed every time, against the references

    computed = evaluate(tmp_path, "computed", "--no-attacks", model=model)
    assert "cached_references" not in computed and model_entries(tmp_path) == []
    [entry] = list((tmp_path / "cache").glob("references-*.safetensors"))
    with safe_open(str(entry), "pt") as f:
        stored = {name: f.get_tensor(name) for name in f.keys()}
        stored_metadata = f.metadata()
    # 10 forget and 2000 retain images through the 128-wide descriptor, 2000 real images' features
    assert {name: list(t.shape[:1]) for name, t in stored.items()} == \
        {"forget_descriptors": [10], "retain_descriptors": [2000], "real_features": [2000]}
    assert stored["forget_descriptors"].shape[1] == stored["retain_descriptors"].shape[1] == 128

    read = evaluate(tmp_path, "read", "--no-attacks", model=model)
    assert read["cached_references"] == entry.name and measured(read) == measured(computed)
    assert read["setup_seconds"] < computed["setup_seconds"]

    # Under its key, tensors of other shapes (an edited entry; a file that cannot be read at all is
    # the model entries' case above): computed again, the same numbers, the entry replaced.
    save_file({name: t[:-1].contiguous() for name, t in stored.items()}, str(entry), metadata=stored_metadata)
    edited = evaluate(tmp_path, "edited", "--no-attacks", model=model)
    assert "cached_references" not in edited and measured(edited) == measured(computed)
    with safe_open(str(entry), "pt") as f:
        assert f.metadata() == stored_metadata
        assert all(torch.equal(f.get_tensor(name), t) for name, t in stored.items())
