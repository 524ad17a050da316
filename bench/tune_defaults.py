"""How the unlearning defaults were chosen: each trial is one `lethe unlearn` with the
settings below (on top of bench/configs/siss-tf.json's data, timesteps and frequency
selection) and the default `lethe eval` of its model (seed 0). Writes bench/tuning.json
(README section `tuning`, see bench/doc_tables.py). About 5 minutes per trial on 2 cores.

    .venv/bin/python bench/tune_defaults.py                 # run every trial
    .venv/bin/python bench/tune_defaults.py --reuse DIR     # collect DIR/<trial>/{run,eval} instead
    .venv/bin/python bench/tune_defaults.py --only t9,t10   # run these trials, keep the other rows
                                                            # of bench/tuning.json (each names its base)

The trials are scored with the same evaluation `make unlearning-check` reports; there is
no separate tuning split.
"""
import argparse
import copy
import json
import os
import shutil
import subprocess

from model_hashes import TABLE_PRECISION, default_recipe

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LETHE = os.environ.get("LETHE_EXE", os.path.join(ROOT, "build", "lethe"))
BENCH = os.path.join(ROOT, "models", "bench")


def trainer(steps, lr, dropout=0.0, ema=0.0):
    out = {"steps": steps, "batch_size": 16, "seed": 0, "retain_caption_dropout": dropout,
           "optimizer": {"learning_rate": lr}}
    if ema:
        out["ema_decay"] = ema
    return out


def siss(scaling_norm):
    return {"objective": "siss", "objective_config": {"lambda": 0.5, "scaling_norm": scaling_norm}}


NAIVE = {"objective": "naive_deletion"}
# name (the folder of a trial), label, the settings it sets
TRIALS = [
    ("t1_naive_1e-4", "naive deletion (retain only), lr 1e-4, 100 steps", dict(NAIVE, trainer=trainer(100, 1e-4))),
    ("t3_naive_2e-5", "naive deletion, lr 2e-5, 100 steps", dict(NAIVE, trainer=trainer(100, 2e-5))),
    ("t2_siss_2e-5", "SISS N_s 5, lr 2e-5, 100 steps", dict(siss(5.0), trainer=trainer(100, 2e-5))),
    ("t4_naive_1e-4_drop", "naive deletion, lr 1e-4, 100 steps, retain caption dropout 0.1",
     dict(NAIVE, trainer=trainer(100, 1e-4, 0.1))),
    ("t5_siss_1e-4_drop", "SISS N_s 5, lr 1e-4, 100 steps, caption dropout 0.1", dict(siss(5.0), trainer=trainer(100, 1e-4, 0.1))),
    ("t6_siss_3e-5_drop_ns30_160", "SISS N_s 30, lr 3e-5, 160 steps, caption dropout 0.1 (the defaults)",
     dict(siss(30.0), trainer=trainer(160, 3e-5, 0.1))),
    # After the descriptor (8000 steps) and classifier (5000 steps) were retrained: less change for FID.
    ("t7_siss_1.5e-5_160", "SISS N_s 30, lr 1.5e-5, 160 steps, caption dropout 0.1",
     dict(siss(30.0), trainer=trainer(160, 1.5e-5, 0.1))),
    ("t8_siss_3e-5_80", "SISS N_s 30, lr 3e-5, 80 steps, caption dropout 0.1", dict(siss(30.0), trainer=trainer(80, 3e-5, 0.1))),
    # After the base model was retrained with each artist piece repeated 400 times (the 200-repeat
    # base did not memorize every piece) and EMA weights became usable in unlearning runs.
    ("t9_siss_defaults", "SISS N_s 30, lr 3e-5, 160 steps, caption dropout 0.1", dict(siss(30.0), trainer=trainer(160, 3e-5, 0.1))),
    ("t10_siss_ema0.98", "SISS N_s 30, lr 3e-5, 160 steps, caption dropout 0.1, EMA 0.98",
     dict(siss(30.0), trainer=trainer(160, 3e-5, 0.1, 0.98))),
    ("t11_siss_lora8", "SISS N_s 30, LoRA rank 8 (attention + feed-forward), lr 3e-4, 160 steps, caption dropout 0.1",
     dict(siss(30.0), trainable="lora", lora={"rank": 8, "alpha": 8.0}, trainer=trainer(160, 3e-4, 0.1))),
]


def trial_config(settings):
    config = default_recipe()
    config.pop("objective_config")
    config.update(copy.deepcopy(settings))
    return config


def evaluate(model, out):
    subprocess.run([LETHE, "eval", "--model", model, "--out", out, "--precision", TABLE_PRECISION,
                    "--descriptor", os.path.join(BENCH, "descriptor.safetensors"),
                    "--classifier", os.path.join(BENCH, "classifier.safetensors")], check=True)
    with open(os.path.join(out, "report.json")) as f:
        return json.load(f)


def metrics(evaluation):
    return {k: evaluation[k] for k in ("memorization_rate", "fid", "class_accuracy")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reuse", help="folder with <trial>/run and <trial>/eval from earlier runs")
    parser.add_argument("--only", default="", help="comma-separated trial names (or their tN prefixes) to run; "
                        "the other trials keep their rows from bench/tuning.json, each labelled with its base model")
    args = parser.parse_args()
    work = args.reuse or os.path.join(HERE, "tmp", "tuning")
    only = [p for p in args.only.split(",") if p]
    out = os.path.join(HERE, "tuning.json")
    previous = {"bases": {}, "trials": []}
    if only and os.path.exists(out):
        with open(out) as f:
            previous = json.load(f)
    kept = {row["trial"]: row for row in previous["trials"]}
    with open(os.path.join(BENCH, "base.card.json")) as f:
        base_sha256 = json.load(f)["sha256"]
    rows = []
    for name, label, settings in TRIALS:
        if only and not any(name == p or name.startswith(p + "_") for p in only):
            if name in kept:
                rows.append(kept[name])
            continue
        folder = os.path.join(work, name)
        config = trial_config(settings)
        if not args.reuse:
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump(dict(config, precision=TABLE_PRECISION), f)
            subprocess.run([LETHE, "unlearn", "--config", os.path.join(folder, "config.json"), "--out",
                            os.path.join(folder, "run")], check=True)
            report = evaluate(os.path.join(folder, "run", "model.safetensors"), os.path.join(folder, "eval"))
        else:
            with open(os.path.join(folder, "eval", "report.json")) as f:
                report = json.load(f)
        rows.append({"trial": name, "label": label, "config": config, "base_sha256": base_sha256,
                     "descriptor_sha256": report["settings"]["descriptor"]["sha256"], **metrics(report["models"]["evaluated"])})
    # The base model scored with the same descriptor as the trials (its evaluation is cached).
    base_report = os.path.join(work, "base-eval", "report.json")
    if args.reuse and os.path.exists(base_report):
        with open(base_report) as f:
            report = json.load(f)
    else:
        report = evaluate(os.path.join(BENCH, "base.safetensors"), os.path.join(work, "base-eval"))
    bases = dict(previous.get("bases", {}))
    bases[base_sha256] = dict(metrics(report["models"]["evaluated"]),
                              descriptor_sha256=report["settings"]["descriptor"]["sha256"])
    used = {row.get("base_sha256") for row in rows}
    bases = {sha: value for sha, value in bases.items() if sha in used or sha == base_sha256}
    with open(out + ".tmp", "w") as f:
        json.dump({"bases": bases, "trials": rows}, f, indent=1)
    os.replace(out + ".tmp", out)
    print("->", out)


if __name__ == "__main__":
    main()
