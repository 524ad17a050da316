"""The seed-claims table's verdicts follow from the rows: each rule (bench/seed_claims.py) says
"holds" for rows that show the claim and not for rows that contradict it."""
import copy
import os
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
try:
    import seed_claims
finally:
    sys.path.pop(0)


def _row(task, method, variant, forgetting, fid, other=0.94, steps_to_target=None, **extra):
    return dict(task=task, method=method, variant=variant, forgetting=forgetting, fid=fid, class_accuracy=0.95,
                other_class_accuracy=other, steps_to_target=steps_to_target, curve=[], **extra)


def _comparison():
    data = [_row("data", "base model (before)", "", 1.0, 1.10),
            _row("data", "siss", "none", 0.0, 1.13, normalized_sscd=0.25),
            _row("data", "siss", "time-frequency", 0.0, 1.09, normalized_sscd=0.20),
            _row("data", "siss_no_is", "none", 0.0, 1.23),
            _row("data", "siss_no_is", "time-frequency", 0.0, 1.44),
            _row("data", "erasediff", "none", 0.0, 1.66),
            _row("data", "erasediff", "time-frequency", 0.0, 1.23),
            _row("data", "naive_deletion", "none", 1.0, 1.30),
            _row("data", "naive_deletion", "time-frequency", 1.0, 1.30)]
    concept = [_row("concept", "base model (before)", "", 1.0, 1.10, other=0.944)]
    for word, anchor in (("near", "sandal"), ("superclass", "footwear")):
        for method in ("mse", "kl", "reverse_kl"):
            concept.append(_row("concept", method, f"{word} ({anchor})", 0.30, 1.9, other=0.939))
        for divergence, left in (("js", 0.40), ("hellinger", 0.45), ("kl", 0.60), ("tv", 0.55)):
            concept.append(_row("concept", f"variational-{divergence}", f"{word} ({anchor})", left, 1.3, other=0.93))
    return {"date": "2026-12-05", "steps": 200, "target": 0.10, "concept": "sneaker", "rows": data + concept}


UNLEARNING = {"models": {"evaluated": {"memorization_rate": 0.0, "normalized_sscd": 0.09}}}


def _set(comparison, method, variant_word, **values):
    for r in comparison["rows"]:
        if r["method"] == method and r["variant"].split(" ")[0] == variant_word:
            r.update(values)
    return comparison


def test_each_claim_holds_for_rows_that_show_it():
    c = _comparison()
    for rule in (seed_claims.siss_pareto, seed_claims.importance_sampling, seed_claims.normalized_sscd,
                 seed_claims.closed_forms_coincide, seed_claims.js_hellinger_faster):
        assert rule(c, UNLEARNING)[1] == "yes", rule.__name__
    text, verdict = seed_claims.siss_pareto(c, UNLEARNING)
    assert "EraseDiff 1.23" in text and "naive deletion does not forget" in text
    # the selection lowers EraseDiff's and SISS's FID, raises SISS without importance sampling's
    text, verdict = seed_claims.time_frequency(c, UNLEARNING)
    assert verdict == "no: lower FID for 2 of the 4 objectives", text
    assert "unchanged for naive deletion" in text
    # the near-class rows keep the other classes but leave 30% of the concept
    assert seed_claims.anchors_preserve(c, UNLEARNING)[1] == "partly: preservation yes, removal not to the target"


def test_each_claim_fails_for_rows_that_contradict_it():
    c = _set(_comparison(), "erasediff", "time-frequency", fid=1.05)
    assert seed_claims.siss_pareto(c, UNLEARNING)[1] == "no"
    c = _set(_set(_comparison(), "siss_no_is", "none", fid=1.0), "siss_no_is", "time-frequency", fid=1.0)
    assert seed_claims.importance_sampling(c, UNLEARNING)[1] == "no"
    c = _set(_comparison(), "siss_no_is", "none", fid=1.0)
    assert seed_claims.importance_sampling(c, UNLEARNING)[1] == "partly: 1 of 2"
    c = _set(_set(_comparison(), "siss", "none", normalized_sscd=0.1), "siss", "time-frequency", normalized_sscd=0.12)
    assert seed_claims.normalized_sscd(c, UNLEARNING)[1].startswith("not seen")
    c = _set(_comparison(), "kl", "near", forgetting=0.35)
    assert seed_claims.closed_forms_coincide(c, UNLEARNING)[1] == "no"
    c = _set(_comparison(), "mse", "near", fid=1.9004)  # the scale 1/tau: not shown, allowed
    assert seed_claims.closed_forms_coincide(c, UNLEARNING)[1] == "yes"
    c = _set(_comparison(), "mse", "near", fid=1.95)
    assert seed_claims.closed_forms_coincide(c, UNLEARNING)[1] == "no"
    c = _set(_comparison(), "reverse_kl", "near", fid=1.9004)  # KL and reverse KL are one run
    assert seed_claims.closed_forms_coincide(c, UNLEARNING)[1] == "no"
    c = _set(_comparison(), "variational-tv", "near", forgetting=0.35)
    assert seed_claims.js_hellinger_faster(c, UNLEARNING)[1] == "partly: for 1 of 2 anchors"
    c = _set(_comparison(), "variational-kl", "superclass", steps_to_target=150, forgetting=0.1)
    c = _set(c, "variational-kl", "near", steps_to_target=150, forgetting=0.1)
    assert seed_claims.js_hellinger_faster(c, UNLEARNING)[1] == "not seen at these settings"
    # reaching the target while keeping the other classes; reaching it only by losing them
    c = _set(_comparison(), "variational-js", "superclass", forgetting=0.05, other_class_accuracy=0.935)
    assert seed_claims.anchors_preserve(c, UNLEARNING)[1] == "yes"
    c = _set(_comparison(), "variational-js", "superclass", forgetting=0.05, other_class_accuracy=0.90)
    assert seed_claims.anchors_preserve(c, UNLEARNING)[1] == "partly: preservation yes, removal not to the target"
    c = _comparison()
    for r in c["rows"]:
        if r["task"] == "concept" and not r["method"].startswith("base"):
            r["other_class_accuracy"] = 0.80
    assert seed_claims.anchors_preserve(c, UNLEARNING)[1] == "no: no row keeps the other classes"


def test_a_claim_without_its_rows_is_not_measured_and_the_table_has_every_claim():
    c = _comparison()
    empty = dict(copy.deepcopy(c), rows=[r for r in c["rows"] if r["method"].startswith("base")])
    for _, _, rule in seed_claims.CLAIMS:
        if rule:
            assert rule(empty, None)[1] == "not measured", rule.__name__
    lines = seed_claims.table(c, UNLEARNING).splitlines()
    assert len([line for line in lines if line.startswith("| ") and "---" not in line]) == 1 + len(seed_claims.CLAIMS)
    assert "| time-frequency | normalized SSCD separates deletion from damage |" in "\n".join(lines)
