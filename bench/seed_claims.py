"""The claims of the three papers Lethe builds on, each with the rule that decides from the bench's
measurements whether it holds here. bench/doc_tables.py writes the table (README.md, docs/results.md)
from bench/comparison.json (`make compare`) and bench/unlearning.json (`make unlearning-check`):
only the claims are typed; every number and every verdict is computed, so the table changes when
the rows do.
"""
import math

NAMES = {"siss": "SISS", "siss_no_is": "SISS without importance sampling", "neggrad": "NegGrad",
         "naive_deletion": "naive deletion", "erasediff": "EraseDiff", "dpo": "DPO", "npo": "NPO",
         "mse": "MSE", "kl": "KL", "reverse_kl": "reverse KL", "js": "JS", "hellinger": "Hellinger",
         "chi2": "chi-square", "tv": "TV"}
SELECTION = "time-frequency"  # the data rows' variant with timestep and frequency selection
ANCHORS = (("near", "near class"), ("superclass", "superclass"))
F_DIVERGENCES = ("mse", "kl", "reverse_kl", "js", "hellinger", "chi2")  # closed forms
VARIATIONAL = ("kl", "reverse_kl", "js", "hellinger", "chi2", "tv")
# Numbers are shown with two decimals; a difference they do not show is no difference.
SAME = 0.005
# The concept task's target (docs/results.md): the concept in at most this share of its samples,
# the other classes' accuracy within this many points of the base model's, their FID within this ratio.
CONCEPT_TARGET = {"forgetting": 0.10, "other_class_points": 2.0, "fid_ratio": 1.15}


def keeps_other_classes(row, base, points=CONCEPT_TARGET["other_class_points"]):
    """Whether `row` keeps the other classes' accuracy within `points` of the base model's (points
    rounded: 0.944 - 0.924 is 2.0000000000000018)."""
    return round(100 * (base["other_class_accuracy"] - row["other_class_accuracy"]), 9) <= points


def _name(method):
    return NAMES.get(method, method)


def _measured(comparison, task):
    return [r for r in comparison["rows"] if r["task"] == task and not r["method"].startswith("base")]


def _base(comparison, task):
    return next((r for r in comparison["rows"] if r["task"] == task and r["method"].startswith("base")), None)


def _row(rows, method, variant_word):
    return next((r for r in rows if r["method"] == method and r["variant"].split(" ")[0] == variant_word), None)


def siss_pareto(comparison, _unlearning):
    """SISS keeps the best quality among the objectives that forget (the data task's target)."""
    rows, target = _measured(comparison, "data"), comparison["target"]
    forgot = [r for r in rows if r["forgetting"] <= target]
    best = {}
    for r in forgot:
        best[r["method"]] = min(best.get(r["method"], math.inf), r["fid"])
    siss = [r for r in forgot if r["method"] == "siss"]
    others = {m: fid for m, fid in best.items() if m not in ("siss", "siss_no_is")}
    never = sorted({r["method"] for r in rows} - set(best) - {"siss_no_is"})
    base = _base(comparison, "data")
    if not any(r["method"] == "siss" for r in rows):
        return "not measured: the comparison has no SISS row", "not measured"
    if not siss:
        return f"SISS does not reach memorization <= {target:.2f} within {comparison['steps']} steps", "no"
    holds = not others or min(r["fid"] for r in siss) < min(others.values())
    siss_text = "; ".join(f"{r['fid']:.2f}" + (" with time-frequency selection" if r["variant"] == SELECTION else "")
                          for r in siss)
    text = (f"of the objectives that reach memorization <= {target:.2f}, SISS keeps "
            + ("the lowest FID" if holds else "an FID of") + f" ({siss_text}"
            + (f"; base {base['fid']:.2f}" if base else "") + ")"
            + (", against " + ", ".join(f"{_name(m)} {fid:.2f}" for m, fid in sorted(others.items(), key=lambda e: e[1]))
               if others else "")
            + (f"; {', '.join(_name(m) for m in never)} do{'es' if len(never) == 1 else ''} not forget within "
               f"{comparison['steps']} steps" if never else ""))
    return text, "yes" if holds else "no"


def importance_sampling(comparison, _unlearning):
    """SISS against its variant without importance sampling, with and without the selection."""
    rows = _measured(comparison, "data")
    pairs = [(v, _row(rows, "siss", v), _row(rows, "siss_no_is", v)) for v in ("none", SELECTION)]
    pairs = [(v, a, b) for v, a, b in pairs if a and b]
    if not pairs:
        return "not measured: the comparison has no SISS rows with and without importance sampling", "not measured"
    better = sum(a["fid"] < b["fid"] - SAME for _, a, b in pairs)
    text = ("without importance sampling FID " + " and ".join(f"{b['fid']:.2f} ({'no selection' if v == 'none' else v})"
                                                              for v, _, b in pairs)
            + " against " + " and ".join(f"{a['fid']:.2f}" for _, a, _ in pairs))
    verdict = "yes" if better == len(pairs) else ("no" if better == 0 else f"partly: {better} of {len(pairs)}")
    return text, verdict


def time_frequency(comparison, _unlearning):
    """The selection lowers the FID of each objective it changes."""
    rows, target = _measured(comparison, "data"), comparison["target"]
    lower, higher, same, lost = [], [], [], []
    for method in dict.fromkeys(r["method"] for r in rows):
        plain, selected = _row(rows, method, "none"), _row(rows, method, SELECTION)
        if not plain or not selected:
            continue
        change = f"{_name(method)} ({plain['fid']:.2f} to {selected['fid']:.2f})"
        (lower if selected["fid"] < plain["fid"] - SAME else higher if selected["fid"] > plain["fid"] + SAME
         else same).append(change)
        if selected["forgetting"] > target >= plain["forgetting"]:
            lost.append(f"{_name(method)} forgets less with it ({selected['forgetting']:.3f} against "
                        f"{plain['forgetting']:.3f})")
    n = len(lower) + len(higher) + len(same)
    if n == 0:
        return "not measured: the comparison has no pair of rows with and without the selection", "not measured"
    text = "; ".join(part for part in (
        "FID lower with the selection for " + ", ".join(lower) if lower else "",
        "higher for " + ", ".join(higher) if higher else "",
        "unchanged for " + ", ".join(same) if same else "", *lost) if part)
    if len(lower) == n:
        return text, "yes"
    return text, (f"mostly: lower FID for {len(lower)} of the {n} objectives" if 2 * len(lower) > n
                  else f"no: lower FID for {len(lower)} of the {n} objectives")


def normalized_sscd(comparison, unlearning):
    """Normalized SSCD tells apart runs that memorization calls equally forgotten."""
    runs = [(f"{_name(r['method'])}" + (", time-frequency" if r["variant"] == SELECTION else ""), r["normalized_sscd"])
            for r in _measured(comparison, "data") if r["forgetting"] <= 0.05 and r.get("normalized_sscd") is not None]
    evaluated = (unlearning or {}).get("models", {}).get("evaluated", {})
    if evaluated.get("normalized_sscd") is not None and evaluated.get("memorization_rate", 1) <= 0.05:
        runs.append(("the default", evaluated["normalized_sscd"]))
    if len(runs) < 2:
        return "not measured: fewer than two runs with memorization <= 0.05 record a normalized SSCD", "not measured"
    low, high = min(runs, key=lambda e: e[1]), max(runs, key=lambda e: e[1])
    text = (f"among {len(runs)} runs with memorization <= 0.05, normalized SSCD goes from {low[1]:.3f} ({low[0]}) to "
            f"{high[1]:.3f} ({high[0]}); 0 is the retrained model, 1 the base")
    return text, "yes" if high[1] - low[1] >= 0.1 else "not seen: the runs' normalized SSCD differ by less than 0.1"


def closed_forms_coincide(comparison, _unlearning):
    """The closed-form KL and reverse KL are MSE / tau for the reverse process's equal-variance
    Gaussians: KL's and reverse KL's rows are the same run; MSE's differs only through the scale
    (Adam's epsilon, gradient clipping), by less than the table shows."""
    rows = _measured(comparison, "concept")
    exact = ("forgetting", "class_accuracy", "other_class_accuracy", "curve")
    groups = [[_row(rows, m, word) for m in ("mse", "kl", "reverse_kl")] for word, _ in ANCHORS]
    groups = [g for g in groups if all(g)]
    if not groups:
        return "not measured: the comparison lacks the closed-form MSE, KL and reverse KL rows", "not measured"
    kl_same = all(g[1].get(k) == g[2].get(k) for g in groups for k in exact + ("fid",))
    mse_close = all(g[0].get(k) == g[1].get(k) for g in groups for k in exact) and \
        all(abs(g[0]["fid"] - g[1]["fid"]) < SAME for g in groups)
    fid_gap = max(abs(g[0]["fid"] - g[1]["fid"]) for g in groups)
    if kl_same and mse_close:
        return ("closed forms: KL and reverse KL are MSE / tau for the reverse process's equal-variance Gaussians; with "
                f"{len(groups)} anchors their rows are identical, and MSE's agree with them but for FID (at most "
                f"{fid_gap:.4f} apart: the scale reaches the update through Adam's epsilon and gradient clipping)"), "yes"
    return ("the closed-form MSE, KL and reverse KL rows differ: "
            + "; ".join(", ".join(f"{_name(r['method'])} {r['forgetting']:.2f} (FID {r['fid']:.3f})" for r in g)
                        for g in groups)), "no"


def js_hellinger_faster(comparison, _unlearning):
    """Variational JS and Hellinger reach a lower share of the concept sooner than the others."""
    rows, steps = _measured(comparison, "concept"), comparison["steps"]

    def speed(r):  # sooner to the target, else less of the concept left at the end
        return (r["steps_to_target"] if r["steps_to_target"] is not None else math.inf, round(r["forgetting"], 9))

    parts, faster = [], 0
    for word, label in ANCHORS:
        found = {d: _row(rows, f"variational-{d}", word) for d in VARIATIONAL}
        found = {d: r for d, r in found.items() if r}
        if "js" not in found or "hellinger" not in found or len(found) < 3:
            continue
        others = [speed(r) for d, r in found.items() if d not in ("js", "hellinger")]
        faster += max(speed(found["js"]), speed(found["hellinger"])) < min(others)
        parts.append(f"{label}: " + ", ".join(f"{_name(d)} {r['forgetting']:.2f}" for d, r in found.items()))
    if not parts:
        return "not measured: the comparison lacks the variational rows", "not measured"
    text = f"variational forms, share of `{comparison['concept']}` samples left after {steps} steps: " + "; ".join(parts)
    return text, ("yes" if faster == len(parts) else "not seen at these settings" if faster == 0
                  else f"partly: for {faster} of {len(parts)} anchors")


def anchors_preserve(comparison, _unlearning, other_class_points=CONCEPT_TARGET["other_class_points"]):
    """An f-divergence with a near-class or superclass anchor removes the concept and keeps the rest."""
    rows, target = _measured(comparison, "concept"), comparison["target"]
    base = _base(comparison, "concept")
    if base is None or base.get("other_class_accuracy") is None:
        return "not measured: the base model's row has no per-class accuracy", "not measured"
    f_rows = [r for r in rows if r["method"] in F_DIVERGENCES
              or r["method"].startswith("variational-") and r["method"][len("variational-"):] in VARIATIONAL]
    parts, removed, kept = [], False, False
    for word, label in ANCHORS:
        anchored = [r for r in f_rows if r["variant"].split(" ")[0] == word and r["other_class_accuracy"] is not None]
        if not anchored:
            continue
        # Preserving: the other classes' accuracy within `other_class_points` of the base model's.
        keeping = [r for r in anchored if keeps_other_classes(r, base, other_class_points)]
        if not keeping:
            parts.append(f"{label}: every row loses more than {other_class_points:.0f} points on the other classes")
            continue
        best = min(keeping, key=lambda r: r["forgetting"])
        kept, removed = True, removed or best["forgetting"] <= target
        method = best["method"].replace("variational-", "")
        parts.append(f"{label}: at best {best['forgetting']:.2f} left ({_name(method)}"
                     + (", variational" if best["method"].startswith("variational-") else ", closed form")
                     + f"; other classes {best['other_class_accuracy']:.3f})")
    if not parts:
        return "not measured: the comparison lacks the anchored f-divergence rows", "not measured"
    text = (f"of the rows that keep the other classes within {other_class_points:.0f} points of the base model "
            f"({base['other_class_accuracy']:.3f}), " + "; ".join(parts) + f"; target <= {target:.2f}")
    verdict = ("yes" if removed else "partly: preservation yes, removal not to the target" if kept
               else "no: no row keeps the other classes")
    return text, verdict


# (paper, claim, rule); a rule of None: the bench cannot test the claim.
CLAIMS = [
    ("SISS", "SISS unlearns with less damage to quality than the general-purpose objectives (Pareto optimal on "
     "CelebA-HQ and MNIST)", siss_pareto),
    ("SISS", "importance sampling matters (SISS against its variant without it)", importance_sampling),
    ("SISS", "memorization mitigated for about 90% of Stable Diffusion prompts", None),
    ("time-frequency", "selecting timesteps and frequencies improves the quality of unlearned samples, for gradient "
     "and preference objectives alike", time_frequency),
    ("time-frequency", "normalized SSCD separates deletion from damage", normalized_sscd),
    ("f-divergence", "the usual MSE concept loss is one member of an f-divergence family", closed_forms_coincide),
    ("f-divergence", "JS and squared Hellinger converge faster than the others", js_hellinger_faster),
    ("f-divergence", "a near-class or superclass anchor removes the concept while preserving unrelated ones",
     anchors_preserve),
]


def table(comparison, unlearning):
    """The claims table in Markdown: the comparison's rows (one seed, its steps) and the default's check."""
    lines = [f"From `make compare` of {comparison['date']} (one seed, at most {comparison['steps']} steps) and "
             "`make unlearning-check`. \"Not measured\": the bench cannot test it (no Stable Diffusion, CelebA-HQ or "
             "artists' styles, only a Fashion-MNIST-sized model).", "",
             "| paper | claim | measured on the bench | holds here |", "|---|---|---|---|"]
    for paper, claim, rule in CLAIMS:
        measured, verdict = rule(comparison, unlearning) if rule else ("not measured", "not measured")
        lines.append(f"| {paper} | {claim} | {measured} | {verdict} |")
    return "\n".join(lines)
