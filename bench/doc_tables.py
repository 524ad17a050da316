"""Tables of README.md and docs/*.md generated from measured JSON (and the node registry),
never typed:

  nodes, nodes-brief        <- `lethe nodes --markdown`
  bench-models              <- models/bench/report.json   (`lethe bench check`, `make bench-check`)
  performance               <- bench/results.json          (`make bench`)
  performance-summary       <- bench/results.json          (its first table)
  comparison                <- bench/comparison.json       (`make compare`)
  seed-claims               <- bench/comparison.json and bench/unlearning.json (rules: bench/seed_claims.py)
  unlearning                <- bench/unlearning.json       (`make unlearning-check`)
  tuning                    <- bench/tuning.json           (bench/tune_defaults.py)
  precision-parity-amx      <- bench/precision_parity-amx_bf16.json (`make precision-check`, Intel AMX)
  precision-parity-avx512   <- bench/precision_parity-avx512_bf16.json (`make precision-check`, AVX-512 bf16)
  gpu                       <- bench/gpu_results.json      (`make bench-gpu` on a CUDA machine)
  builds                    <- bench/builds.json           (bench/compare_builds.py: an older build against this one)
  builds-fp32               <- bench/builds-fp32.json      (the same on a CPU where `auto` keeps fp32)

    .venv/bin/python bench/doc_tables.py          # rewrite the sections in every document
    .venv/bin/python bench/doc_tables.py --check  # exit 1 if a document is stale (a test runs this)

Each section sits between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in any of README.md and
docs/*.md; links in a section are written relative to the document that holds it.

Every measured JSON records the SHA-256 of the bench models it was measured with; rendering (and
so `--check`) fails when one differs from the shipped card (models/bench/<model>.card.json), or,
for the bench-shaped UNet the benches generate (bench/python_reference.py --write-unet), from
what that code writes now, or is not recorded: a table never describes other models than the
ones in the repository.
"""
import functools
import json
import os
import re
import statistics
import sys

import seed_claims
from model_hashes import default_recipe, ran_default_recipe

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
README = os.path.join(ROOT, "README.md")


def documents():
    docs = os.path.join(ROOT, "docs")
    names = sorted(f for f in os.listdir(docs) if f.endswith(".md")) if os.path.isdir(docs) else []
    return [README] + [os.path.join(docs, name) for name in names]


BENCH_MODELS = ("base", "retrained", "descriptor", "classifier")


def shipped_models():
    """The SHA-256 of each shipped bench model, from its card."""
    shipped = {}
    for model in BENCH_MODELS:
        with open(os.path.join(ROOT, "models", "bench", f"{model}.card.json")) as f:
            shipped[model] = json.load(f)["sha256"]
    return shipped


@functools.lru_cache(maxsize=None)
def generated_models():
    """The models the benches generate from code rather than ship, by SHA-256: the bench-shaped
    UNet as bench/python_reference.py --write-unet writes it (seeded, the same bytes on every torch
    this was run with). Written once per run of this script (several tables describe it)."""
    import hashlib
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "bench_unet.safetensors")
        subprocess.run([sys.executable, os.path.join(HERE, "python_reference.py"), "--write-unet", path], check=True)
        with open(path, "rb") as f:
            return {"bench_unet": hashlib.sha256(f.read()).hexdigest()}


def check_models(source, recorded, rerun):
    """Fails unless `recorded` ({model: sha256}, at least one) are the shipped (or generated) models."""
    where = os.path.relpath(source, ROOT)
    if not recorded:
        raise SystemExit(f"{where} records no model hashes, so its table cannot be checked against the shipped "
                         f"models: rerun `{rerun}`")
    shipped = shipped_models()
    if "bench_unet" in recorded:
        shipped.update(generated_models())
    wrong = [f"{model} {(sha or '?')[:12]} (shipped: {shipped.get(model, '?')[:12]})"
             for model, sha in sorted(recorded.items()) if shipped.get(model) != sha]
    if wrong:
        raise SystemExit(f"{where} was measured with other models than models/bench/*.card.json: {', '.join(wrong)}; "
                         f"rerun `{rerun}`")


def _comparison_models(result):
    recorded = {"base": result.get("base_sha256"), **result.get("evaluators", {})}
    if "retrained_sha256" in result:  # the data rows' normalized SSCD is placed against it
        recorded["retrained"] = result["retrained_sha256"]
    return recorded


def _tuning_models(result):
    """Every trial's base and descriptor (the classifier follows the descriptor)."""
    recorded = {}
    for trial in result["trials"]:
        for model, key in (("base", "base_sha256"), ("descriptor", "descriptor_sha256")):
            if recorded.get(model, trial.get(key)) != trial.get(key):
                return {model: f"{recorded[model][:12]}/{(trial.get(key) or '?')[:12]} (trials differ)"}
            recorded[model] = trial.get(key)
    return recorded


def _pct(value):
    return f"{100 * value:.1f}%"


def bench_models_table(report):
    m, q, d, c = report["memorization"], report["quality"], report["descriptor"], report["classifier"]
    t = report["targets"]
    mark = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    lines = [
        f"Measured by `lethe bench check` (threshold {report['threshold']}, {m['samples_per_caption']} samples per forget "
        f"caption, DDIM {m['sampling']['steps']} steps, guidance {m['sampling']['guidance']}, seed {m['sampling']['seed']}; "
        f"{report['seconds']:.0f} s on {report['threads']} threads).",
        "",
        "| property | measured | target | met |",
        "|---|---|---|---|",
        f"| `base` memorization, worst forget caption | {_pct(m['base_min'])} (overall {_pct(m['base_overall'])}) | ≥ {_pct(t['base_memorization_min'])} each | {mark(m['base_min'] >= t['base_memorization_min'])} |",
        f"| `retrained` memorization, worst forget caption | {_pct(m['retrained_max'])} (overall {_pct(m['retrained_overall'])}) | ≤ {_pct(t['retrained_memorization_max'])} each | {mark(m['retrained_max'] <= t['retrained_memorization_max'])} |",
        f"| `base` class-conditional accuracy ({q['samples_per_class']} per class) | {_pct(q['base_class_accuracy'])} | ≥ {_pct(t['base_class_accuracy_min'])} | {mark(q['base_class_accuracy'] >= t['base_class_accuracy_min'])} |",
        f"| FID (classifier features, vs {q['fid_real_images']} test images): base / retrained | {q['fid_base']:.2f} / {q['fid_retrained']:.2f} (ratio {q['fid_ratio']:.3f}) | ratio ≤ {t['fid_ratio_max']} | {mark(q['fid_ratio'] <= t['fid_ratio_max'])} |",
        f"| descriptor: augmented copy ranks first among {d['database']} test images | {_pct(d['recall_at_1'])} of {d['queries']} (micro AP {d['micro_average_precision']:.3f}) | ≥ {_pct(t['descriptor_recall_min'])} | {mark(d['recall_at_1'] >= t['descriptor_recall_min'])} |",
        f"| classifier accuracy, Fashion-MNIST test ({c['test_images']}) | {_pct(c['accuracy'])} | ≥ {_pct(t['classifier_accuracy_min'])} | {mark(c['accuracy'] >= t['classifier_accuracy_min'])} |",
        "",
        f"Threshold {report['threshold']}: {_pct(d['copies_at_or_above_threshold'])} of held-out augmented copies and "
        f"{_pct(d['best_distractor_at_or_above_threshold'])} of queries' best non-copy score at or above it; the score "
        f"giving 90% precision on held-out copies is {d['threshold_at_90_precision']:.3f}. Distributions: "
        "[descriptor_scores.png](models/bench/descriptor_scores.png); samples: [memorization.png](models/bench/memorization.png).",
        "",
        "| model | steps | training wall time | SHA-256 |",
        "|---|---|---|---|",
    ]
    for name, entry in report["models"].items():
        wall = entry.get("wall_seconds")
        lines.append(f"| `{name}` | {entry.get('steps')} | {wall / 60:.0f} min | `{entry['sha256'][:16]}…` |" if wall
                     else f"| `{name}` | {entry.get('steps')} | | `{entry['sha256'][:16]}…` |")
    return "\n".join(lines)


def recipe_phrase(result, detail=""):
    """What a measured JSON ran: the shipped default recipe, or an earlier one."""
    if ran_default_recipe(result):
        return f"the default unlearning (bench/configs/siss-tf.json{detail})"
    earlier = "recorded in the result" if result.get("recipe") else "SISS without caption ablation"
    return (f"the default unlearning of {result['date']}{detail}, an earlier recipe than the shipped "
            f"bench/configs/siss-tf.json ({earlier})")


def unlearning_table(result):
    if result.get("config") != default_recipe():
        raise SystemExit("bench/unlearning.json was measured with another recipe than bench/configs/siss-tf.json: "
                         "rerun `make unlearning-check`")
    m, c, s = result["models"], result["checks"], result["summary"]
    rows = [("memorization rate (forget captions)", "memorization_rate", 3), ("normalized SSCD", "normalized_sscd", 3),
            ("mean SSCD to the forget image", "sscd_mean", 3), ("FID (bench classifier features)", "fid", 2),
            ("class-conditional accuracy", "class_accuracy", 3), ("prompt attack: attacked samples that are copies",
                                                 "attack_prompt_success_rate", 3),
            ("relearning attack: steps until held-out pieces return", "attack_relearn_steps", 0)]

    def fmt(value, digits):
        return "" if value is None else f"{value:.{digits}f}"

    def cell(entry, key, digits):
        relearn = (entry.get("attacks") or {}).get("relearn")
        if key == "attack_relearn_steps" and relearn and not relearn["returned"]:
            return f"> {relearn['budget']}"  # did not return within the budget
        return fmt(entry.get(key), digits)

    lines = [f"Measured by `make unlearning-check` ({s['steps']} steps, {s['samples_seen']} samples seen, "
             f"{s['wall_seconds']:.0f} s of unlearning; evaluation: {result['counts']['forget_generations']} forget-caption and "
             f"{result['counts']['class_generations']} class-prompt generations per model). Pictures: "
             "[report](bench/unlearning/report.png), [loss curve](bench/unlearning/loss.png).", "",
             "| metric | base (before) | unlearned | retrained (gold standard) |", "|---|---|---|---|"]
    for label, key, digits in rows:
        lines.append(f"| {label} | {cell(m['baseline'], key, digits)} | {cell(m['evaluated'], key, digits)} | "
                     f"{cell(m['reference'], key, digits)} |")
    lines += ["", "| acceptance | measured | target | met |", "|---|---|---|---|"]
    for name, check in c.items():
        lines.append(f"| {name.replace('_', ' ')} | {check['value']:.4g} | {check['target']} | {'yes' if check['ok'] else '**no**'} |")
    return "\n".join(lines)


def concept_target_line(result, rows):
    """Which concept rows meet seed_claims.CONCEPT_TARGET against the base model's row. FID is that of the
    other classes (the classes to keep): the FID of all classes rises with the erasure itself."""
    base = next((r for r in rows if r["method"].startswith("base")), None)
    if base is None or base.get("other_class_accuracy") is None or base.get("fid_other_classes") is None:
        return ("The concept target cannot be checked: the base model's row has no per-class accuracy or no FID of the "
                "other classes.")
    t = seed_claims.CONCEPT_TARGET
    measured = [r for r in rows if not r["method"].startswith("base")]
    checked = [r for r in measured if r.get("fid_other_classes") is not None and r["other_class_accuracy"] is not None]
    met = [f"{r['method']} ({r['variant']})" for r in checked
           if r["forgetting"] <= t["forgetting"] and round(r["fid_other_classes"] / base["fid_other_classes"], 9) <= t["fid_ratio"]
           and seed_claims.keeps_other_classes(r, base, t["other_class_points"])]
    unchecked = len(measured) - len(checked)
    return (f"Concept target: `{result['concept']}` in at most {t['forgetting']:.0%} of its samples, the other classes' "
            f"accuracy within {t['other_class_points']:.0f} points of the base model's ({base['other_class_accuracy']:.3f}) "
            f"and their FID at most {t['fid_ratio']}x its ({t['fid_ratio'] * base['fid_other_classes']:.2f}). "
            + (f"Met by: {'; '.join(met)}." if met else "No row meets it yet.")
            + (f" {unchecked} row{'s' if unchecked != 1 else ''} without the FID of the other classes cannot be checked."
               if unchecked else ""))


def comparison_table(result):
    def cell(value, digits=3):
        return "" if value is None else f"{value:.{digits}f}"

    lines = [f"Generated {result['date']} by `make compare` (bench/compare_objectives.py): up to {result['steps']} steps "
             f"of batch 16 per run, snapshots every {result['snapshot_every']} steps; target: forgetting metric <= "
             f"{result['target']}. Final evaluations: {' '.join(result['final_eval'])}"
             + (f" (concept task: {' '.join(result['concept_final_eval'])})" if result.get("concept_final_eval") else "")
             + (f"; unlearned from base model {result['base_sha256'][:12]}" if "base_sha256" in result else "")
             + (f"; scored with descriptor {result['evaluators']['descriptor'][:12]} and classifier "
                f"{result['evaluators']['classifier'][:12]}" if "evaluators" in result else "")
             + (" (sha256 prefixes)" if "base_sha256" in result or "evaluators" in result else "") + ".", ""]
    for task, title, metric in (("data", "Data unlearning (the artist's ten pieces)", "memorization rate"),
                                ("concept", f"Concept unlearning (erase `{result['concept']}`)",
                                 f"`{result['concept']}` samples classified as {result['concept']}")):
        rows = [r for r in result["rows"] if r["task"] == task]
        if not rows:
            continue
        # Wall times are comparable only on one CPU at one thread count: the header names them
        # when the rows share them (`compare_objectives.py --retime`), else each cell does.
        def timed_on(r):
            n = r.get("threads")
            if not n:
                return "threads not recorded"
            return (f"{n} torch thread{'s' if n != 1 else ''}" + (f", {r['cpu']}" if r.get("cpu") else "")
                    + (", subnormals flushed" if r.get("flush_denormals") else ""))

        conditions = {timed_on(r) for r in rows if not r["method"].startswith("base")}
        shared = conditions.pop() if len(conditions) == 1 else None
        # CPU time (user + system) is what other jobs on the machine barely change; wall time beside it.
        wall_title = f"unlearning CPU time, wall time ({shared})" if shared else "unlearning CPU time, wall time"

        def wall(r):
            if r["method"].startswith("base"):
                return ""
            cpu = r.get("unlearning_cpu_seconds")
            return ((f"{cpu:.0f} s, " if cpu is not None else "not recorded, ") + f"{r['unlearning_seconds']:.0f} s"
                    + ("" if shared else f" ({timed_on(r)})"))

        concept = task == "concept"
        def relearned(r):
            if r.get("evaluation") == "earlier" or "attack_relearn_steps" not in r:
                return ""
            return "not back" if r["attack_relearn_steps"] is None else f"{r['attack_relearn_steps']:.0f}"

        # The concept task adds the FID of the classes kept, the data task the normalized SSCD.
        extra = ("FID, other classes", "fid_other_classes", 2) if concept else ("normalized SSCD", "normalized_sscd", 3)
        lines += [f"**{title}**", "", f"| method | selection / anchor | {metric} | FID | {extra[0]} | "
                  f"class accuracy | other classes | steps to target | prompt attack | relearning steps | {wall_title} |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            steps = "" if r["method"].startswith("base") else (str(r["steps_to_target"]) if r["steps_to_target"] is not None else f"> {result['steps']}")
            attack = r.get("attack_prompt_success_rate") if r.get("evaluation") != "earlier" else None
            lines.append(f"| {r['method']} | {r['variant']} | {cell(r['forgetting'])} | {cell(r['fid'], 2)} | "
                         f"{cell(r.get(extra[1]), extra[2])} | "
                         f"{cell(r['class_accuracy'])} | {cell(r['other_class_accuracy'])} | {steps} | "
                         f"{cell(attack)} | {relearned(r)} | {wall(r)} |")
        if concept:
            lines += ["", f"Prompt attack: the share of samples from optimised soft prompts that the classifier calls "
                      f"{result['concept']}; relearning steps: fine-tuning steps on half the class's images until the "
                      "other half's prompt draws it again (docs/evaluation.md §8)."]
        else:
            lines += ["", "Normalized SSCD: 0 draws as far from the forget images as the retrained model, 1 as close as "
                      "the base model. Prompt attack: the share of samples from optimised soft prompts that are copies; "
                      "relearning steps: fine-tuning steps on half the pieces until the other half are copies again "
                      "(docs/evaluation.md §8). Empty cells: the row was measured before the metric existed."]
        lines.append("")
        if task == "concept":
            lines += [concept_target_line(result, rows), ""]
    def row_name(r):  # rows saved before they carried their name: compare_objectives.py's default
        return r.get("name", f"{r['task']}-{r['method']}-{r['variant'].split(' ')[0]}")

    earlier = [row_name(r) for r in result["rows"] if r.get("engine") == "earlier"]
    measured = [r for r in result["rows"] if not r["method"].startswith("base")]
    if earlier and len(earlier) == len(measured):
        lines += ["Every row was measured by an earlier version of the engine's sources (same models, settings and "
                  "seed; `compare_objectives.py --assemble`).", ""]
    elif earlier:
        lines += [f"Rows measured by an earlier version of the engine's sources (same models, settings and seed): "
                  f"{', '.join(earlier)}.", ""]
    evaluated_earlier = [row_name(r) for r in result["rows"] if r.get("evaluation") == "earlier"]
    if evaluated_earlier:
        lines += ["Rows evaluated before the concept task's final evaluation named the erased class (no FID of the other "
                  f"classes; the attacks aimed at the data task's pieces): {', '.join(evaluated_earlier)}.", ""]
    if result.get("missing"):
        lines += [f"Not yet measured on the shipped models: {', '.join(result['missing'])}.", ""]
    return "\n".join(lines).rstrip()


def seed_claims_table(result):
    """The papers' claims against the comparison and, where a claim needs it, the default's check."""
    source, unlearning = os.path.join(HERE, "unlearning.json"), None
    if os.path.exists(source):
        with open(source) as f:
            unlearning = json.load(f)
        check_models(source, unlearning.get("models_sha256"), "make unlearning-check")
    return seed_claims.table(result, unlearning)


def tuning_table(result):
    shipped = shipped_models()
    short = lambda sha, model: f"`{sha[:8]}`" + (" (shipped)" if sha == shipped[model] else "")  # noqa: E731
    lines = []
    for sha, b in result["bases"].items():
        lines.append(f"Base {short(sha, 'base')}: memorization {b['memorization_rate']:.3f}, FID {b['fid']:.2f}, "
                     f"accuracy {b['class_accuracy']:.3f} (descriptor {short(b.get('descriptor_sha256', '?'), 'descriptor')}).")
    lines += ["", "Memorization and FID depend on the base model a trial unlearned from and on the bench descriptor and "
              "classifier it was scored with; rows with an earlier base or descriptor are not comparable with the tables "
              "above (the classifier follows the descriptor: both were retrained together).", "",
              "| trial | memorization | FID | class accuracy | base | descriptor |", "|---|---|---|---|---|---|"]
    lines += [f"| {t['label']} | {t['memorization_rate']:.3f} | {t['fid']:.2f} | {t['class_accuracy']:.3f} | "
              f"{short(t['base_sha256'], 'base')} | {short(t.get('descriptor_sha256', '?'), 'descriptor')} |"
              for t in result["trials"]]
    return "\n".join(lines)


def performance_table(results):
    sys.path.insert(0, HERE)
    from run_bench import markdown_table

    return markdown_table(results)


def performance_summary(results):
    """The README's short form: the machine, native fp32 and bf16 against the fastest Python
    way for the step and sampling, and the evaluation line."""
    sys.path.insert(0, HERE)
    from run_bench import VARIANT_NAMES, evaluation_line, measured_precisions

    n, p, r = results["native"], results["python"], results["ratios"]
    m = n["machine"]
    precisions = measured_precisions(n)
    step, fast_step = r["fastest_python_train_step"], r["fastest_python_sampling"]
    paired = results.get("paired")
    lines = [f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores, torch {m['torch']}; `auto` picks "
             f"{n['auto_precision']['precision']} here)."
             + (f" Speed-ups: medians of {paired['bursts']} paired bursts, native and the close Python ways taking "
                "turns, each burst against its fastest; times: each side alone." if paired else ""), "",
             "| measurement | " + " | ".join(f"native {q}" for q in precisions) + " | fastest Python way | speed-up |",
             "|---" * (len(precisions) + 3) + "|",
             "| SISS step, batch %d | " % n["precisions"]["fp32"]["train_step"]["batch"]
             + " | ".join("%.3f s" % n["precisions"][q]["train_step"]["median_seconds"] for q in precisions)
             + " | %.3f s (%s) | %.3fx |" % (p[step]["train_step"]["median_seconds"], VARIANT_NAMES[step], r["train_step_speedup"]),
             "| DDIM sampling, batch %d | " % n["precisions"]["fp32"]["sampling"]["batch"]
             + " | ".join("%.1f img/s" % n["precisions"][q]["sampling"]["images_per_second"] for q in precisions)
             + " | %.1f img/s (%s) | %.3fx |" % (p[fast_step]["sampling"]["images_per_second"], VARIANT_NAMES[fast_step],
                                                r["sampling_speedup"])]
    evaluation = evaluation_line(results, stages=False)
    return "\n".join(lines + (["", evaluation] if evaluation else []))


def precision_parity_table(result):
    """fp32 against bf16 over training seeds: per metric, each precision's mean and spread."""
    m, s = result["machine"], result["stats"]
    labels = {"memorization_rate": ("memorization rate", 3), "sscd_mean": ("mean SSCD to the forget image", 3),
              "fid": ("FID", 3), "class_accuracy": ("class accuracy", 3)}
    hardware = {"amx_bf16": "bf16 on AMX tiles", "avx512_bf16": "bf16 on AVX-512 bf16 dot products, no AMX"}
    recipe = recipe_phrase(result)
    lines = [f"Measured {result['date']} by `make precision-check` on {m['cpu']} ({m['threads']} threads; "
             f"{hardware.get(result['bf16_hardware'], 'no bf16 instructions')}): {recipe} and the default "
             f"evaluation of its model (no attacks), both in the "
             f"precision of the column, training seeds {', '.join(map(str, result['seeds']))}. Spread: max - min over "
             "the seeds.", "",
             "| metric | fp32 mean (spread) | bf16 mean (spread) | bf16 - fp32 | within fp32's spread |",
             "|---|---|---|---|---|"]
    for metric, (label, digits) in labels.items():
        f, b, p = s["fp32"][metric], s["bf16"][metric], result["parity"][metric]
        lines.append(f"| {label} | {f['mean']:.{digits}f} ({f['spread']:.{digits}f}) | {b['mean']:.{digits}f} "
                     f"({b['spread']:.{digits}f}) | {b['mean'] - f['mean']:+.{digits}f} | {'yes' if p['ok'] else '**no**'} |")
    seconds = {q: statistics.fmean(r["unlearning_seconds"] for r in rows) for q, rows in result["rows"].items()}
    evaluation = {q: statistics.fmean(r["evaluation_seconds"] for r in rows) for q, rows in result["rows"].items()}
    lines += ["", f"Mean unlearning wall time: fp32 {seconds['fp32']:.0f} s, bf16 {seconds['bf16']:.0f} s; evaluation "
              f"of one model without attacks: fp32 {evaluation['fp32']:.0f} s, bf16 {evaluation['bf16']:.0f} s."]
    return "\n".join(lines)


def distributed_scaling_table(result):
    """Data-parallel unlearning over 1, 2, 4 ranks: step time, rank 0's collectives, speedup."""
    m = result["machine"]
    recipe = recipe_phrase(result, f", {result['steps']} steps, {result['rows'][0]['precision']}")
    lines = [f"Measured {result['date']} by `make distributed-scaling` on {m['cpu']}: {recipe} in one process with "
             f"{m['threads_one_process']} threads, then over N ranks on this machine (Gloo on loopback), each rank "
             "with its share of the cores. Collectives: rank 0's, per training step (seconds: rank 0's wait, "
             "the part the backward did not hide). The ranks share this machine's "
             "cores, so the best they can reach is one process's speed (speedup 1.00x): the rows show what the "
             "data-parallel path costs here (collectives, smaller batches per rank). Efficiency is speedup / ranks, "
             "what it means where each rank brings its own cores or GPU.", "",
             "| ranks | threads per rank | s per step | all-reduce s (MB) per step | all-gather s (MB) per step | "
             "speedup | efficiency |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['ranks']} | {r['threads_per_rank']} | {r['seconds_per_step']:.3f} | "
                     f"{r['all_reduce_seconds_per_step']:.3f} ({r['all_reduce_bytes_per_step'] / 1e6:.1f}) | "
                     f"{r['all_gather_seconds_per_step']:.3f} ({r['all_gather_bytes_per_step'] / 1e6:.2f}) | "
                     f"{r['speedup']:.2f}x | {100 * r['efficiency']:.0f}% |")
    return "\n".join(lines)


def distributed_scaling_brief(result):
    """The README's form of the scaling table: step time, all-reduce and efficiency per rank count."""
    m = result["machine"]
    lines = [f"Measured {result['date']} by `make distributed-scaling` on {m['cpu']} ({m['threads_one_process']} cores "
             f"shared by the ranks, Gloo on loopback; {result['steps']} "
             f"{'default' if ran_default_recipe(result) else 'previous default'} unlearning steps, "
             f"{result['rows'][0]['precision']}):", "",
             "| ranks | s per step | all-reduce wait s (MB) per step | efficiency |", "|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['ranks']} | {r['seconds_per_step']:.3f} | {r['all_reduce_seconds_per_step']:.3f} "
                     f"({r['all_reduce_bytes_per_step'] / 1e6:.1f}) | {100 * r['efficiency']:.0f}% |")
    return "\n".join(lines)


def gpu_table(results):
    sys.path.insert(0, HERE)
    from gpu_bench import table

    return table(results)


BUILD_STAGES = {"step_seconds": ("SISS training step, batch 32", "%.3f s"),
                "sampling_images_per_second": ("DDIM sampling", "%.1f img/s"),
                "scoring_images_per_second": ("copy-descriptor scoring", "%.0f img/s"),
                "unlearn_seconds": ("`lethe unlearn`, default bench config", "%.0f s"),
                "unlearn_peak_rss_mib": ("its peak RSS", "%.0f MiB"),
                "eval_seconds": ("default `lethe eval` of its model", "%.0f s"),
                "quickstart_seconds": ("quickstart (`lethe run workflows/quickstart.json`)", "%.0f s")}


def builds_table(result):
    """An older build against this one on one machine (bench/compare_builds.py)."""
    m, p, s = result["machine"], result["new_precision"], result["stages"]
    old = result.get("old_precision", {"reason": "the only precision of that version"})
    old_precision = ("(before the precision setting, fp32 only)" if old["reason"] == "the only precision of that version"
                     else f"in its default precision (`auto`: {old['used']} here)")
    lines = [f"Measured {result['date']} by bench/compare_builds.py on {m['cpu']} ({m['threads']} threads, torch "
             f"{m['torch']}): the `lethe` program of `{result['old']['commit']}` {old_precision} against "
             f"`{result['new']['commit']}` in its default precision, `auto`, which picks "
             f"{p['used']} here ({p['reason'].removeprefix('auto: ').removeprefix(p['used'] + ', ')}); "
             f"{result['rounds']} round(s), alternating "
             "which build ran first. The ratio is how much better the new build is (above 1: better).", "",
             "| measurement | old | new | new vs old |", "|---|---|---|---|"]
    for key, (label, fmt) in BUILD_STAGES.items():
        e = s[key]
        lines.append(f"| {label} | {fmt % e['old']} | {fmt % e['new']} | {e['new_vs_old']:.2f}x |")
    for precision, e in result.get("new_other_precisions", {}).items():
        lines += ["", f"The new build in {precision} on this machine, measured in the same run: training step "
                  f"{e['step_seconds']:.3f} s, sampling {e['sampling_images_per_second']:.1f} img/s."]
    return "\n".join(lines)


# name: (measured JSON, table, the models it was measured with, the command that measures it)
SECTIONS = {
    "bench-models": (os.path.join(ROOT, "models", "bench", "report.json"), bench_models_table,
                     lambda r: {name: entry["sha256"] for name, entry in r["models"].items()}, "make bench-check"),
    "performance": (os.path.join(HERE, "results.json"), performance_table, lambda r: r.get("models"), "make bench"),
    "performance-summary": (os.path.join(HERE, "results.json"), performance_summary, lambda r: r.get("models"),
                            "make bench"),
    "comparison": (os.path.join(HERE, "comparison.json"), comparison_table, _comparison_models, "make compare"),
    "seed-claims": (os.path.join(HERE, "comparison.json"), seed_claims_table, _comparison_models, "make compare"),
    "unlearning": (os.path.join(HERE, "unlearning.json"), unlearning_table, lambda r: r.get("models_sha256"),
                   "make unlearning-check"),
    "precision-parity-amx": (os.path.join(HERE, "precision_parity-amx_bf16.json"), precision_parity_table,
                             lambda r: r.get("models_sha256"), "make precision-check"),
    "precision-parity-avx512": (os.path.join(HERE, "precision_parity-avx512_bf16.json"), precision_parity_table,
                                lambda r: r.get("models_sha256"), "make precision-check"),
    "tuning": (os.path.join(HERE, "tuning.json"), tuning_table, _tuning_models, ".venv/bin/python bench/tune_defaults.py"),
    "distributed-scaling": (os.path.join(HERE, "distributed_scaling.json"), distributed_scaling_table,
                            lambda r: r.get("models_sha256"), "make distributed-scaling"),
    "gpu": (os.path.join(HERE, "gpu_results.json"), gpu_table, lambda r: r.get("models"), "make bench-gpu"),
    "builds": (os.path.join(HERE, "builds.json"), builds_table, lambda r: r.get("models"),
               ".venv/bin/python bench/compare_builds.py --old <older checkout> --out bench"),
    "builds-fp32": (os.path.join(HERE, "builds-fp32.json"), builds_table, lambda r: r.get("models"),
                    ".venv/bin/python bench/compare_builds.py --old <older checkout> --out bench --name builds-fp32.json"),
    "distributed-scaling-brief": (os.path.join(HERE, "distributed_scaling.json"), distributed_scaling_brief,
                                  lambda r: r.get("models_sha256"), "make distributed-scaling"),
}


def node_list():
    import subprocess

    lethe = os.environ.get("LETHE_EXE", os.path.join(ROOT, "build", "lethe"))
    return subprocess.run([lethe, "nodes", "--markdown"], capture_output=True, text=True, check=True).stdout.rstrip()


def brief_node_list(full):
    """The README's short list: the nodes of each category, from the full table (whose rows are
    `node | category | inputs | outputs | what it does`)."""
    categories = {}
    for line in full.splitlines()[2:]:
        cells = line.split(" | ")
        categories.setdefault(cells[1].strip(), []).append(cells[0].strip("| "))
    lines = ["| category | nodes |", "|---|---|"]
    lines += [f"| {category} | {', '.join(nodes)} |" for category, nodes in sorted(categories.items())]
    return "\n".join(lines)


def _relink(body, document):
    """Repository-relative links in `body` as seen from `document`'s folder."""
    prefix = os.path.relpath(ROOT, os.path.dirname(document))
    if prefix == ".":
        return body
    return re.sub(r"\]\((?!https?:|#|/)([^)]+)\)", lambda m: f"]({prefix}/{m.group(1)})", body)


def _replace(text, name, body):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text:
        return text
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + body + "\n" + end + tail


def render(text, document=README, nodes=None):
    if "<!-- nodes" in text:
        nodes = nodes or node_list()
        text = _replace(text, "nodes", _relink(nodes, document))
        text = _replace(text, "nodes-brief", _relink(brief_node_list(nodes), document))
    for name, (source, make, models, rerun) in SECTIONS.items():
        begin = f"<!-- {name}:begin -->"
        if begin not in text or not os.path.exists(source):
            continue
        with open(source) as f:
            data = json.load(f)
        if data.get("mode") == "quick" or data.get("tiny") or data.get("partial"):
            continue  # smoke-test output is never shown
        check_models(source, models(data), rerun)
        text = _replace(text, name, _relink(make(data), document))
    return text


def main():
    nodes = node_list()
    stale = []
    for document in documents():
        with open(document) as f:
            current = f.read()
        wanted = render(current, document, nodes)
        if wanted == current:
            continue
        stale.append(os.path.relpath(document, ROOT))
        if "--check" not in sys.argv:
            with open(document + ".tmp", "w") as f:
                f.write(wanted)
            os.replace(document + ".tmp", document)
            print(f"{os.path.relpath(document, ROOT)}: tables updated")
    if stale and "--check" in sys.argv:
        raise SystemExit(f"generated tables are stale in {', '.join(stale)}: run .venv/bin/python bench/doc_tables.py")


if __name__ == "__main__":
    main()
