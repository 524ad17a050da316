"""`make precision-check`: does bf16 mixed precision unlearn as well as fp32? The default
unlearning (bench/configs/siss-tf.json) and the default evaluation of its model, both in
one precision, for several training seeds in fp32 and in bf16 on this machine. Writes
bench/precision_parity-<hardware>.json, one file per kind of bf16 hardware (amx_bf16: Intel
AMX tiles; avx512_bf16: AVX-512 bf16 dot products, e.g. AMD Zen 4), since bf16 is computed by
other kernels on each (docs/performance.md sections `precision-parity-*`, see
bench/doc_tables.py): each metric's per-seed values, mean and spread (max - min) per
precision, and whether the bf16 mean lies within the fp32 seed-to-seed spread of the fp32
mean.

The evaluation runs without the attacks (their relearning counts steps in tens, too coarse
to compare precisions) and without baseline/reference, so normalized SSCD is not among the
metrics; mean SSCD to the forget images stands for it.
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import statistics

from model_hashes import DEFAULT_RECIPE, bench_model_hashes, default_recipe

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LETHE = os.environ.get("LETHE_EXE", os.path.join(ROOT, "build", "lethe"))
METRICS = ("memorization_rate", "sscd_mean", "fid", "class_accuracy")


def measure(work, precision, seed):
    run = os.path.join(work, f"{precision}-seed{seed}")
    subprocess.run([LETHE, "unlearn", "--config", DEFAULT_RECIPE, "--out", run,
                    "--set", f"precision={precision}", "--set", f"trainer.seed={seed}"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([LETHE, "eval", "--model", os.path.join(run, "model.safetensors"), "--out", run + "-eval",
                    "--precision", precision, "--no-attacks"], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(run, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(run + "-eval", "report.json")) as f:
        evaluated = json.load(f)["models"]["evaluated"]
    row = {metric: evaluated[metric] for metric in METRICS}
    row.update(seed=seed, unlearning_seconds=summary["wall_seconds"], precision_used=summary["precision"]["used"],
               evaluation_seconds=evaluated["wall_seconds"])
    return row


def bf16_hardware(cpuinfo="/proc/cpuinfo"):
    """The CPU's bf16 instructions that name the result file: amx_bf16 before avx512_bf16, as
    `auto` decides (docs/performance.md); "none" without either."""
    try:
        with open(cpuinfo) as f:
            flags = set().union(*(line.split(":", 1)[1].split() for line in f if line.startswith("flags")))
    except OSError:
        flags = set()
    return next((flag for flag in ("amx_bf16", "avx512_bf16") if flag in flags), "none")


def summarise(rows):
    out = {}
    for metric in METRICS:
        values = [r[metric] for r in rows]
        out[metric] = {"mean": statistics.fmean(values), "spread": max(values) - min(values)}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    work = os.path.join(HERE, "tmp", "precision-parity")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rows = {precision: [measure(work, precision, seed) for seed in args.seeds] for precision in ("fp32", "bf16")}
    with open(os.path.join(work, f"fp32-seed{args.seeds[0]}", "summary.json")) as f:
        machine = json.load(f)["machine"]
    stats = {precision: summarise(r) for precision, r in rows.items()}
    parity = {}
    for metric in METRICS:
        gap = abs(stats["bf16"][metric]["mean"] - stats["fp32"][metric]["mean"])
        parity[metric] = {"gap": gap, "fp32_spread": stats["fp32"][metric]["spread"],
                          "ok": gap <= stats["fp32"][metric]["spread"]}
    hardware = bf16_hardware()
    result = {"date": datetime.date.today().isoformat(), "machine": machine, "bf16_hardware": hardware, "seeds": args.seeds,
              "config": "bench/configs/siss-tf.json", "recipe": default_recipe(),
              "rows": rows, "stats": stats, "parity": parity,
              "pass": all(p["ok"] for p in parity.values()),
              "models_sha256": bench_model_hashes("base", "descriptor", "classifier")}
    out = os.path.join(HERE, f"precision_parity-{hardware}.json")
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(out + ".tmp", out)
    import doc_tables

    print(doc_tables.precision_parity_table(result))


if __name__ == "__main__":
    main()
