"""`make bench`: native vs the Python eager reference, measured side by side in one run.

Runs (each in its own process, so peak RSS is per process):
  1. bench/python_reference.py --write-unet: the bench-shaped UNet's weights for both sides;
  2. `lethe perf`: native ceilings, SISS step, sampling, scoring, scaling (+ scaling.png);
  3. bench/python_reference.py: the same SISS step and sampling with diffusers, FLOPs counted;
  4. `lethe unlearn` with the default bench config (peak RSS of a real unlearning run).
Writes bench/results.json, prints a short table and rewrites the README's benchmark table
(bench/doc_tables.py, section `performance`). `--tiny` runs every path at toy sizes (the smoke test in `make test`;
its numbers mean nothing and it writes only to --out).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

from model_hashes import bench_model_hashes

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LETHE = os.environ.get("LETHE_EXE", os.path.join(ROOT, "build", "lethe"))
BENCH = os.path.join(ROOT, "models", "bench")


def run_with_rss(args, **kwargs):
    """Runs a process to completion (stdout to `stdout_path`); reaps it with os.wait4 to read
    its own peak RSS. Returns (stdout text, peak RSS in MiB)."""
    out_path = kwargs.pop("stdout_path")
    err_path = out_path + ".stderr"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen(args, stdout=out, stderr=err, **kwargs)
        _, status, usage = os.wait4(process.pid, 0)
        code = os.waitstatus_to_exitcode(status)
    if code != 0:
        with open(err_path) as f:
            raise SystemExit(f"{' '.join(map(str, args))} failed with exit code {code}:\n{f.read()[-4000:]}")
    with open(out_path) as f:
        return f.read(), usage.ru_maxrss / 1024.0  # KiB -> MiB on Linux


def last_json(text):
    start = text.find("{")
    return json.loads(text[start:])


def markdown_table(results):
    n, p = results["native"], results["python"]
    r = results["ratios"]
    m = n["machine"]
    rows = [
        ("SISS training step, batch %d (median of %d)" % (n["train_step"]["batch"], n["train_step"]["timed_steps"]),
         "%.3f s" % n["train_step"]["median_seconds"], "%.3f s" % p["train_step"]["median_seconds"],
         "%.2fx" % r["train_step_speedup"]),
        ("DDIM sampling, %d steps, batch %d, guidance" % (n["sampling"]["steps"], n["sampling"]["batch"]),
         "%.1f img/s" % n["sampling"]["images_per_second"], "%.1f img/s" % p["sampling"]["images_per_second"],
         "%.2fx" % r["sampling_speedup"]),
        ("Copy descriptor, batch %d" % n["scoring"]["batch"], "%.0f img/s" % n["scoring"]["images_per_second"], "", ""),
        ("Peak RSS: default bench unlearning run (native) / reference step process",
         "%s MiB" % ("%.0f" % results["memory"]["native_unlearning_run_mib"] if results["memory"]["native_unlearning_run_mib"] else "n/a"),
         "%.0f MiB" % results["memory"]["python_reference_mib"], ""),
    ]
    lines = [f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores, {m['threads']} torch threads, torch {m['torch']}).",
             "", "| measurement | native | Python eager (diffusers) | speed-up |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    if results.get("evaluation"):
        e = results["evaluation"]
        lines += ["", f"Default bench evaluation of one model (`{e['command']}`, {e['settings']} settings: "
                  f"forget-caption and class-prompt sampling, descriptor, classifier, FID): {e['seconds']:.0f} s."]
    c = n["ceiling"]
    lines += ["", f"Ceilings in the same run: matmul {c['matmul_gflops']:.1f} GFLOP/s ({c['matmul_size']}^3), "
              f"conv {c['conv_gflops']:.1f} GFLOP/s ({c['conv_shape']}). The training step does "
              f"{p['train_step']['flops'] / 1e9:.2f} GFLOP (counted by torch's FlopCounterMode on the reference), "
              f"i.e. {r['train_step_gflops']:.1f} GFLOP/s natively = {100 * r['train_step_fraction_of_conv_ceiling']:.0f}% of the conv ceiling.",
              "", "Scaling of the native step (seconds; see bench/scaling.png):", "",
              "| image | " + " | ".join(f"batch {s['batch']}" for s in n["scaling"] if s["image_size"] == n["scaling"][0]["image_size"]) + " |",
              "|---|" + "---|" * sum(1 for s in n["scaling"] if s["image_size"] == n["scaling"][0]["image_size"])]
    for size in sorted({s["image_size"] for s in n["scaling"]}):
        cells = [f"{s['median_seconds']:.3f}" for s in n["scaling"] if s["image_size"] == size]
        lines.append(f"| {size}x{size} | " + " | ".join(cells) + " |")
    profile = n.get("train_step_profile")
    if profile:
        lines += ["", f"Where the native training step's time goes (libtorch's profiler, self time per op, "
                  f"mean of {profile['steps']} steps at batch {n['train_step']['batch']}; "
                  f"{profile['op_seconds_per_step']:.3f} s of ops per step):", "",
                  "| op | ms per step | calls per step | share |", "|---|---|---|---|"]
        lines += [f"| `{o['op']}` | {1e3 * o['self_seconds_per_step']:.1f} | {o['calls_per_step']:.0f} | "
                  f"{100 * o['share']:.1f}% |" for o in profile["ops"]]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=HERE, help="folder for results.json and scaling.png")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: the smoke test")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite README.md's table")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    scratch = os.path.join(out, "tmp")
    os.makedirs(scratch, exist_ok=True)
    python = sys.executable
    reference = os.path.join(HERE, "python_reference.py")
    unet = os.path.join(scratch, "bench_unet.safetensors")
    subprocess.run([python, reference, "--write-unet", unet], check=True)

    perf_args = [LETHE, "perf", "--unet", unet, "--out", scratch]
    descriptor = os.path.join(BENCH, "descriptor.safetensors")
    if os.path.exists(descriptor) and not args.tiny:
        perf_args += ["--descriptor", descriptor]
    if args.tiny:
        perf_args.append("--tiny")
    native, _ = run_with_rss(perf_args, stdout_path=os.path.join(scratch, "perf.stdout"))
    native = last_json(native)
    if native.get("scoring", {}).get("descriptor"):  # recorded repository-relative, like every path
        native["scoring"]["descriptor"] = os.path.relpath(native["scoring"]["descriptor"], ROOT)

    ref_args = [python, reference, "--unet-state", unet + ".diffusers.pt"]
    if args.tiny:
        ref_args += ["--batch", "2", "--warmup", "1", "--timed", "2", "--sample-batch", "2", "--sample-steps", "2"]
    python_out, python_rss = run_with_rss(ref_args, stdout_path=os.path.join(scratch, "reference.stdout"))
    python_result = last_json(python_out)

    native_rss, unlearn_label, evaluation = None, "", None
    base = os.path.join(BENCH, "base.safetensors")
    if os.path.exists(base):
        config = {"output": os.path.join(scratch, "unlearn-run")}
        if args.tiny:
            config["trainer"] = {"steps": 2, "batch_size": 2}
        config_path = os.path.join(scratch, "unlearn.json")
        with open(config_path, "w") as f:
            json.dump(config, f)
        subprocess.run(["rm", "-rf", config["output"]], check=True)
        _, native_rss = run_with_rss([LETHE, "unlearn", "--config", config_path], stdout_path=os.path.join(scratch, "unlearn.stdout"))
        with open(os.path.join(config["output"], "summary.json")) as f:
            summary = json.load(f)
        unlearn_label = "lethe unlearn with the default bench config (%s, %d steps, %d samples)" % (
            summary["objective"], summary["steps"], summary["samples_seen"])
        # The default bench evaluation of one (not cached) model: the unlearned one.
        eval_args = [LETHE, "eval", "--model", summary["model_file"], "--out", os.path.join(scratch, "eval"),
                     "--descriptor", descriptor, "--classifier", os.path.join(BENCH, "classifier.safetensors")]
        if args.tiny:
            eval_args += ["--samples-per-caption", "1", "--samples-per-class", "1", "--no-attacks"]
        start = time.monotonic()
        run_with_rss(eval_args, stdout_path=os.path.join(scratch, "eval.stdout"))
        evaluation = {"seconds": time.monotonic() - start, "command": "lethe eval --model <unlearned model>",
                      "settings": "tiny" if args.tiny else "default"}

    step_native = native["train_step"]["median_seconds"]
    flops = python_result["train_step"]["flops"]
    results = {
        "date": datetime.date.today().isoformat(),
        "tiny": args.tiny,
        "native": native,
        "python": python_result,
        "memory": {"native_unlearning_run_mib": native_rss, "python_reference_mib": python_rss,
                   "native_unlearning_run": unlearn_label},
        "evaluation": evaluation,
        # the unlearning run starts from base; scoring and evaluation use the descriptor and classifier
        "models": bench_model_hashes("base", "descriptor", "classifier") if os.path.exists(base) else {},
        "ratios": {
            "train_step_speedup": python_result["train_step"]["median_seconds"] / step_native,
            "sampling_speedup": native["sampling"]["images_per_second"] / python_result["sampling"]["images_per_second"],
            "train_step_gflops": flops / step_native / 1e9,
            "train_step_fraction_of_conv_ceiling": flops / step_native / 1e9 / native["ceiling"]["conv_gflops"],
        },
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json.tmp"), "w") as f:
        json.dump(results, f, indent=2)
    os.replace(os.path.join(out, "results.json.tmp"), os.path.join(out, "results.json"))
    os.replace(os.path.join(scratch, "scaling.png"), os.path.join(out, "scaling.png"))
    table = markdown_table(results)
    print(table)
    if not args.tiny and not args.no_readme:
        import doc_tables

        doc_tables.main()


if __name__ == "__main__":
    main()
