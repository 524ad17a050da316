"""`make bench-gpu`: the bench on a CUDA GPU, native and Python side by side in one run.

Runs (each in its own process):
  1. bench/python_reference.py --write-unet: the bench-shaped UNet's weights for both sides;
  2. `lethe perf --device cuda --sd15-lora`: ceilings, the SISS step and sampling in fp32 and bf16,
     scaling, and the SD1.5-sized LoRA step at 512x512 (seconds, peak GPU memory);
  3. bench/python_reference.py --device cuda, eager fp32 and eager bf16 autocast, then the
     SD1.5-sized step with diffusers + peft (eager bf16 autocast), then the torch.compile
     variants while the deadline allows (compiling takes minutes).
Writes gpu_results.json into --out after every stage (a run cut short keeps what it measured) and
prints a table; bench/doc_tables.py turns the committed file into docs/performance.md §GPU.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from run_bench import last_json, native_image_size
from variants import VARIANT_NAMES

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LETHE = os.environ.get("LETHE_EXE", os.path.join(ROOT, "build-gpu", "lethe"))
SD15_TARGET_BYTES = 6 * 1000**3  # issue target: at most 6 GB of GPU memory for the SD1.5-sized LoRA step


def run(args, deadline=None):
    """Runs a process; returns its stdout, or None when the deadline cut it off."""
    timeout = None if not deadline else max(1.0, deadline - time.time())
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"gpu bench: {' '.join(args[:4])} ... stopped at the deadline", flush=True)
        return None
    if done.returncode != 0:
        raise SystemExit(f"gpu bench: {' '.join(map(str, args))} failed with exit code {done.returncode}:\n"
                         f"{done.stderr[-4000:]}")
    return done.stdout


def machine(device):
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return {"gpu": torch.cuda.get_device_name(0) if device == "cuda" else "none (cpu)", "torch": torch.__version__, "cuda": torch.version.cuda,
            "cpu": cpu, "cores": os.cpu_count()}


def ratios(results):
    n, p = results["native"], results["python"]
    out = {}
    if n and p:
        best_step = min(n["precisions"], key=lambda q: n["precisions"][q]["train_step"]["median_seconds"])
        best_rate = max(n["precisions"], key=lambda q: n["precisions"][q]["sampling"]["images_per_second"])
        fastest_step = min(p, key=lambda v: p[v]["train_step"]["median_seconds"])
        fastest_rate = max(p, key=lambda v: p[v]["sampling"]["images_per_second"])
        out.update({
            "train_step_speedup": p[fastest_step]["train_step"]["median_seconds"]
            / n["precisions"][best_step]["train_step"]["median_seconds"],
            "best_train_step_precision": best_step, "fastest_python_train_step": fastest_step,
            "sampling_speedup": n["precisions"][best_rate]["sampling"]["images_per_second"]
            / p[fastest_rate]["sampling"]["images_per_second"],
            "best_sampling_precision": best_rate, "fastest_python_sampling": fastest_rate})
    sd = results["sd15_lora"]
    if sd.get("native") and sd.get("diffusers_peft"):
        out["sd15_lora_speedup"] = sd["diffusers_peft"]["median_seconds"] / sd["native"]["median_seconds"]
        if sd["native"]["peak_allocated_bytes"] and sd["diffusers_peft"]["peak_allocated_bytes"]:
            out["sd15_lora_memory_ratio"] = (sd["native"]["peak_allocated_bytes"]
                                             / sd["diffusers_peft"]["peak_allocated_bytes"])
    return out


def table(results):
    lines = []
    n, p, m = results["native"], results["python"], results["machine"]
    lines.append(f"Measured {results['date']} on {m['gpu']} (torch {m['torch']}, CUDA {m['cuda']}; host {m['cpu']}).")
    if n:
        precisions = [q for q in ("fp32", "bf16") if q in n["precisions"]]
        header = ["measurement"] + [f"native {q}" for q in precisions] + [f"Python {VARIANT_NAMES[v]}" for v in p]
        lines += ["", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        first = n["precisions"][precisions[0]]
        lines.append("| SISS training step, batch %d | " % first["train_step"]["batch"] + " | ".join(
            ["%.4f s" % n["precisions"][q]["train_step"]["median_seconds"] for q in precisions]
            + ["%.4f s" % p[v]["train_step"]["median_seconds"] for v in p]) + " |")
        lines.append("| DDIM sampling, %d steps, batch %d, guidance | " % (first["sampling"]["steps"], first["sampling"]["batch"])
                     + " | ".join(["%.0f img/s" % n["precisions"][q]["sampling"]["images_per_second"] for q in precisions]
                                  + ["%.0f img/s" % p[v]["sampling"]["images_per_second"] for v in p]) + " |")
        ceilings = "; ".join(
            f"{q}: matmul {n['precisions'][q]['ceiling']['matmul_gflops'] / 1e3:.0f} TFLOP/s at "
            f"{n['precisions'][q]['ceiling']['matmul_size']}³, convolutions at the bench UNet's shapes "
            + ", ".join(f"{c['gflops'] / 1e3:.1f}" for c in n["precisions"][q]["ceiling"]["convs"]) + " TFLOP/s"
            for q in precisions)
        lines += ["", f"Ceilings in the same run ({ceilings})."]
    sd = results["sd15_lora"]
    if sd.get("native"):
        lines += ["", "| SD1.5-sized UNet, SISS LoRA step at 512x512, batch %d | seconds per step | peak GPU memory |"
                  % sd["native"]["batch"], "|---|---|---|"]
        for name, entry in (("native (bf16 weights, bf16 autocast)", sd.get("native")),
                            ("diffusers + peft (eager, bf16 autocast)", sd.get("diffusers_peft"))):
            if entry:
                peak = entry["peak_allocated_bytes"]
                lines.append(f"| {name} | {entry['median_seconds']:.3f} | "
                             f"{'%.2f GB' % (peak / 1e9) if peak else 'not measured'} |")
    if sd.get("native") and sd["native"]["peak_allocated_bytes"]:
        peak, target = sd["native"]["peak_allocated_bytes"], sd["target_bytes"]
        lines += ["", f"Native peak {peak / 1e9:.2f} GB against the {target / 1e9:.0f} GB target: "
                  + ("met." if peak <= target else "**not met**.")]
    r = results.get("ratios", {})
    if "train_step_speedup" in r:
        lines += ["", "Native best / fastest Python: training step %.2fx (%s vs %s), sampling %.2fx (%s vs %s)." % (
            r["train_step_speedup"], r["best_train_step_precision"], VARIANT_NAMES[r["fastest_python_train_step"]],
            r["sampling_speedup"], r["best_sampling_precision"], VARIANT_NAMES[r["fastest_python_sampling"]])]
    if "sd15_lora_speedup" in r:
        lines[-1] += " SD1.5-sized LoRA step: %.2fx diffusers + peft." % r["sd15_lora_speedup"]
    skipped = [VARIANT_NAMES[v] for v in ("compile_bf16", "compile_fp32") if v not in p]
    if n and skipped:
        lines += ["", "Not measured in this run (its time ran out): " + ", ".join(skipped) + "."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=HERE, help="folder for gpu_results.json")
    parser.add_argument("--deadline", type=float, default=0,
                        help="Unix time after which the optional torch.compile variants are skipped (0: none)")
    parser.add_argument("--sd15-batch", type=int, default=1)
    parser.add_argument("--device", default="cuda", help="cuda; cpu runs every path slowly (a check of the script)")
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"make bench-gpu: {sys.executable}'s torch {torch.__version__} sees no CUDA device "
                         "(expected a CUDA wheel on a machine with an NVIDIA GPU)")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="lethe-gpu-bench-")
    results = {"date": datetime.date.today().isoformat(), "machine": machine(args.device), "native": None, "python": {},
               "sd15_lora": {"target_bytes": SD15_TARGET_BYTES}}

    def save():
        results["ratios"] = ratios(results)
        with open(os.path.join(out, "gpu_results.json.tmp"), "w") as f:
            json.dump(results, f, indent=2)
        os.replace(os.path.join(out, "gpu_results.json.tmp"), os.path.join(out, "gpu_results.json"))

    python, reference = sys.executable, os.path.join(HERE, "python_reference.py")
    unet = os.path.join(scratch, "bench_unet.safetensors")
    run([python, reference, "--write-unet", unet])
    with open(unet, "rb") as f:  # the bench-shaped UNet both sides ran (bench/doc_tables.py checks it)
        results["models"] = {"bench_unet": hashlib.sha256(f.read()).hexdigest()}
    started = time.time()
    native = last_json(run([LETHE, "perf", "--unet", unet, "--out", scratch, "--device", args.device, "--ceiling-size", "8192",
                            "--sd15-lora", "--sd15-batch", str(args.sd15_batch)]), "lethe perf's stdout")
    print(f"gpu bench: native perf {time.time() - started:.0f} s", flush=True)
    results["sd15_lora"]["native"] = native.pop("sd15_lora")
    results["native"] = native
    save()
    # the bench UNet's reference, at the image size the native side measured
    bench_reference = [python, reference, "--unet-state", unet + ".diffusers.pt", "--image-size",
                       str(native_image_size(native)), "--device", args.device]
    for variant in ("eager_fp32", "eager_bf16"):
        text = run(bench_reference + ["--variant", variant])
        results["python"][variant] = last_json(text, f"python_reference.py --variant {variant}'s stdout")
        save()
    text = run([python, reference, "--sd15-lora", "--device", args.device, "--batch", str(args.sd15_batch),
                "--warmup", "3", "--timed", "10"])
    results["sd15_lora"]["diffusers_peft"] = last_json(text, "python_reference.py --sd15-lora's stdout")
    save()
    for variant in ("compile_bf16", "compile_fp32"):
        if args.deadline and time.time() > args.deadline:
            print(f"gpu bench: {variant} skipped (deadline)", flush=True)
            continue
        text = run(bench_reference + ["--variant", variant], deadline=args.deadline or None)
        if text is not None:
            results["python"][variant] = last_json(text, f"python_reference.py --variant {variant}'s stdout")
            save()
    shutil.rmtree(scratch, ignore_errors=True)
    print(table(results))


if __name__ == "__main__":
    main()
