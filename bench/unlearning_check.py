"""`make unlearning-check`: the engine's acceptance run on the bench, with the default settings
of bench/configs/siss-tf.json (SISS with time-frequency selection), then the default bench
evaluation of base / unlearned / retrained. Writes bench/unlearning.json (README section
`unlearning`, see bench/doc_tables.py) with the targets beside the measurements:
memorization of the forget captions from >= 0.8 to <= 0.10, at most 1% of the base model's
training compute (steps x batch), FID within 1.15x of base, class accuracy within 3 points.
"""
import json
import os
import shutil
import subprocess
import sys

from model_hashes import TABLE_PRECISION, bench_model_hashes

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LETHE = os.environ.get("LETHE_EXE", os.path.join(ROOT, "build", "lethe"))
BENCH = os.path.join(ROOT, "models", "bench")


def main():
    work = os.path.join(HERE, "tmp", "unlearning-check")
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    config = os.path.join(HERE, "configs", "siss-tf.json")
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
    checks = {
        "memorization_before": {"value": before["memorization_rate"], "target": ">= 0.8", "ok": before["memorization_rate"] >= 0.8},
        "memorization_after": {"value": after["memorization_rate"], "target": "<= 0.10", "ok": after["memorization_rate"] <= 0.10},
        "compute_fraction": {"value": compute, "target": "<= 0.01", "ok": compute <= 0.01},
        "fid_ratio": {"value": after["fid"] / before["fid"], "target": "<= 1.15", "ok": after["fid"] / before["fid"] <= 1.15},
        "class_accuracy_drop": {"value": before["class_accuracy"] - after["class_accuracy"], "target": "<= 0.03",
                                "ok": before["class_accuracy"] - after["class_accuracy"] <= 0.03},
    }
    result = {"config": json.load(open(config)), "summary": summary, "models": report["models"],
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
