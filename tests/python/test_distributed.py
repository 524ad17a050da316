"""Data-parallel unlearning on torch.distributed (Gloo on loopback, docs/distributed.md): two
ranks train the model one process trains from the same global batches and seed; a SIGINT to
both ranks leaves a checkpoint the same command resumes to the uninterrupted two-rank run (and
one process resumes to it within float rounding);
a rank that fails, or is killed, ends the other with a message, not a hang; torchrun starts the
lethe program itself (with Python, or with --no-python); its other commands refuse to run as one
of torchrun's ranks; an evaluation split over two ranks reports what one process reports; a
workflow run headless under torchrun writes what one process writes, and a cancelled one resumes
under torchrun to it."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import LETHE_EXE, ROOT
from lethe_helpers import api, assert_clean, lethe, unshipped_model

pytestmark = pytest.mark.usefixtures("bench_models")

# Float32 throughout: bf16 would add its own rounding on top of the summation order under test.
DATA_TASK = {"data": {"preset": "bench", "task": "data", "retain_limit": 64}, "objective": "siss",
             "timesteps": {"t_min": 250, "t_max": 750}, "frequency": {"filter": "lowpass", "cutoff": 0.5},
             "trainer": {"steps": 4, "batch_size": 5, "gradient_accumulation": 2, "checkpoint_seconds": 0},
             "precision": "fp32"}
# The variational f-divergence: a critic network trained beside the model, its warm-up included.
CONCEPT_TASK = {"data": {"preset": "bench", "task": "concept"}, "objective": "f_divergence",
                "objective_config": {"form": "variational", "divergence": "js", "critic_warmup_steps": 2},
                "trainer": {"steps": 3, "batch_size": 4, "checkpoint_seconds": 0}, "precision": "fp32"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def write_config(tmp_path, config, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


def start_ranks(config_path, out, world=2, extra_by_rank=None, timeout=60):
    """`world` ranks of python -m python_bridge.distributed, started as torchrun starts them
    (its environment variables), one thread each."""
    port = free_port()
    processes = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LETHE_THREADS="1")
        extra = (extra_by_rank or {}).get(rank, [])
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "python_bridge.distributed", "unlearn", "--config", str(config_path), "--out",
             str(out), "--timeout", str(timeout), *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    return processes


def finish(processes, timeout=300):
    results = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        results.append((process.returncode, out, err))
    return results


TRAINER_LR = 3e-5  # the trainer's default learning rate, what the config runs train with


def assert_same_model(one, other, what, lr=TRAINER_LR):
    """Equal up to the order the gradient's terms are added: two ranks add their partial sums
    (Gloo), one process adds over the whole batch. Float32 rounding of that order moves each
    step's gradient by ~1e-7 relative. AdamW divides each gradient element by its running RMS,
    so an element whose gradient is mostly that rounding can move by a visible fraction of lr
    in one run and not in the other (seen on an AMD EPYC with AVX-512: up to 0.05 lr; on one
    with AVX2 only: one element of 1.03 million at 0.16 lr, every other below 0.06 lr), while
    a run on other data, or ranks that do not combine their gradients, move most weights by
    ~lr per step. Hence |a - b| <= 0.1 lr + 1e-5 |a| for all but one in 100,000 elements, and
    no element further apart than one step's move (lr), `lr` the runs'."""
    import torch

    assert one.keys() == other.keys()
    outside, count, total = [], 0, 0
    for key in one:
        apart = (one[key] - other[key]).abs()
        assert apart.max().item() <= lr, f"{what}: {key} differs by {apart.max().item():.3g}, more than lr {lr:g}"
        beyond = int((apart > 0.1 * lr + 1e-5 * one[key].abs()).sum())
        count, total = count + beyond, total + apart.numel()
        if beyond:
            outside.append(f"{key} ({beyond} of {apart.numel()}, up to {apart.max().item():.3g})")
    assert count <= total // 100_000, f"{what}: {count} of {total} elements differ by more than 0.1 lr: {outside}"


def torchrun(*args, ranks=2, cwd=ROOT, timeout=600):
    """`torchrun --nproc-per-node RANKS ARGS...` on loopback."""
    command = [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--nproc-per-node", str(ranks),
               "--master-port", str(free_port()), *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


# torchrun starts the lethe program with Python (the entry the program carries), or as it is
# with --no-python (the program hands itself to the launcher).
@pytest.mark.parametrize("config,start", [(DATA_TASK, [LETHE_EXE]), (CONCEPT_TASK, ["--no-python", LETHE_EXE])],
                         ids=["siss", "variational-js"])
def test_two_ranks_under_torchrun_train_the_one_process_model(tmp_path, config, start):
    config_path = write_config(tmp_path, config)
    single = lethe("unlearn", "--config", config_path, "--out", tmp_path / "one", env=dict(os.environ, LETHE_THREADS="1"))
    assert single.returncode == 0, single.stderr
    done = torchrun(*start, "unlearn", "--config", config_path, "--out", tmp_path / "two", "--timeout", "60")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run folder:") == 1  # rank 0 reports
    assert_same_model(weights(tmp_path / "one" / "model.safetensors"), weights(tmp_path / "two" / "model.safetensors"),
                      "two ranks against one process")
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert one["steps"] == two["steps"] == config["trainer"]["steps"]
    assert one["samples_seen"] == two["samples_seen"]  # the same global batch
    for name, value in one["final_terms"].items():
        assert two["final_terms"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    # The trained tensors' gradients in float32, summed once per step: SISS sums its retain and forget
    # gradients apart (the retain sum starts while the forget backward runs); the variational objective
    # back-propagates once per step, its buckets' sums starting from the backward's hooks.
    distributed = two["distributed"]
    collectives, steps = distributed["collectives"], config["trainer"]["steps"]
    assert distributed["ranks"] == 2 and "distributed" not in one
    numel = sum(t.numel() for key, t in weights(tmp_path / "one" / "model.safetensors").items()
                if key.startswith("diffusion_model."))  # trainable = full: the UNet (not the text encoder)
    if config["objective"] == "siss":
        assert collectives["all_reduce"]["calls"] == 2 * steps and "gradient_buckets" not in distributed
        assert collectives["all_reduce"]["bytes"] == 2 * 4 * numel * steps
    else:
        buckets = distributed["gradient_buckets"]
        assert numel * 4 / (4 << 20) <= buckets["count"] <= numel * 4 / (4 << 20) + 16  # about 4 MiB each
        assert collectives["all_reduce"]["calls"] == buckets["count"] * steps
        assert collectives["all_reduce"]["bytes"] == 4 * numel * steps
        # Every bucket whose parameters the loss reaches starts inside the backward.
        assert buckets["started_during_backward"] >= (buckets["count"] - 1) * steps, buckets
        # The same run: the folder's identity does not depend on the number of ranks.
    assert (json.loads((tmp_path / "one" / "identity.json").read_text())
            == json.loads((tmp_path / "two" / "identity.json").read_text()))
    assert sorted(os.listdir(tmp_path / "one")) == sorted(os.listdir(tmp_path / "two"))


def test_sigint_to_both_ranks_resumes_to_the_uninterrupted_run(tmp_path):
    import torch

    config = dict(DATA_TASK, trainer=dict(DATA_TASK["trainer"], steps=20, checkpoint_every=1))
    config_path = write_config(tmp_path, config)
    # The uninterrupted run through the one-line start: `lethe unlearn --nproc 2` hands it to the launcher,
    # which starts the ranks itself.
    whole = lethe("unlearn", "--nproc", "2", "--config", config_path, "--out", tmp_path / "whole",
                  env=dict(os.environ, LETHE_THREADS="1"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert json.loads((tmp_path / "whole" / "summary.json").read_text())["distributed"]["ranks"] == 2

    processes = start_ranks(config_path, tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoint.safetensors"
    end = time.time() + 180
    while not checkpoint.exists():
        assert time.time() < end and all(p.poll() is None for p in processes), "no checkpoint while training"
        time.sleep(0.05)
    for process in processes:
        process.send_signal(signal.SIGINT)
    results = finish(processes)
    assert all(code != 0 for code, _, _ in results), "the runs finished before the interrupt"
    assert all(code in (1, 130) for code, _, _ in results), [r[2][-1500:] for r in results]
    assert any("cancelled" in err for _, _, err in results)
    assert checkpoint.exists() and not (tmp_path / "run" / "summary.json").exists()

    # The same run resumed by one process: the run's identity does not hold the number of ranks.
    shutil.copytree(tmp_path / "run", tmp_path / "alone")
    alone = lethe("unlearn", "--config", config_path, "--out", tmp_path / "alone", env=dict(os.environ, LETHE_THREADS="1"))
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert json.loads((tmp_path / "alone" / "summary.json").read_text())["resumed"]

    resumed = finish(start_ranks(config_path, tmp_path / "run"))
    assert [code for code, _, _ in resumed] == [0, 0], resumed[0][2][-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resumed"] and summary["steps"] == 20
    whole, run = weights(tmp_path / "whole" / "model.safetensors"), weights(tmp_path / "run" / "model.safetensors")
    for key in whole:  # one world size on one machine: the same sums in the same order, bit for bit
        assert torch.equal(whole[key], run[key]), key
    assert_same_model(whole, weights(tmp_path / "alone" / "model.safetensors"), "resumed by one process")


def test_a_rank_with_another_run_ends_both_with_messages(tmp_path):
    config_path = write_config(tmp_path, DATA_TASK)
    results = finish(start_ranks(config_path, tmp_path / "run", extra_by_rank={1: ["--set", "trainer.seed=7"]},
                                 timeout=30), timeout=120)
    (code0, _, err0), (code1, _, err1) = results
    assert code0 == 1 and code1 == 1
    message1 = err1[err1.rindex("lethe: error:"):]
    assert_clean(message1, "rank 1", "differs from rank 0's", "seed")
    message0 = err0[err0.rindex("lethe: error:"):]
    assert_clean(message0, "rank 0 of 2", "another rank stopped")


def test_a_killed_rank_ends_the_other_without_a_hang(tmp_path):
    config = dict(DATA_TASK, trainer=dict(DATA_TASK["trainer"], steps=400, checkpoint_every=1))
    config_path = write_config(tmp_path, config)
    processes = start_ranks(config_path, tmp_path / "run", timeout=60)
    checkpoint = tmp_path / "run" / "checkpoint.safetensors"
    end = time.time() + 180
    while not checkpoint.exists():
        assert time.time() < end and all(p.poll() is None for p in processes), "no checkpoint while training"
        time.sleep(0.05)
    processes[1].kill()
    started = time.time()
    code0, _, err0 = finish(processes[:1], timeout=120)[0]
    processes[1].communicate()
    assert code0 == 1 and time.time() - started < 55  # the lost peer is noticed, not waited out
    assert_clean(err0[err0.rindex("lethe: error:"):], "rank 0 of 2", "another rank stopped")
    assert checkpoint.exists()  # the completed steps are kept


def test_commands_that_do_not_split_refuse_to_run_as_a_torchrun_rank(tmp_path):
    done = lethe("nodes", env=dict(os.environ, RANK="1", WORLD_SIZE="2"))
    assert done.returncode == 1 and done.stdout == ""
    assert_clean(done.stderr, "rank 1 of 2", "runs in one process", "unlearn, run and eval split over ranks")


# A small workflow: unlearn a few steps, save the model, score and evaluate it (small settings).
WORKFLOW_LR = 1e-4
WORKFLOW = {
    1: ("LetheBenchData", {"task": "data", "forget_pieces": "0,1", "retain_limit": 64}),
    2: ("LetheBenchModel", {"which": "base"}),
    3: ("LetheObjectiveSISS", {"method": "siss", "lambda": 0.5, "scaling_norm": 5.0}),
    4: ("LetheUnlearn", {"model": ["2", 0], "objective": ["3", 0], "forget": ["1", 0], "retain": ["1", 1], "steps": 4,
                         "batch_size": 5, "learning_rate": WORKFLOW_LR, "seed": 0, "trainable": "full", "lora_rank": 4,
                         "retain_caption_dropout": 0.1, "precision": "fp32"}),
    5: ("LetheSaveModel", {"model": ["4", 0], "filename_prefix": "saved/model"}),
    6: ("LetheEvaluate", {"model": ["4", 0], "samples_per_caption": 2, "samples_per_class": 4, "seed": 0,
                          "attacks": False, "precision": "fp32", "sampling_steps": 5}),
}


def test_a_workflow_under_torchrun_writes_what_one_process_writes(tmp_path):
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(api(WORKFLOW)))
    single = lethe("run", workflow, "--out", tmp_path / "one", env=dict(os.environ, LETHE_THREADS="1"))
    assert single.returncode == 0, single.stderr
    done = torchrun(LETHE_EXE, "run", workflow, "--out", tmp_path / "two", "--timeout", "60")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run folder:") == 1  # rank 0 reports
    one, two = (json.loads((tmp_path / name / "run.json").read_text()) for name in ("one", "two"))
    assert one["status"] == two["status"] == "success"
    assert {k: v["files"] for k, v in one["nodes"].items()} == {k: v["files"] for k, v in two["nodes"].items()}
    assert_same_model(weights(tmp_path / "one" / "saved" / "model_00001_.safetensors"),
                      weights(tmp_path / "two" / "saved" / "model_00001_.safetensors"), "the workflow's saved model",
                      lr=WORKFLOW_LR)
    summary = json.loads((tmp_path / "two" / "unlearn-node-4" / "summary.json").read_text())
    assert summary["distributed"]["ranks"] == 2
    reports = [json.loads((tmp_path / name / "evaluate-node-6" / "report.json").read_text())["models"]["evaluated"]
               for name in ("one", "two")]
    for name, value in reports[0].items():
        if isinstance(value, float) and "seconds" not in name:
            assert reports[1][name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
    # Every file rank 0 wrote, and no other: the same folder listing as one process.
    listing = [sorted(str(p.relative_to(tmp_path / name)) for p in (tmp_path / name).rglob("*")) for name in ("one", "two")]
    assert listing[0] == listing[1]


def test_a_sharded_evaluation_reports_what_one_process_reports(tmp_path):
    # A model that is not shipped (shipped ones come from the evaluation cache, not from sampling).
    model = unshipped_model(tmp_path)
    settings = write_config(tmp_path, {"samples_per_forget_caption": 2, "samples_per_class": 4, "precision": "fp32",
                                       "sampling": {"steps": 5},
                                       "attacks": {"prompt_steps": 2, "prompt_samples": 2, "relearn_max_steps": 4,
                                                   "relearn_check_every": 2, "relearn_samples": 2}}, "eval.json")
    options = ["--model", str(model), "--config", str(settings)]
    single = lethe("eval", *options, "--out", tmp_path / "one", env=dict(os.environ, LETHE_THREADS="1"))
    assert single.returncode == 0, single.stderr
    two = subprocess.run([sys.executable, "-m", "python_bridge.distributed", "eval", "--nproc", "2", *options, "--out",
                          str(tmp_path / "two"), "--timeout", "60"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env=dict(os.environ, LETHE_THREADS="1"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("report:") == 1 and single.stdout.splitlines()[-1] == two.stdout.splitlines()[-1]
    one_report = json.loads((tmp_path / "one" / "report.json").read_text())["models"]["evaluated"]
    two_report = json.loads((tmp_path / "two" / "report.json").read_text())["models"]["evaluated"]
    compared = [name for name, value in one_report.items() if isinstance(value, float) and "seconds" not in name]
    assert {"fid", "memorization_rate", "attack_prompt_success_rate", "attack_relearn_steps"} <= set(compared)
    for name in compared:  # the same samples up to the rows' summation order
        assert two_report[name] == pytest.approx(one_report[name], rel=1e-4, abs=1e-6), name
    assert sorted(os.listdir(tmp_path / "one")) == sorted(os.listdir(tmp_path / "two"))


def test_a_workflow_cancelled_under_torchrun_resumes_under_torchrun(tmp_path):
    graph = {k: v for k, v in WORKFLOW.items() if k != 6}
    graph[4] = ("LetheUnlearn", dict(graph[4][1], steps=30, checkpoint_minutes=0.002))
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(api(graph)))
    straight = lethe("run", workflow, "--out", tmp_path / "straight", env=dict(os.environ, LETHE_THREADS="1"))
    assert straight.returncode == 0, straight.stderr

    command = [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--nproc-per-node", "2", "--master-port",
               str(free_port()), LETHE_EXE, "run", str(workflow), "--out", str(tmp_path / "run")]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "run" / "unlearn-node-4" / "checkpoint.safetensors"
    end = time.time() + 180
    while not checkpoint.exists():
        assert time.time() < end and process.poll() is None, "no checkpoint while training"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # Ctrl-C: torchrun passes SIGINT, then SIGTERM, to the ranks
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "cancelled", err[-2000:]
    assert_clean(record["error"]["message"], "cancelled")
    assert err.count("lethe run --resume") >= 1
    cancel = next(line for line in err.splitlines() if line.startswith("lethe: cancelled (rank 0 of 2)"))
    assert cancel.count("node 4") == 1, cancel  # the node is named once
    assert "cancelled (SIGINT) at step" in cancel, cancel  # the reason is the signal

    resumed = torchrun(LETHE_EXE, "run", "--resume", tmp_path / "run")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "success" and record["resumed"] == 1
    assert json.loads((tmp_path / "run" / "unlearn-node-4" / "summary.json").read_text())["resumed"] is True
    assert_same_model(weights(tmp_path / "straight" / "saved" / "model_00001_.safetensors"),
                      weights(tmp_path / "run" / "saved" / "model_00001_.safetensors"), "the resumed workflow's model",
                      lr=WORKFLOW_LR)


def test_an_interrupt_while_a_rank_reports_an_error_still_ends_it_as_cancelled(monkeypatch, capsys):
    # The race a Ctrl-C to every rank can hit: one rank stops first, the other fails on the
    # missing peer, and its own SIGINT lands while it prints that error.
    from python_bridge import distributed

    def reporting(argv=None):
        try:
            raise RuntimeError("the peer stopped")
        except RuntimeError:
            raise KeyboardInterrupt

    monkeypatch.setattr(distributed, "_main", reporting)
    assert distributed.main([]) == 130
    assert "cancelled" in capsys.readouterr().err
