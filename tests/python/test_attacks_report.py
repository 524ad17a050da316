"""The attacks in every report (native/eval/attacks.hpp, docs/evaluation.md §5): the
adversarial prompt search and the relearning attack run against each evaluated model and land
in report.json, report.png and the summary; the concept task attacks the erased class. Small
budgets (5 DDIM steps per generation): these check the plumbing and the seeded outcome on the
shipped models, not the attacks' strength (bench/attacks.json measures that)."""
import json
import os
import subprocess

from conftest import LETHE_EXE, ROOT

BENCH = os.path.join(ROOT, "models", "bench")
SMALL = {"sampling": {"steps": 5},
         "attacks": {"prompt_steps": 3, "prompt_samples": 1, "relearn_max_steps": 4, "relearn_check_every": 2,
                     "relearn_samples": 1}}


def evaluate(tmp_path, name, *extra):
    config = tmp_path / "small.json"
    config.write_text(json.dumps(SMALL))
    out = tmp_path / name
    done = subprocess.run([LETHE_EXE, "eval", "--model", os.path.join(BENCH, "base.safetensors"), "--samples-per-caption", "1",
                           "--samples-per-class", "1", "--config", str(config), "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=600)
    return done, out


def test_every_model_carries_both_attacks(tmp_path):
    done, out = evaluate(tmp_path, "data", "--reference", os.path.join(BENCH, "retrained.safetensors"))
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["attacks"]["relearn_max_steps"] == 4
    # where the time went: every stage of an evaluated model, attacks included, within the wall time
    stages = report["models"]["evaluated"]["stage_seconds"]
    assert set(stages) == {"forget captions", "class prompts", "probes", "denoising losses", "prompt attack",
                           "relearning attack"}
    assert 0 < report["setup_seconds"] and report["setup_seconds"] + sum(stages.values()) <= report["wall_seconds"]
    for name, entry in report["models"].items():
        assert 0 <= entry["attack_prompt_success_rate"] <= 1, name
        prompt, relearn = entry["attacks"]["prompt"], entry["attacks"]["relearn"]
        assert [t["caption"] for t in prompt["per_target"]] == [c["caption"] for c in report["per_caption"]]
        assert relearn["relearn_targets"] == 5 and relearn["held_out_targets"] == 5
        assert relearn["returned"] == (entry["attack_relearn_steps"] is not None)
    # The base model still draws the held-out pieces before any fine-tuning; the retrained
    # model never saw them and 4 steps on the other five do not bring them.
    assert report["models"]["evaluated"]["attack_relearn_steps"] == 0
    retrained = report["models"]["reference"]["attacks"]["relearn"]
    assert retrained["returned"] is False and retrained["checked_steps"] == [0, 2, 4]
    assert "relearned in 0 steps" in done.stdout and "relearned in > 4 steps" in done.stdout
    assert (out / "report.png").stat().st_size > 0
    assert all("fid_other_classes" not in entry for entry in report["models"].values())


def test_attacks_can_be_skipped_and_change_no_other_number(tmp_path):
    done, out = evaluate(tmp_path, "none", "--no-attacks")
    assert done.returncode == 0, done.stderr
    entry = json.loads((out / "report.json").read_text())["models"]["evaluated"]
    assert entry["attacks"] is None and entry["attack_prompt_success_rate"] is None and entry["attack_relearn_steps"] is None
    assert "relearned" not in done.stdout
    # The attacks run on copies after the measurements: every other number is the same without
    # them (make compare's snapshot evaluations rely on it, bench/compare_objectives.py).
    done, attacked = evaluate(tmp_path, "attacked")
    assert done.returncode == 0, done.stderr
    with_attacks = json.loads((attacked / "report.json").read_text())["models"]["evaluated"]
    assert with_attacks["attack_prompt_success_rate"] is not None
    def measured(e):
        return {k: v for k, v in e.items() if not k.startswith("attack") and not k.endswith("seconds")}
    assert "memorization_rate" in measured(entry) and measured(entry) == measured(with_attacks)


def test_the_concept_task_attacks_the_erased_class(tmp_path):
    done, out = evaluate(tmp_path, "concept", "--erased-concept", "sneaker")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["erased_concept"] == "sneaker"
    entry = report["models"]["evaluated"]
    assert {t["caption"] for t in entry["attacks"]["prompt"]["per_target"]} == {"sneaker footwear"}
    # The base model draws sneakers: the classifier calls most attacked samples sneaker.
    assert entry["attack_prompt_success_rate"] >= 0.5
    assert "sneaker still drawn as sneaker" in done.stdout
    # the FID of the classes kept: finite here, absent from a data-task report
    assert entry["fid_other_classes"] > 0 and entry["fid_other_classes"] != entry["fid"]


def test_an_unknown_erased_concept_is_refused_clearly(tmp_path):
    done, _ = evaluate(tmp_path, "wizard", "--erased-concept", "wizard")
    assert done.returncode != 0
    assert "evaluation.erased_concept" in done.stderr and "sneaker" in done.stderr and "'wizard'" in done.stderr
    assert "Traceback" not in done.stderr and "c10::" not in done.stderr
