"""Run-state integrity: a run is exactly itself. A resume happens only when everything that
determines the result matches (model weights, data, objective, selections, trainer settings,
seed); otherwise the headless run refuses in a few lines naming what differs, and config.json,
summary.json and the model's metadata always agree. A cancelled, failed or killed run
continues with `lethe run --resume` to the byte-identical result of an uninterrupted run, and a
kill -9 loses at most the checkpoint interval."""
import json
import os
import time

import pytest

from lethe_helpers import (BASE, RETRAINED, api, assert_clean, checkpoint_step, error_line, interrupt, lethe, metadata,
                           start, wait_for)

CONFIG = {"data": {"preset": "bench", "task": "data", "retain_limit": 64}, "objective": "siss",
          "timesteps": {"t_min": 250, "t_max": 750}, "frequency": {"filter": "lowpass", "cutoff": 0.5},
          "trainer": {"steps": 30, "batch_size": 4, "seed": 3, "checkpoint_every": 1}}


def write_config(tmp_path, name, config):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def with_changes(**changes):
    config = json.loads(json.dumps(CONFIG))
    for dotted, value in changes.items():
        node = config
        *parents, key = dotted.split("__")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    return config


def cancelled_run(tmp_path, out, how="sigint", config=CONFIG, at_step=3):
    process = start("unlearn", "--config", write_config(tmp_path, "first", config), "--out", out)
    wait_for(lambda: checkpoint_step(out / "checkpoint.safetensors") >= at_step, process, what="a checkpoint")
    code, err = interrupt(process, how)
    assert code == (130 if how == "sigint" else -9), err
    return checkpoint_step(out / "checkpoint.safetensors")


def test_a_changed_run_never_resumes_a_cancelled_one_and_the_same_run_does(tmp_path):
    out = tmp_path / "run"
    step = cancelled_run(tmp_path, out)
    assert step >= 3
    changed = {
        "timesteps.t_min (was 250, now 300)": with_changes(timesteps__t_min=300),
        "frequency.cutoff (was 0.5, now 0.25)": with_changes(frequency__cutoff=0.25),
        "trainer.steps (was 30, now 2)": with_changes(trainer__steps=2),  # below the checkpoint's step
        "model weights": dict(CONFIG, model=RETRAINED),
        "data (images, captions or masks)": with_changes(data__forget_pieces=[0, 1]),
        "trainer.seed (was 3, now 4)": with_changes(trainer__seed=4),
    }
    for difference, config in changed.items():
        done = lethe("unlearn", "--config", write_config(tmp_path, "changed", config), "--out", out)
        assert done.returncode == 1, done.stderr
        assert_clean(done.stderr, "holds a different run", difference, str(out), limit=600)
        assert checkpoint_step(out / "checkpoint.safetensors") == step, "the cancelled run's checkpoint is untouched"
        assert not (out / "model.safetensors").exists()

    # The same run resumes and its result equals an uninterrupted run's, byte for byte.
    resumed = lethe("unlearn", "--config", write_config(tmp_path, "same", CONFIG), "--out", out)
    assert resumed.returncode == 0, resumed.stderr
    straight = lethe("unlearn", "--config", write_config(tmp_path, "same", CONFIG), "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "straight" / "model.safetensors").read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    meta = metadata(out / "model.safetensors")
    assert summary["resumed"] is True and not (out / "checkpoint.safetensors").exists()
    assert summary["steps"] == config["trainer"]["steps"] == int(meta["steps"]) == 30
    assert config["trainer"]["seed"] == int(meta["seed"]) == 3
    assert json.loads(meta["timesteps"])["t_min"] == config["timesteps"]["t_min"] == 250
    assert meta["source_model_sha256"] == json.load(open(BASE.replace(".safetensors", ".card.json")))["sha256"]
    identity = json.loads((out / "identity.json").read_text())
    assert identity["trainer"]["steps"] == 30 and len(identity["model"]) == 64 and len(identity["data"]) == 64


def test_two_runs_into_one_folder_never_share_it(tmp_path):
    out = tmp_path / "run"
    config = write_config(tmp_path, "long", with_changes(trainer__steps=400))
    first = start("unlearn", "--config", config, "--out", out)
    wait_for(lambda: checkpoint_step(out / "checkpoint.safetensors") >= 1, first, what="the first run training")
    second = lethe("unlearn", "--config", config, "--out", out)
    assert second.returncode == 1
    assert_clean(second.stderr, "in use by another Lethe process", str(out))
    interrupt(first, "sigint")


def test_kill_9_loses_at_most_the_checkpoint_interval(tmp_path):
    out = tmp_path / "run"
    config = with_changes(trainer__steps=3000, trainer__checkpoint_every=0, trainer__checkpoint_seconds=0.5)
    process = start("unlearn", "--config", write_config(tmp_path, "timed", config), "--out", out)
    checkpoint = out / "checkpoint.safetensors"
    wait_for(lambda: checkpoint_step(checkpoint) >= 2, process, what="a timed checkpoint")
    # Several intervals of training (counted in checkpoints, so a busy machine only waits longer).
    wait_for(lambda: checkpoint_step(checkpoint) >= 4, process, what="more timed checkpoints")
    time.sleep(0.75)
    killed_at = time.time()
    code, _ = interrupt(process, "kill")
    assert code == -9
    # The last checkpoint was written within one interval plus one step (and its save) of the
    # kill. A step's time is this run's own average, from the checkpoint, so that a busy machine
    # (slower steps) widens the bound instead of failing it.
    step = checkpoint_step(checkpoint)
    assert step >= 4
    seconds_per_step = float(metadata(checkpoint)["seconds"]) / step
    assert killed_at - os.path.getmtime(checkpoint) < 0.5 + max(1.5, 3 * seconds_per_step)
    # And the run continues from it.
    resumed = start("unlearn", "--config", write_config(tmp_path, "timed", config), "--out", out)
    wait_for(lambda: checkpoint_step(checkpoint) > step, resumed, what="the resumed run saving again")
    interrupt(resumed, "sigint")


WORKFLOW = {
    1: ("LetheBenchData", {"task": "data", "forget_pieces": "0,1", "retain_limit": 64}),
    2: ("LetheBenchModel", {"which": "base"}),
    3: ("LetheObjectiveSISS", {"method": "siss", "lambda": 0.5, "scaling_norm": 5.0}),
    4: ("LetheUnlearn", {"model": ["2", 0], "objective": ["3", 0], "forget": ["1", 0], "retain": ["1", 1], "steps": 20,
                         "batch_size": 4, "learning_rate": 1e-4, "seed": 0, "trainable": "full", "lora_rank": 4,
                         "retain_caption_dropout": 0.1, "checkpoint_minutes": 0.005}),
    5: ("LetheSaveModel", {"model": ["4", 0], "filename_prefix": "saved/model"}),
}


@pytest.mark.parametrize("how", ["sigint", "kill"])
def test_lethe_run_resume_continues_to_the_uninterrupted_result(tmp_path, how):
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(api(WORKFLOW)))
    straight = lethe("run", workflow, "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr

    out = tmp_path / "run"
    process = start("run", workflow, "--out", out)
    checkpoint = out / "unlearn-node-4" / "checkpoint.safetensors"
    wait_for(lambda: checkpoint_step(checkpoint) >= 3, process, what="the unlearn node's checkpoint")
    code, err = interrupt(process, how)
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == ("cancelled" if how == "sigint" else "running")
    if how == "sigint":
        assert code == 130 and "lethe run --resume" in err
    else:  # a fresh run into the folder finds the killed one and marks it
        again = lethe("run", workflow, "--out", out)
        assert again.returncode == 1
        assert_clean(again.stderr, "already holds a run (status: interrupted)", "lethe run --resume")
        assert json.loads((out / "run.json").read_text())["status"] == "interrupted"

    resumed = lethe("run", "--resume", out)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "success" and record["resumed"] == 1
    summary = json.loads((out / "unlearn-node-4" / "summary.json").read_text())
    assert summary["resumed"] is True
    saved = out / "saved" / "model_00001_.safetensors"
    assert saved.read_bytes() == (tmp_path / "straight" / "saved" / "model_00001_.safetensors").read_bytes()
    assert not (out / "saved" / "model_00002_.safetensors").exists()

    finished = lethe("run", "--resume", out)
    assert finished.returncode == 1
    assert_clean(finished.stderr, "finished; nothing to resume")


def test_resume_reuses_finished_output_nodes_and_retrains_nothing(tmp_path):
    """After a failure downstream of a finished unlearn node, --resume reuses the finished run
    (no second training) and the finished save (no second file)."""
    graph = dict(WORKFLOW)
    graph[6] = ("LetheLoadModel", {"path": str(tmp_path / "not-yet.safetensors")})
    graph[7] = ("LetheSaveModel", {"model": ["6", 0], "filename_prefix": "second"})
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(api(graph)))
    out = tmp_path / "run"
    failed = lethe("run", workflow, "--out", out)
    assert failed.returncode == 1 and "lethe run --resume" in failed.stderr
    os.link(str(BASE), str(tmp_path / "not-yet.safetensors"))  # the missing input appears
    trained = (out / "unlearn-node-4" / "summary.json").stat().st_mtime_ns
    resumed = lethe("run", "--resume", out)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["nodes"]["5"]["reused"] is True and "reused" not in record["nodes"]["7"]
    assert (out / "unlearn-node-4" / "summary.json").stat().st_mtime_ns == trained
    assert sorted(p.name for p in (out / "saved").iterdir()) == ["model_00001_.safetensors"]
    assert (out / "second_00001_.safetensors").exists()


def test_a_failed_final_save_keeps_the_trained_state_and_says_where(tmp_path):
    out = tmp_path / "run"
    config = write_config(tmp_path, "short", with_changes(trainer__steps=4, trainer__checkpoint_every=0))
    # The same run's folder (a run starts only in a new or empty one, or its own): a finished run,
    # its results taken away and its model's name blocked by a folder, so the final save must fail.
    assert lethe("unlearn", "--config", config, "--out", out).returncode == 0
    for name in ("summary.json", "model.safetensors"):
        (out / name).unlink()
    (out / "model.safetensors").mkdir()
    failed = lethe("unlearn", "--config", config, "--out", out)
    assert failed.returncode == 1
    assert_clean(error_line(failed.stderr), "could not save", "model.safetensors", "the trained state is kept in",
                 "checkpoint.safetensors", "run the same command again")
    assert checkpoint_step(out / "checkpoint.safetensors") == 4
    (out / "model.safetensors").rmdir()
    saved = lethe("unlearn", "--config", config, "--out", out)
    assert saved.returncode == 0, saved.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"] is True and summary["steps"] == 4 and not (out / "checkpoint.safetensors").exists()
    straight = lethe("unlearn", "--config", config, "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "straight" / "model.safetensors").read_bytes()
