"""`make distributed-scaling`: the default unlearning run (bench/configs/siss-tf.json, shortened
to --steps steps) in one process and data-parallel over 2 and 4 ranks on this machine (Gloo on
loopback, `python -m python_bridge.distributed unlearn --nproc N`, each rank with its share of
the cores). Writes bench/distributed_scaling.json (docs/distributed.md section `scaling`, see
bench/doc_tables.py): seconds per training step, rank 0's all-reduce and all-gather seconds and
bytes per step, speedup over one process and efficiency (speedup / ranks).

One process uses every core; N ranks split them, so on a machine with fewer cores than ranks
the ranks share cores and the table shows that cost, not a network's.
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys

from model_hashes import DEFAULT_RECIPE, bench_model_hashes, default_recipe

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LETHE = os.environ.get("LETHE_EXE", os.path.join(ROOT, "build", "lethe"))
CONFIG = DEFAULT_RECIPE


def run(work, ranks, steps):
    out = os.path.join(work, f"ranks-{ranks}")
    settings = ["--config", CONFIG, "--out", out, "--set", f"trainer.steps={steps}", "--set",
                "trainer.checkpoint_seconds=0"]
    if ranks == 1:
        command = [LETHE, "unlearn", *settings]
    else:
        command = [sys.executable, "-m", "python_bridge.distributed", "unlearn", "--nproc", str(ranks), *settings]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    row = {"ranks": ranks, "seconds_per_step": summary["seconds_per_step"], "threads_per_rank":
           summary["machine"]["threads"], "precision": summary["precision"]["used"], "steps": summary["steps"]}
    collectives = summary.get("distributed", {}).get("collectives", {})
    for kind in ("all_reduce", "all_gather"):
        traffic = collectives.get(kind, {"calls": 0, "bytes": 0, "seconds": 0.0})
        row[f"{kind}_seconds_per_step"] = traffic["seconds"] / summary["steps"]
        row[f"{kind}_bytes_per_step"] = traffic["bytes"] / summary["steps"]
    return row, summary["machine"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    if args.ranks[0] != 1:
        parser.error("--ranks must start with 1 (the one-process run the others are compared with)")
    work = os.path.join(HERE, "tmp", "distributed-scaling")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rows, machine = [], None
    for ranks in args.ranks:
        row, machine = run(work, ranks, args.steps)
        rows.append(row)
        print(f"{ranks} rank(s): {row['seconds_per_step']:.3f} s/step", flush=True)
    one = rows[0]["seconds_per_step"]
    for row in rows:
        row["speedup"] = one / row["seconds_per_step"]
        row["efficiency"] = row["speedup"] / row["ranks"]
    result = {"date": datetime.date.today().isoformat(),
              "machine": {"cpu": machine["cpu"], "threads_one_process": rows[0]["threads_per_rank"]},
              "config": os.path.relpath(CONFIG, ROOT), "recipe": default_recipe(), "steps": args.steps, "rows": rows,
              "models_sha256": bench_model_hashes("base")}
    with open(os.path.join(HERE, "distributed_scaling.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {os.path.join(HERE, 'distributed_scaling.json')}")


if __name__ == "__main__":
    main()
