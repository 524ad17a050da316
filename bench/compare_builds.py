"""Two builds of Lethe side by side on this machine: is the new one slower anywhere?

For the question "does nothing get slower on a machine where `auto` keeps fp32?", run the
`lethe` program of an older checkout (OLD, built from its own tree) and of this one (NEW) on
the same inputs, alternating which goes first each round, and compare what a user waits for:

  1. `lethe perf` (no op profile): the SISS training step at the bench shape, DDIM sampling and
     copy-descriptor scoring; NEW measures its default precision as `auto` resolves it here;
  2. `lethe unlearn` with the default bench config (wall time, peak RSS);
  3. the default `lethe eval` of that run's model (wall time);
  4. the quickstart, `lethe run workflows/quickstart.json` of each tree (wall time).

Each program runs in its own tree (its own workflows and shipped evaluation cache), as a user of
that version would run it. Writes --out/builds.json, or the --name given (docs/performance.md
sections `builds` and, from a CPU where `auto` keeps fp32, `builds-fp32` from builds-fp32.json;
bench/doc_tables.py).

    .venv/bin/python bench/compare_builds.py --old /path/to/old/checkout --out bench/amd-epyc [--rounds 2]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

from model_hashes import bench_model_hashes, file_sha256
from run_bench import run_for_json, run_with_rss

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def git_commit(tree):
    """The tree's commit, saying so when its sources differ from it (the build is of those)."""
    def git(*args):
        return subprocess.run(["git", "-C", tree, *args], check=True, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short=7", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "native", "CMakeLists.txt", "cmake")
    return commit + (" with uncommitted changes to its sources" if changed else "")


def measure(tree, unet, scratch, new):
    """One round of every stage with the `lethe` program of `tree`; returns its numbers."""
    lethe = os.path.join(tree, "build", "lethe")
    name = "new" if new else "old"
    out = {}
    perf_dir = os.path.join(scratch, f"perf-{name}")
    os.makedirs(perf_dir, exist_ok=True)
    perf_args = [lethe, "perf", "--unet", unet, "--out", perf_dir, "--profile-steps", "0",
                 "--descriptor", os.path.join(tree, "models", "bench", "descriptor.safetensors")]
    perf, _ = run_for_json(perf_args, os.path.join(scratch, f"perf-{name}.stdout"), cwd=tree)
    if "precisions" in perf:  # a version with the precision setting: its default, `auto`
        used = perf["auto_precision"]["precision"]
        out["precision"] = {"used": used, "reason": perf["auto_precision"]["reason"]}
        chosen = perf["precisions"][used]
        out["step_seconds"] = chosen["train_step"]["median_seconds"]
        out["sampling_images_per_second"] = chosen["sampling"]["images_per_second"]
        out["other_precisions"] = {q: {"step_seconds": e["train_step"]["median_seconds"],
                                       "sampling_images_per_second": e["sampling"]["images_per_second"]}
                                   for q, e in perf["precisions"].items() if q != used}
    else:  # a version from before the precision setting
        out["precision"] = {"used": "fp32", "reason": "the only precision of that version"}
        out["step_seconds"] = perf["train_step"]["median_seconds"]
        out["sampling_images_per_second"] = perf["sampling"]["images_per_second"]
    out["scoring_images_per_second"] = perf["scoring"]["images_per_second"]
    out["machine"] = perf["machine"]

    def timed(stage, args):
        """Runs `args` into a fresh scratch/<stage>-<name> (its `{dir}` placeholder); returns
        (wall seconds, peak RSS in MiB, that directory)."""
        directory = os.path.join(scratch, f"{stage}-{name}")
        subprocess.run(["rm", "-rf", directory], check=True)
        start = time.monotonic()
        _, rss = run_with_rss([a.replace("{dir}", directory) for a in args], cwd=tree,
                              stdout_path=os.path.join(scratch, f"{stage}-{name}.stdout"))
        return time.monotonic() - start, rss, directory

    config = os.path.join(scratch, f"unlearn-{name}.json")
    with open(config, "w") as f:
        json.dump({"output": os.path.join(scratch, f"unlearn-{name}")}, f)
    out["unlearn_seconds"], out["unlearn_peak_rss_mib"], run_dir = timed("unlearn", [lethe, "unlearn", "--config", config])
    with open(os.path.join(run_dir, "summary.json")) as f:
        model = json.load(f)["model_file"]
    out["eval_seconds"], _, _ = timed("eval", [lethe, "eval", "--model", model, "--out", "{dir}"])
    out["quickstart_seconds"], _, _ = timed(
        "quickstart", [lethe, "run", os.path.join(tree, "workflows", "quickstart.json"), "--out", "{dir}"])
    return out


# The stages compared, with the direction in which they are better.
STAGES = {"step_seconds": "lower", "sampling_images_per_second": "higher", "scoring_images_per_second": "higher",
          "unlearn_seconds": "lower", "unlearn_peak_rss_mib": "lower", "eval_seconds": "lower",
          "quickstart_seconds": "lower"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="an older checkout with its `lethe` built in build/")
    parser.add_argument("--out", required=True, help="folder for the result (and its tmp/ scratch)")
    parser.add_argument("--name", default="builds.json",
                        help="the result's file name: builds.json, or builds-fp32.json on a CPU where `auto` keeps fp32")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of both builds (the first to run alternates)")
    args = parser.parse_args()
    old = os.path.abspath(args.old)
    for tree in (old, ROOT):
        if not os.access(os.path.join(tree, "build", "lethe"), os.X_OK):
            raise SystemExit(f"compare_builds: expected a built program at {tree}/build/lethe; build that tree first")
    for model in ("base", "retrained", "descriptor", "classifier"):
        path = os.path.join("models", "bench", model + ".safetensors")
        if file_sha256(os.path.join(old, path)) != file_sha256(os.path.join(ROOT, path)):
            raise SystemExit(f"compare_builds: {old}/{path} is not this checkout's {path}; the builds would not run "
                             "on the same models")
    out = os.path.abspath(args.out)
    scratch = os.path.join(out, "tmp")
    os.makedirs(scratch, exist_ok=True)
    unet = os.path.join(scratch, "bench_unet.safetensors")
    subprocess.run([sys.executable, os.path.join(HERE, "python_reference.py"), "--write-unet", unet], check=True)

    rounds = {"old": [], "new": []}
    for r in range(args.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for name in order:
            print(f"round {r + 1}: {name}", flush=True)
            rounds[name].append(measure(old if name == "old" else ROOT, unet, scratch, name == "new"))

    def median(name, key):
        return statistics.median(m[key] for m in rounds[name])

    stages = {}
    for key, better in STAGES.items():
        o, n = median("old", key), median("new", key)
        ratio = o / n if better == "lower" else n / o  # > 1: the new build is better
        stages[key] = {"old": o, "new": n, "better": better, "new_vs_old": ratio}
    result = {"date": datetime.date.today().isoformat(), "rounds": args.rounds,
              "old": {"commit": git_commit(old)}, "new": {"commit": git_commit(ROOT)},
              "machine": rounds["new"][0]["machine"], "new_precision": rounds["new"][0]["precision"],
              "old_precision": rounds["old"][0]["precision"],
              "new_other_precisions": rounds["new"][0].get("other_precisions", {}),
              "stages": stages, "raw": rounds,
              # what both builds ran on (bench/doc_tables.py checks them against the shipped cards)
              "models": {**bench_model_hashes("base", "retrained", "descriptor", "classifier"),
                         "bench_unet": file_sha256(unet)}}
    with open(os.path.join(out, args.name + ".tmp"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(os.path.join(out, args.name + ".tmp"), os.path.join(out, args.name))
    for key, s in stages.items():
        print(f"{key:30s} old {s['old']:10.3f}  new {s['new']:10.3f}  new/old better-by {s['new_vs_old']:.2f}x")


if __name__ == "__main__":
    main()
