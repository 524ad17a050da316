"""`make unlearning-check`: the engine's acceptance run on the bench, with the default settings
of bench/configs/siss-tf.json (SISS with time-frequency selection), then the default bench
evaluation of base / unlearned / retrained. Writes bench/unlearning.json (README section
`unlearning`, see bench/doc_tables.py) with the targets beside the measurements:
memorization of the forget captions from >= 0.8 to <= 0.05, normalized SSCD <= 0.10 (the
retrained model's level is 0), at most 1% of the base model's training compute (steps x batch),
FID within 1.10x of base, class accuracy within 1 point.
"""
import json
import os
import shutil
import subprocess
import sys

from model_hashes import DEFAULT_RECIPE, TABLE_PRECISION, bench_model_hashes, default_recipe

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LETHE = os.environ.get("LETHE_EXE", os.path.join(ROOT, "build", "lethe"))
BENCH = os.path.join(ROOT, "models", "bench")


# The data task's acceptance (the quality issue's bounds): forgetting to the retrained model's
# level without costing quality. Accuracies are counts over 500 samples: a tolerance far below one
# sample keeps float rounding of the difference from deciding.
TOLERANCE = 1e-9


def acceptance(before, after, compute):
    """{check: {value, target, ok}} from the base and unlearned models' report entries."""
    def entry(value, target, ok):
        return {"value": value, "target": target, "ok": bool(ok)}
    fid_ratio = after["fid"] / before["fid"]
    drop = before["class_accuracy"] - after["class_accuracy"]
    return {
        "memorization_before": entry(before["memorization_rate"], ">= 0.8", before["memorization_rate"] >= 0.8),
        "memorization_after": entry(after["memorization_rate"], "<= 0.05", after["memorization_rate"] <= 0.05),
        "normalized_sscd": entry(after["normalized_sscd"], "<= 0.10", after["normalized_sscd"] <= 0.10 + TOLERANCE),
        "compute_fraction": entry(compute, "<= 0.01", compute <= 0.01 + TOLERANCE),
        "fid_ratio": entry(fid_ratio, "<= 1.10", fid_ratio <= 1.10 + TOLERANCE),
        "class_accuracy_drop": entry(drop, "<= 0.01", drop <= 0.01 + TOLERANCE),
    }


def main():
    work = os.path.join(HERE, "tmp", "unlearning-check")
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    config = DEFAULT_RECIPE
    subprocess.run([LETHE, "unlearn", "--config", config, "--out", os.path.join(work, "run"),
                    "--set", f"precision={TABLE_PRECISION}"], check=True)
    subprocess.run([LETHE, "eval", "--model", os.path.join(work, "run", "model.safetensors"), "--precision", TABLE_PRECISION,
                    "--baseline", os.path.join(BENCH, "base.safetensors"),
                    "--reference", os.path.join(BENCH, "retrained.safetensors"), "--out", os.path.join(work, "eval")],
                   check=True)
    with open(os.path.join(work, "run", "summary.json")) as f:
        summary = json.load(f)
    for key in [k for k in summary if k.endswith("_file")]:  # repository-relative, like every recorded path
        summary[key] = os.path.relpath(summary[key], ROOT)
    with open(os.path.join(work, "eval", "report.json")) as f:
        report = json.load(f)
    with open(os.path.join(BENCH, "base.card.json")) as f:
        card = json.load(f)
    before, after, reference = (report["models"][k] for k in ("baseline", "evaluated", "reference"))
    base_compute = card["config"]["steps"] * card["config"]["batch_size"]
    compute = summary["samples_seen"] / base_compute
    checks = acceptance(before, after, compute)
    result = {"config": default_recipe(), "summary": summary, "models": report["models"],
              "models_sha256": bench_model_hashes("base", "retrained", "descriptor", "classifier"),
              "counts": report["counts"], "checks": checks, "pass": all(c["ok"] for c in checks.values())}
    os.makedirs(os.path.join(HERE, "unlearning"), exist_ok=True)
    shutil.copy(os.path.join(work, "eval", "report.png"), os.path.join(HERE, "unlearning", "report.png"))
    shutil.copy(os.path.join(work, "run", "loss.png"), os.path.join(HERE, "unlearning", "loss.png"))
    out = os.path.join(HERE, "unlearning.json")
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(out + ".tmp", out)
    print(json.dumps(checks, indent=1))
    print("pass" if result["pass"] else "TARGETS MISSED", "->", out)
    sys.path.insert(0, HERE)
    import doc_tables

    doc_tables.main()


if __name__ == "__main__":
    main()
