"""`make bench`: native vs the Python eager reference, measured side by side in one run.

Runs (each in its own process, so peak RSS is per process):
  1. bench/python_reference.py --write-unet: the bench-shaped UNet's weights for both sides;
  2. `lethe perf`: native ceilings, SISS step and sampling in fp32 and bf16, scoring, scaling (+ scaling.png);
  3. bench/python_reference.py, once per way a Python user would run it (eager / torch.compile,
     fp32 / bf16 autocast): the same SISS step and sampling with diffusers, FLOPs counted; and
     bench/python_descriptor.py, the copy descriptor in plain PyTorch, eager and compiled;
  3b. paired bursts (`--bursts`, default 8): the native best precision and every Python variant within
     `--contender-margin` (default 4/3) of round 1's fastest (steps 2-3; round 1 measured each alone, and
     its fastest is not surely the fastest), each kept in one process (`lethe perf --paired`,
     python_reference.py --paired), take turns: `--burst-steps` training steps (or one sampling pass) on
     one side, then on the next, in rotating order. Each turn gives a ratio against that turn's fastest
     Python variant, measured within the same minute, and the ratios reported are their medians (this
     machine's speed drifts over minutes, by up to a third). After each
     training-step burst the native side measures the conv ceiling in its turn: the step's share of the
     ceiling is the median of the bursts' shares, each from two numbers of the same minute;
  4. `lethe unlearn` with the default recipe (bench/configs/siss-tf.json) and `lethe eval` of its model, in fp32 and in
     the native side's faster precision (peak RSS of a real unlearning run, evaluation time).
Writes bench/results.json, prints a short table and rewrites the README's benchmark table
(bench/doc_tables.py, section `performance`). `--tiny` runs every path at toy sizes (the smoke test in `make test`;
its numbers mean nothing and it writes only to --out). One run at a time per --out: the processes' outputs go to
<out>/tmp, which a run locks (<out>/tmp/.lock); a second run there stops at once, naming the first.
"""
import argparse
import datetime
import fcntl
import glob
import json
import os
import statistics
import subprocess
import sys
import time

from model_hashes import DEFAULT_RECIPE, bench_model_hashes, default_recipe, file_sha256, ran_default_recipe
from variants import VARIANT_NAMES, VARIANTS as PYTHON_VARIANTS

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


def native_image_size(native):
    """The image size `lethe perf` trained and sampled at (its --tiny run's is smaller): the Python
    reference is run at it too, so both sides do the same work."""
    return native["precisions"][native["best_precision"]]["train_step"]["image_size"]


def last_json(text, source="the output"):
    """The JSON object that ends a measuring process's stdout (progress lines may come before it).
    `source` names where the text came from, for the error when it is not one JSON object."""
    start = text.find("{")
    try:
        return json.loads(text[start:] if start >= 0 else "")
    except json.JSONDecodeError as error:
        raise SystemExit(f"{source}: expected one JSON object after the progress lines, got text that is not one "
                         f"({error.msg}, line {error.lineno})") from None


def run_for_json(args, stdout_path, **kwargs):
    """run_with_rss for a measuring process: (the JSON object its stdout ends with, peak RSS in MiB)."""
    text, rss = run_with_rss(args, stdout_path=stdout_path, **kwargs)
    return last_json(text, stdout_path), rss


def hold_lock(folder):
    """Takes an exclusive lock on `folder` (the run's scratch) for this process's lifetime, or exits
    naming the run that holds it: two runs in one folder overwrite each other's files and, on one
    machine, each other's timings."""
    path = os.path.join(folder, ".lock")
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "a process that did not say which"
        raise SystemExit(f"make bench: {folder} is in use by another run ({holder}); wait for it to end, or give "
                         f"--out another folder") from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}, started {datetime.datetime.now().isoformat(timespec='seconds')}\n")
    handle.flush()
    return handle


def head_to_head(native, python_result):
    """Round 1's ratios (each side measured alone, minutes apart): the native training step and
    sampling in their best precisions against the fastest Python variants, which the paired
    bursts then time again."""
    step_precision = native["best_precision"]
    sampling_precision = max(native["precisions"], key=lambda q: native["precisions"][q]["sampling"]["images_per_second"])
    step_variant = min(python_result, key=lambda v: python_result[v]["train_step"]["median_seconds"])
    sampling_variant = max(python_result, key=lambda v: python_result[v]["sampling"]["images_per_second"])
    native_step = native["precisions"][step_precision]["train_step"]["median_seconds"]
    python_step = python_result[step_variant]["train_step"]["median_seconds"]
    native_rate = native["precisions"][sampling_precision]["sampling"]["images_per_second"]
    python_rate = python_result[sampling_variant]["sampling"]["images_per_second"]
    return {"native_step_precision": step_precision, "python_step_variant": step_variant,
            "native_step_seconds": native_step, "python_step_seconds": python_step,
            "train_step_speedup": python_step / native_step,
            "native_sampling_precision": sampling_precision, "python_sampling_variant": sampling_variant,
            "python_sampling_forwards": python_result[sampling_variant]["sampling"]["guidance_forwards"],
            "native_images_per_second": native_rate, "python_images_per_second": python_rate,
            "sampling_speedup": native_rate / python_rate}


def contenders(speeds, margin):
    """The Python variants the paired bursts race (`speeds`: variant -> round 1's speed, higher is
    faster): every one within `margin` of the fastest, fastest first. Round 1 measured each alone,
    minutes apart, on a machine whose speed drifts by up to a third: its fastest is not surely the
    fastest, so each close one runs in the pairs too."""
    fastest = max(speeds.values())
    return sorted((v for v, speed in speeds.items() if speed * margin >= fastest), key=lambda v: -speeds[v])


def paired_bursts(commands, bursts, scratch, label):
    """Runs the processes of one paired measurement (`commands`: side -> argv, each speaking
    `lethe perf --paired`'s protocol; the native side and one side per Python contender). They
    start and warm up together (nothing is timed before the first turn; a Python side's start-up
    is mostly single-threaded imports), then take turns `bursts` times: in turn k the sides run in their
    order rotated by k (two sides: the native side first in even turns and the reference first in
    odd ones); a side's burst starts when the previous one's has ended. After its last burst a side
    waits until all are done: its exit (freeing, saving) would otherwise overlap another side's
    last burst. Returns side -> the bursts' JSON lines."""
    processes, lines = {}, {side: [] for side in commands}

    def next_line(side):
        process, err_path = processes[side]
        while True:
            line = process.stdout.readline()
            if not line:
                process.wait()
                with open(err_path) as f:
                    raise SystemExit(f"{' '.join(map(str, commands[side]))} stopped (exit code {process.returncode}) "
                                     f"before its burst:\n{f.read()[-4000:]}")
            if line.startswith("{"):
                return json.loads(line)

    try:
        for side, argv in commands.items():
            err_path = os.path.join(scratch, f"paired-{label}-{side}.stderr")
            with open(err_path, "w") as err:
                processes[side] = (subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                                    text=True), err_path)
        for side in commands:
            next_line(side)  # warmed up and ready, idle until its first turn
        sides = list(commands)
        for number in range(bursts):
            shift = number % len(sides)
            order = sides[shift:] + sides[:shift]
            for side in order:
                process = processes[side][0]
                process.stdin.write("go\n")
                process.stdin.flush()
                lines[side].append(dict(next_line(side), pair=number, first=order[0]))
        for side, (process, err_path) in processes.items():
            process.stdin.close()
            process.stdout.read()
            if process.wait() != 0:
                with open(err_path) as f:
                    raise SystemExit(f"{' '.join(map(str, commands[side]))} failed with exit code {process.returncode}:"
                                     f"\n{f.read()[-4000:]}")
    finally:
        for process, _ in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return lines


def measured_precisions(native):
    """The precisions `lethe perf` measured, fp32 first."""
    return [q for q in ("fp32", "bf16") if q in native["precisions"]]


def evaluation_stages(report_path):
    """Where one evaluation's seconds went, from its report: set-up, then the model's stages."""
    with open(report_path) as f:
        report = json.load(f)
    stages = {"setup (data, reference embeddings and features)": report["setup_seconds"]}
    stages.update(report["models"]["evaluated"]["stage_seconds"])
    return stages


def quickstart_sha256():
    """The shipped quickstart workflow's SHA-256: its timing describes that workflow only."""
    return file_sha256(os.path.join(ROOT, "workflows", "quickstart.json"))


def evaluation_line(results, stages=True):
    """The default evaluation's wall time per precision (with `stages`: the full wording and
    where the time went; without: the README's short form) and the quickstart's, or None when
    they were not measured."""
    if not results.get("evaluation"):
        return None
    times = ", ".join(f"{q} {e['seconds']:.0f} s" for q, e in results["evaluation"].items())
    e = next(iter(results["evaluation"].values()))
    if stages:
        line = (f"Default bench evaluation of one model (`{e['command']}`, {e['settings']} settings: "
                f"forget-caption and class-prompt sampling, descriptor, classifier, FID, attacks): {times}.")
    else:
        line = f"Default evaluation of one model (`lethe eval`, attacks included): {times}."
    for q, e in results["evaluation"].items():
        if stages and e.get("stages"):
            line += f" Where the {q} run's time went: " + ", ".join(
                f"{stage} {seconds:.1f} s" for stage, seconds in sorted(e["stages"].items(), key=lambda s: -s[1])) + "."
    if results.get("quickstart"):
        qs = results["quickstart"]
        which = "The quickstart" if qs.get("workflow_sha256") == quickstart_sha256() else "The previous quickstart"
        line += (f" {which} (`{qs['command']}`, {qs['precision']}): {qs['seconds']:.0f} s, of which unlearning "
                 f"{qs['node_seconds']['LetheUnlearn']:.0f} s and evaluation {qs['node_seconds']['LetheEvaluate']:.0f} s.")
    return line


def markdown_table(results):
    n, p, r = results["native"], results["python"], results["ratios"]
    m = n["machine"]
    precisions = measured_precisions(n)
    variants = [v for v in PYTHON_VARIANTS if v in p]
    best = n["best_precision"]
    step = lambda e: "%.3f s" % e["train_step"]["median_seconds"]
    rate = lambda e: "%.1f img/s" % e["sampling"]["images_per_second"]
    # The reference's guidance runs both ways (one forward of 2 x batch rows, or two); the faster counts.
    python_rate = lambda e: rate(e) + (" (two forwards)" if e["sampling"].get("guidance_forwards") == 2 else "")
    first = n["precisions"][precisions[0]]
    size = "%dx%d" % ((native_image_size(n),) * 2)  # `lethe perf` trains and samples at one size (--tiny: smaller)
    header = ["measurement"] + [f"native {q}" for q in precisions] + [f"Python {VARIANT_NAMES[v]}" for v in variants] + \
             ["native best / fastest Python"]
    paired = results.get("paired")  # results before 2026-12-07 timed rounds of whole processes instead

    def by_pairs(key):
        if not paired:
            return ""
        speedups = paired[key]["speedups"]
        return "; median of %d paired bursts, range %.2f–%.2f" % (len(speedups), min(speedups), max(speedups))

    def against(key, fastest):
        """Whom the native side was measured against: the contenders of the paired bursts."""
        if not paired:
            return VARIANT_NAMES[fastest]
        names = [VARIANT_NAMES[v] for v in paired[key]["python_variants"]]
        return names[0] if len(names) == 1 else "the faster in each burst of " + " and ".join(names)

    rows = [
        ["SISS training step, batch %d, %s images (median of %d)" % (first["train_step"]["batch"], size,
                                                                    first["train_step"]["timed_steps"])]
        + [step(n["precisions"][q]) for q in precisions] + [step(p[v]) for v in variants]
        + ["%.3fx (%s vs %s%s)" % (r["train_step_speedup"], best, against("step", r["fastest_python_train_step"]),
                                   by_pairs("step"))],
        ["DDIM sampling, %d steps, batch %d, %s images, guidance" % (first["sampling"]["steps"], first["sampling"]["batch"],
                                                                     size)]
        + [rate(n["precisions"][q]) for q in precisions] + [python_rate(p[v]) for v in variants]
        + ["%.3fx (%s vs %s%s)" % (r["sampling_speedup"], r["best_sampling_precision"],
                                   against("sampling", r["fastest_python_sampling"]), by_pairs("sampling"))],
    ]
    lines = [f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores, {m['threads']} torch threads, torch {m['torch']}); "
             f"`auto` precision here: {n['auto_precision']['reason']}."
             + (f" The columns were each measured alone, one process after another. The ratios are the medians of "
                f"{paired['bursts']} paired bursts: the native best precision and every Python variant within "
                f"{paired['contender_margin']:.2f}x of round 1's fastest, each in one process, took turns "
                f"({paired['burst_steps']} training steps, or one sampling pass, a side) in rotating order; each burst's "
                "ratio is against the fastest Python variant of that turn." if paired else ""),
             "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    mem = results["memory"]
    scoring = results.get("python_scoring") or {}
    python_scoring = ", ".join(f"{e['images_per_second']:.0f} img/s ({VARIANT_NAMES[v]})" for v, e in scoring.items())
    if scoring:
        python_scoring += f"; native / fastest: {r['scoring_speedup']:.3f}x"
        if paired and "descriptor" in paired:
            python_scoring += f" ({against('descriptor', None)}{by_pairs('descriptor')})"
    lines += ["", "| memory and scoring | native | Python reference |", "|---|---|---|",
              f"| Copy descriptor, batch {n['scoring']['batch']} (bench/python_descriptor.py: the same network) | "
              f"{n['scoring']['images_per_second']:.0f} img/s | {python_scoring} |"]
    # Results record the recipe since the memory run became the default recipe (2026-12-05);
    # earlier ones ran the engine's defaults (SISS without caption ablation).
    run = "default recipe's" if ran_default_recipe(mem) else "earlier default's (SISS alone)"
    for q, rss in mem["native_unlearning_run_mib"].items():
        lines.append(f"| Peak RSS, {run} bench unlearning run, {q} / eager fp32 step process | {rss:.0f} MiB | "
                     f"{mem['python_reference_mib']:.0f} MiB |")
    if evaluation_line(results):
        lines += ["", evaluation_line(results)]
    compiled = [v for v in variants if v.startswith("compile")]
    if compiled:
        lines += ["", "torch.compile's first step and first sampling run (compilation included; the table compares "
                  "steady state): " + "; ".join(f"{VARIANT_NAMES[v]} {p[v]['train_step']['first_step_seconds']:.0f} s and "
                                               f"{p[v]['sampling']['first_run_seconds']:.0f} s" for v in compiled) + "."]
    flops = p["eager_fp32"]["train_step"]["flops"]
    # results measured before the ceiling's batch was recorded were measured at 64
    conv_batch = n["precisions"][precisions[0]]["ceiling"].get("conv_batch", 64)
    lines += ["", f"The training step does {flops / 1e9:.2f} GFLOP (counted by torch's FlopCounterMode on the reference). "
              f"Ceilings in the same run (batch-{conv_batch} 3x3 convolutions at the bench UNet's level shapes, a square "
              "matmul):", "",
              "| precision | conv GFLOP/s (per shape) | matmul GFLOP/s | native step GFLOP/s | share of the conv ceiling |",
              "|---|---|---|---|---|"]
    for q in precisions:
        c = n["precisions"][q]["ceiling"]
        achieved = flops / n["precisions"][q]["train_step"]["median_seconds"] / 1e9
        convs = ", ".join(f"{x['gflops']:.0f}" for x in c["convs"])
        lines.append(f"| {q} | {convs} | {c['matmul_gflops']:.0f} | {achieved:.0f} | {100 * achieved / c['conv_gflops']:.0f}% |")
    if paired and "conv_ceiling_shares" in paired["step"]:
        shares = paired["step"]["conv_ceiling_shares"]
        lines += ["", f"In the paired bursts the native {paired['step']['native_precision']} step reached a median "
                  f"{100 * r['train_step_fraction_of_conv_ceiling']:.0f}% of the conv ceiling measured right after each "
                  f"burst in the same process (bursts {100 * min(shares):.0f}–{100 * max(shares):.0f}%, ceilings "
                  f"{min(paired['step']['native_conv_ceiling_gflops']):.0f}–"
                  f"{max(paired['step']['native_conv_ceiling_gflops']):.0f} GFLOP/s); the table's share divides round 1's "
                  "step by its ceiling, measured minutes apart."]
    scaling = n["scaling"]["points"]
    sizes = sorted({s["image_size"] for s in scaling})
    batches = [s["batch"] for s in scaling if s["image_size"] == sizes[0]]
    lines += ["", f"Scaling of the native step in {n['scaling']['precision']} (seconds; see bench/scaling.png):", "",
              "| image | " + " | ".join(f"batch {b}" for b in batches) + " |", "|---|" + "---|" * len(batches)]
    for size in sizes:
        cells = [f"{s['median_seconds']:.3f}" for s in scaling if s["image_size"] == size]
        lines.append(f"| {size}x{size} | " + " | ".join(cells) + " |")
    for q in precisions:
        profile = n["precisions"][q].get("train_step_profile")
        if not profile:
            continue
        lines += ["", f"Where the native {q} training step's time goes (libtorch's profiler, self time per op, "
                  f"mean of {profile['steps']} steps; {profile['op_seconds_per_step']:.3f} s of ops per step):", "",
                  "| op | ms per step | calls per step | share |", "|---|---|---|---|"]
        lines += [f"| `{o['op']}` | {1e3 * o['self_seconds_per_step']:.1f} | {o['calls_per_step']:.0f} | "
                  f"{100 * o['share']:.1f}% |" for o in profile["ops"][:10]]
    sampling = n["precisions"][n["best_precision"]].get("sampling_profile")
    if sampling:
        s = n["precisions"][n["best_precision"]]["sampling"]
        lines += ["", f"Where native {n['best_precision']} sampling's time goes (one run of the sampling row above: "
                  f"batch {s['batch']}, {s['steps']} steps, guidance rows batched with the conditional ones; "
                  f"{sampling['op_seconds_per_step']:.2f} s of ops):", "",
                  "| op | ms per run | calls per run | share |", "|---|---|---|---|"]
        lines += [f"| `{o['op']}` | {1e3 * o['self_seconds_per_step']:.0f} | {o['calls_per_step']:.0f} | "
                  f"{100 * o['share']:.1f}% |" for o in sampling["ops"][:8]]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=HERE, help="folder for results.json and scaling.png")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: the smoke test")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite README.md's table")
    parser.add_argument("--bursts", type=int, default=8,
                        help="paired bursts of the head-to-head (training step, sampling); the ratios are their "
                             "medians (0: round 1's ratios alone)")
    parser.add_argument("--burst-steps", type=int, default=5, help="training steps per burst")
    parser.add_argument("--contender-margin", type=float, default=4 / 3,
                        help="the paired bursts race every Python variant whose round-1 speed is within this factor "
                             "of the fastest's (default 4/3: this machine's drift)")
    args = parser.parse_args()
    if args.bursts < 0:
        parser.error(f"--bursts: expected 0 or more, got {args.bursts}")
    if args.burst_steps < 1:
        parser.error(f"--burst-steps: expected at least 1, got {args.burst_steps}")
    if args.contender_margin < 1:
        parser.error(f"--contender-margin: expected at least 1, got {args.contender_margin}")
    out = os.path.abspath(args.out)
    scratch = os.path.join(out, "tmp")
    os.makedirs(scratch, exist_ok=True)
    lock = hold_lock(scratch)  # held until the process ends
    python = sys.executable
    reference = os.path.join(HERE, "python_reference.py")
    unet = os.path.join(scratch, "bench_unet.safetensors")
    subprocess.run([python, reference, "--write-unet", unet], check=True)

    perf_args = [LETHE, "perf", "--unet", unet, "--out", scratch] + (["--tiny"] if args.tiny else [])
    descriptor = os.path.join(BENCH, "descriptor.safetensors")
    native_args = perf_args + (["--descriptor", descriptor] if os.path.exists(descriptor) and not args.tiny else [])
    native, _ = run_for_json(native_args, os.path.join(scratch, "perf.stdout"))
    if native.get("scoring", {}).get("descriptor"):  # recorded repository-relative, like every path
        native["scoring"]["descriptor"] = os.path.relpath(native["scoring"]["descriptor"], ROOT)

    def reference_args(variant):
        ref_args = [python, reference, "--unet-state", unet + ".diffusers.pt", "--variant", variant,
                    "--image-size", str(native_image_size(native))]
        if args.tiny:
            ref_args += ["--batch", "2", "--warmup", "1", "--timed", "2", "--sample-batch", "2", "--sample-steps", "2"]
        return ref_args

    def run_reference(variant, label):
        ref_args = reference_args(variant)
        return run_for_json(ref_args, os.path.join(scratch, f"reference-{variant}{label}.stdout"))

    python_result, python_rss = {}, None
    for variant in PYTHON_VARIANTS if not args.tiny else ("eager_fp32", "eager_bf16"):
        python_result[variant], rss = run_reference(variant, "")
        if variant == "eager_fp32":
            python_rss = rss  # the plain reference process (the compiled ones also hold the compiler)

    # Round 1 is the full measurement above; the paired bursts time its contenders again, side by side.
    first = head_to_head(native, python_result)
    flops = python_result["eager_fp32"]["train_step"]["flops"]  # of one training step, counted on the reference
    paired = None

    def paired_entry(measurement, native_cmd, reference_cmds):
        """One paired measurement (`reference_cmds`: contender -> its script's --paired form): per
        side the bursts' seconds (a step) or images per second; in each turn the fastest
        contender's, and the native side's speed-up over it."""
        native_cmd = native_cmd + ["--paired", measurement, "--bursts", str(args.bursts)]
        native_cmd[native_cmd.index("--out") + 1] = os.path.join(scratch, f"paired-{measurement}")
        subprocess.run(["rm", "-rf", os.path.join(scratch, f"paired-{measurement}")], check=True)
        sides = paired_bursts(dict({"native": native_cmd},
                                   **{v: cmd + ["--bursts", str(args.bursts)] for v, cmd in reference_cmds.items()}),
                              args.bursts, scratch, measurement)
        variants = list(reference_cmds)
        entry = {"python_variants": variants, "first": [line["first"] for line in sides["native"]]}
        # a step's bursts give seconds (lower is faster), sampling's and the descriptor's images per second
        step = measurement == "step"
        key, native_key, python_key = ("median_seconds", "native_seconds", "python_seconds") if step else \
            ("images_per_second", "native_images_per_second", "python_images_per_second")
        faster = min if step else max
        entry[native_key] = [line[key] for line in sides["native"]]
        entry[python_key + "_by_variant"] = {v: [line[key] for line in sides[v]] for v in variants}
        turns = list(zip(*entry[python_key + "_by_variant"].values()))
        entry["python_fastest"] = [variants[t.index(faster(t))] for t in turns]
        entry[python_key] = [faster(t) for t in turns]
        entry["speedups"] = [py / nat if step else nat / py for nat, py in zip(entry[native_key], entry[python_key])]
        if step:  # the conv ceiling the native side measured in its turn, right after each burst
            entry["native_conv_ceiling_gflops"] = [line["conv_ceiling_gflops"] for line in sides["native"]]
        return entry

    def most_often_fastest(entry):
        """The contender fastest in the most turns (ties: the one fastest in round 1)."""
        return max(entry["python_variants"], key=lambda v: entry["python_fastest"].count(v))

    if args.bursts > 0:
        paired = {"bursts": args.bursts, "burst_steps": args.burst_steps, "contender_margin": args.contender_margin}
        step_speeds = {v: 1.0 / e["train_step"]["median_seconds"] for v, e in python_result.items()}
        sampling_speeds = {v: e["sampling"]["images_per_second"] for v, e in python_result.items()}
        for measurement, precision, speeds in (("step", first["native_step_precision"], step_speeds),
                                               ("sampling", first["native_sampling_precision"], sampling_speeds)):
            paired[measurement] = dict(
                {"native_precision": precision},
                **paired_entry(measurement, perf_args + ["--precisions", precision, "--burst-steps", str(args.burst_steps)],
                               {v: reference_args(v) + ["--paired", measurement, "--burst-steps", str(args.burst_steps),
                                                        "--sample-forwards",
                                                        str(python_result[v]["sampling"]["guidance_forwards"])]
                                for v in contenders(speeds, args.contender_margin)}))
        paired["sampling"]["python_forwards"] = {v: python_result[v]["sampling"]["guidance_forwards"]
                                                 for v in paired["sampling"]["python_variants"]}
        paired["step"]["conv_ceiling_shares"] = [
            flops / seconds / 1e9 / ceiling
            for seconds, ceiling in zip(paired["step"]["native_seconds"], paired["step"]["native_conv_ceiling_gflops"])]

    # The copy descriptor the Python way (the same network in plain PyTorch), eager and compiled.
    # The tiny run: eager only, two images a batch, one batch (the same sizes as `lethe perf --tiny`).
    python_scoring, descriptor_args = {}, {}
    scoring_variants = (("eager_fp32", []),) if args.tiny else (("eager_fp32", []), ("compile_fp32", ["--compile"]))
    if os.path.exists(descriptor):
        for variant, extra in scoring_variants:
            descriptor_args[variant] = [python, os.path.join(HERE, "python_descriptor.py"), "--descriptor", descriptor] + \
                extra + (["--batch", "2", "--batches", "1"] if args.tiny else [])
            python_scoring[variant], _ = run_for_json(descriptor_args[variant],
                                                      os.path.join(scratch, f"descriptor-{variant}.stdout"))
        if paired:
            speeds = {v: e["images_per_second"] for v, e in python_scoring.items()}
            paired["descriptor"] = paired_entry("descriptor", perf_args + ["--descriptor", descriptor, "--precisions", "fp32"],
                                                {v: descriptor_args[v] + ["--paired"]
                                                 for v in contenders(speeds, args.contender_margin)})

    native_rss, unlearn_label, evaluation = {}, "", {}
    base = os.path.join(BENCH, "base.safetensors")
    measured = ["fp32"] + ([native["best_precision"]] if native["best_precision"] != "fp32" else [])
    if os.path.exists(base):
        if args.tiny:  # the tiny evaluation's sampling: 3 DDIM steps per generation
            tiny_settings = os.path.join(scratch, "eval-tiny.json")
            with open(tiny_settings, "w") as f:
                json.dump({"sampling": {"steps": 3}}, f)
        for precision in measured:
            # The default recipe (bench/configs/siss-tf.json), as make demo and make unlearning-check run it.
            config = dict(default_recipe(), output=os.path.join(scratch, f"unlearn-run-{precision}"), precision=precision)
            if args.tiny:
                config["trainer"] = {"steps": 2, "batch_size": 2}
            config_path = os.path.join(scratch, f"unlearn-{precision}.json")
            with open(config_path, "w") as f:
                json.dump(config, f)
            subprocess.run(["rm", "-rf", config["output"]], check=True)
            _, native_rss[precision] = run_with_rss([LETHE, "unlearn", "--config", config_path],
                                                    stdout_path=os.path.join(scratch, f"unlearn-{precision}.stdout"))
            with open(os.path.join(config["output"], "summary.json")) as f:
                summary = json.load(f)
            unlearn_label = "lethe unlearn with the default recipe, %s (%s, %d steps, %d samples)" % (
                os.path.relpath(DEFAULT_RECIPE, ROOT), summary["objective"], summary["steps"], summary["samples_seen"])
            # The default bench evaluation of one (not cached) model: the unlearned one.
            eval_args = [LETHE, "eval", "--model", summary["model_file"], "--out", os.path.join(scratch, f"eval-{precision}"),
                         "--descriptor", descriptor, "--classifier", os.path.join(BENCH, "classifier.safetensors"),
                         "--precision", precision]
            if args.tiny:
                eval_args += ["--samples-per-caption", "1", "--samples-per-class", "1", "--no-attacks", "--config", tiny_settings]
            subprocess.run(["rm", "-rf", os.path.join(scratch, f"eval-{precision}")], check=True)
            start = time.monotonic()
            run_with_rss(eval_args, stdout_path=os.path.join(scratch, f"eval-{precision}.stdout"))
            evaluation[precision] = {"seconds": time.monotonic() - start, "command": "lethe eval --model <unlearned model>",
                                     "settings": "tiny" if args.tiny else "default",
                                     "stages": evaluation_stages(os.path.join(scratch, f"eval-{precision}", "report.json"))}

    # The quickstart as `make demo` runs it after setup: the shipped workflow, its own settings.
    quickstart = None
    if os.path.exists(base) and not args.tiny:
        out_dir = os.path.join(scratch, "quickstart")
        subprocess.run(["rm", "-rf", out_dir], check=True)
        start = time.monotonic()
        run_with_rss([LETHE, "run", os.path.join(ROOT, "workflows", "quickstart.json"), "--out", out_dir],
                     stdout_path=os.path.join(scratch, "quickstart.stdout"))
        seconds = time.monotonic() - start
        with open(os.path.join(out_dir, "run.json")) as f:
            nodes = json.load(f)["nodes"].values()
        with open(glob.glob(os.path.join(out_dir, "unlearn-node-*", "summary.json"))[0]) as f:
            precision = json.load(f)["precision"]["used"]
        quickstart = {"seconds": seconds, "command": "make demo", "precision": precision,
                      "workflow_sha256": quickstart_sha256(),
                      "node_seconds": {n["class_type"]: n["seconds"] for n in nodes}}

    best = native["precisions"][native["best_precision"]]
    step_native = best["train_step"]["median_seconds"]
    round1_share = flops / step_native / 1e9 / best["ceiling"]["conv_gflops"]
    results = {
        "date": datetime.date.today().isoformat(),
        "tiny": args.tiny,
        "native": native,
        "python": python_result,
        "memory": {"native_unlearning_run_mib": native_rss, "python_reference_mib": python_rss,
                   "native_unlearning_run": unlearn_label, "recipe": default_recipe()},
        "python_scoring": python_scoring,
        "evaluation": evaluation,
        "quickstart": quickstart,
        # the unlearning run starts from base; scoring and evaluation use the descriptor and classifier
        "models": bench_model_hashes("base", "descriptor", "classifier") if os.path.exists(base) else {},
        "round1": first,
        "paired": paired,
        "ratios": {
            "train_step_speedup": statistics.median(paired["step"]["speedups"]) if paired else first["train_step_speedup"],
            "fastest_python_train_step": most_often_fastest(paired["step"]) if paired else first["python_step_variant"],
            "sampling_speedup": statistics.median(paired["sampling"]["speedups"]) if paired else first["sampling_speedup"],
            "best_sampling_precision": first["native_sampling_precision"],
            "fastest_python_sampling": most_often_fastest(paired["sampling"]) if paired
            else first["python_sampling_variant"],
            "scoring_speedup": statistics.median(paired["descriptor"]["speedups"]) if paired and "descriptor" in paired
            else native["scoring"]["images_per_second"]
            / max((e["images_per_second"] for e in python_scoring.values()), default=float("nan")),
            "train_step_gflops": flops / step_native / 1e9,
            # the median over the paired bursts of the burst's GFLOP/s over the ceiling measured
            # right after it (both of one minute); round 1's: its step over its ceiling, measured apart
            "train_step_fraction_of_conv_ceiling": statistics.median(paired["step"]["conv_ceiling_shares"]) if paired
            else round1_share,
            "train_step_fraction_of_conv_ceiling_round1": round1_share,
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
