"""`make bench` cannot rot: its harness runs end to end at toy sizes (no timing asserted),
and the README's generated tables match the JSON they are generated from."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def test_bench_harness_runs_at_tiny_sizes(tmp_path):
    # a margin wide enough that both tiny Python variants race the native side in the paired bursts
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run_bench.py"), "--tiny", "--bursts", "3",
                           "--burst-steps", "2", "--contender-margin", "1000", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["tiny"] is True
    native, python = results["native"], results["python"]
    for key in ("machine", "auto_precision", "precisions", "best_precision", "scoring", "scaling"):
        assert key in native
    assert native["machine"]["threads"] == native["machine"]["cores"]
    assert set(native["precisions"]) == {"fp32", "bf16"}  # measured side by side
    for entry in native["precisions"].values():
        assert entry["train_step"]["median_seconds"] > 0 and entry["sampling"]["images_per_second"] > 0
        assert entry["ceiling"]["conv_gflops"] > 0 and len(entry["ceiling"]["convs"]) == 2
        assert entry["ceiling"]["conv_batch"] == 4 and entry["ceiling"]["convs"][0]["shape"].startswith("x [4, 32, 28, 28]")
        assert entry["sampling_profile"]["ops"] and entry["sampling_profile"]["op_seconds_per_step"] > 0
    assert native["auto_precision"]["precision"] in ("fp32", "bf16") and any(f in native["auto_precision"]["reason"] for f in ("amx_bf16", "avx512_bf16"))
    assert set(python) == {"eager_fp32", "eager_bf16"}  # the tiny run skips torch.compile's minutes of compiling
    assert all(python[v]["train_step"]["median_seconds"] > 0 for v in python)
    # both sides train and sample at the native side's image size (16x16 in the tiny run, 28x28 in make bench)
    assert {e["train_step"]["image_size"] for e in [*native["precisions"].values(), *python.values()]} == {16}
    assert python["eager_fp32"]["train_step"]["flops"] > 0
    for entry in python.values():  # guidance timed in one forward and in two; the faster one counts
        ways = entry["sampling"]["images_per_second_by_forwards"]
        assert set(ways) == {"1", "2"} and entry["sampling"]["images_per_second"] == max(ways.values())
        assert ways[str(entry["sampling"]["guidance_forwards"])] == entry["sampling"]["images_per_second"]
    ratios = results["ratios"]
    assert ratios["train_step_speedup"] > 0 and ratios["fastest_python_train_step"] in python
    # round 1 picks the contenders (every Python variant within the margin of its fastest, fastest
    # first); the paired bursts time them again with the native side, taking turns in rotating
    # order; each turn's ratio is against that turn's fastest contender, the ratios their medians
    first, paired = results["round1"], results["paired"]
    assert first["native_step_seconds"] == native["precisions"][native["best_precision"]]["train_step"]["median_seconds"]
    assert first["python_step_seconds"] == min(e["train_step"]["median_seconds"] for e in python.values())
    assert paired["bursts"] == 3 and paired["burst_steps"] == 2 and paired["contender_margin"] == 1000
    assert paired["step"]["native_precision"] == first["native_step_precision"]
    assert paired["step"]["python_variants"][0] == first["python_step_variant"]
    assert paired["sampling"]["python_variants"][0] == first["python_sampling_variant"]
    for measurement, native_key, python_key in (("step", "native_seconds", "python_seconds"),
                                                ("sampling", "native_images_per_second", "python_images_per_second")):
        entry = paired[measurement]
        variants = entry["python_variants"]
        assert sorted(variants) == sorted(python)  # both raced
        assert entry["first"] == ["native", variants[0], variants[1]]  # the order rotates by one each turn
        by_variant = entry[python_key + "_by_variant"]
        assert all(len(by_variant[v]) == 3 and min(by_variant[v]) > 0 for v in variants)
        faster = min if measurement == "step" else max
        fastest = [faster(turn) for turn in zip(*(by_variant[v] for v in variants))]
        assert entry[python_key] == fastest
        assert entry["python_fastest"] == [variants[list(turn).index(faster(turn))]
                                           for turn in zip(*(by_variant[v] for v in variants))]
        assert len(entry[native_key]) == 3 and min(entry[native_key]) > 0
        expected = [p / n for n, p in zip(entry[native_key], fastest)] if measurement == "step" else \
            [n / p for n, p in zip(entry[native_key], fastest)]
        assert entry["speedups"] == pytest.approx(expected)
        assert ratios["train_step_speedup" if measurement == "step" else "sampling_speedup"] == \
            pytest.approx(sorted(expected)[1])
        assert ratios["fastest_python_train_step" if measurement == "step" else "fastest_python_sampling"] in variants
    assert "median of 3 paired bursts" in done.stdout and "the faster in each burst of" in done.stdout
    # the step's share of the conv ceiling: per burst, its GFLOP/s over the ceiling the native side
    # measured right after it; the ratio is their median, round 1's share kept beside it
    step_entry, flops = paired["step"], python["eager_fp32"]["train_step"]["flops"]
    assert len(step_entry["native_conv_ceiling_gflops"]) == 3 and min(step_entry["native_conv_ceiling_gflops"]) > 0
    shares = [flops / s / 1e9 / c for s, c in zip(step_entry["native_seconds"], step_entry["native_conv_ceiling_gflops"])]
    assert step_entry["conv_ceiling_shares"] == pytest.approx(shares)
    assert ratios["train_step_fraction_of_conv_ceiling"] == pytest.approx(sorted(shares)[1])
    best = native["precisions"][native["best_precision"]]
    assert ratios["train_step_fraction_of_conv_ceiling_round1"] == pytest.approx(
        flops / best["train_step"]["median_seconds"] / 1e9 / best["ceiling"]["conv_gflops"])
    assert "of the conv ceiling measured right after each burst" in done.stdout
    # the copy descriptor in paired bursts too (the tiny run has one Python way: two sides alternate)
    entry = paired["descriptor"]
    assert entry["python_variants"] == ["eager_fp32"] and entry["first"] == ["native", "eager_fp32", "native"]
    assert entry["python_images_per_second"] == entry["python_images_per_second_by_variant"]["eager_fp32"]
    expected = [n / p for n, p in zip(entry["native_images_per_second"], entry["python_images_per_second"])]
    assert entry["speedups"] == pytest.approx(expected) and ratios["scoring_speedup"] == pytest.approx(sorted(expected)[1])
    for entry in native["precisions"].values():  # the ceiling measured twice, the faster kept
        assert "twice" in entry["ceiling"]["measured"]
    # the unlearning run and the evaluation in fp32 and in the faster precision, when it is another
    assert "fp32" in results["memory"]["native_unlearning_run_mib"] and "fp32" in results["evaluation"]
    # where the evaluation's time went: set-up and the model's stages (attacks are off in the tiny run)
    stages = results["evaluation"]["fp32"]["stages"]
    assert {"forget captions", "class prompts", "probes", "denoising losses"} <= set(stages)
    assert all(seconds >= 0 for seconds in stages.values())
    assert sum(stages.values()) <= results["evaluation"]["fp32"]["seconds"]
    assert (tmp_path / "scaling.png").stat().st_size > 1000
    assert "Ceilings in the same run (batch-4 3x3 convolutions" in done.stdout
    # the rows name the image size the tiny run used (the full run's is 28x28)
    assert "| SISS training step, batch 2, 16x16 images (median of 2) |" in done.stdout
    assert "| DDIM sampling, 2 steps, batch 2, 16x16 images, guidance |" in done.stdout


def test_doc_tables_are_generated_from_the_measurements():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "doc_tables.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _bench_module(name):
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_comparison_rows_are_reused_only_for_the_same_key(tmp_path):
    compare = _bench_module("compare_objectives")
    key = {"config": {"objective": "siss"}, "base_sha256": "a" * 64,
           "evaluators": {"descriptor": "b" * 64, "classifier": "c" * 64}}
    row = {"task": "data", "method": "siss", "forgetting": 0.0}
    path = str(tmp_path / "row.json")
    compare.save_row(path, key, row)
    assert compare.load_row(path, key) == row
    for field, value in (("base_sha256", "d" * 64), ("evaluators", {"descriptor": "e" * 64, "classifier": "c" * 64})):
        assert compare.load_row(path, dict(key, **{field: value})) is None  # another base or descriptor: rerun
    assert compare.load_row(str(tmp_path / "missing.json"), key) is None
    # a snapshot evaluation without the attacks reuses a row measured while they still ran; any
    # other change of the snapshot or final evaluation does not
    snapshot = {"snapshot_eval": ["--samples-per-class", "8"]}
    compare.save_row(path, dict(key, **snapshot), row)
    assert compare.load_row(path, dict(key, snapshot_eval=["--samples-per-class", "8", "--no-attacks"])) == row
    assert compare.load_row(path, dict(key, snapshot_eval=["--samples-per-class", "4", "--no-attacks"])) is None
    assert compare.load_row(path, dict(key, final_eval=["--no-attacks"], **snapshot)) is None


def test_comparison_places_each_data_rows_copy_similarity_between_base_and_retrained():
    compare = _bench_module("compare_objectives")
    rows = [{"task": "data", "sscd_mean": 0.45}, {"task": "data", "sscd_mean": 0.1}, {"task": "data"},
            {"task": "concept", "sscd_mean": 0.3}]
    compare.add_normalized_sscd(rows, {"sscd_mean": 0.8}, {"sscd_mean": 0.1})
    assert rows[0]["normalized_sscd"] == pytest.approx(0.5) and rows[1]["normalized_sscd"] == 0.0
    assert "normalized_sscd" not in rows[2] and "normalized_sscd" not in rows[3]  # not scored / not a data row


def test_comparison_table_names_what_scored_it_and_unreached_targets():
    tables = _bench_module("doc_tables")
    row = {"task": "data", "method": "naive_deletion", "variant": "none", "forgetting": 0.875, "fid": 0.9,
           "class_accuracy": 0.95, "other_class_accuracy": None, "steps_to_target": None, "unlearning_seconds": 61.0,
           "threads": 2}
    base = dict(row, method="base model (before)", variant="", forgetting=0.9125)
    result = {"date": "2026-12-01", "steps": 200, "snapshot_every": 25, "target": 0.1, "concept": "sneaker",
              "final_eval": ["--samples-per-caption", "8"], "rows": [row, base],
              "evaluators": {"descriptor": "0123456789ab" + "0" * 52, "classifier": "fedcba987654" + "0" * 52},
              "base_sha256": "997a7fc6553d" + "0" * 52}
    text = tables.comparison_table(result)
    assert "unlearned from base model 997a7fc6553d; scored with descriptor 0123456789ab and classifier fedcba987654 (sha256 prefixes)" in text
    assert "| naive_deletion | none | 0.875 | 0.90 |  | 0.950 |  | > 200 |  |  | not recorded, 61 s |" in text
    # the data table's normalized SSCD and attacks, blank for a row measured before them
    scored = dict(row, normalized_sscd=0.0912, attack_prompt_success_rate=0.8, attack_relearn_steps=None)
    assert "| naive_deletion | none | 0.875 | 0.90 | 0.091 | 0.950 |  | > 200 | 0.800 | not back |" in \
        tables.comparison_table(dict(result, rows=[scored, base]))
    assert "| unlearning CPU time, wall time (2 torch threads) |" in text  # one thread count: named once
    text = tables.comparison_table(dict(result, rows=[dict(row, cpu="Intel(R) Xeon(R)", unlearning_cpu_seconds=58.4), base]))
    assert "| unlearning CPU time, wall time (2 torch threads, Intel(R) Xeon(R)) |" in text
    assert "| > 200 |  |  | 58 s, 61 s |" in text
    text = tables.comparison_table(dict(result, rows=[dict(row, cpu="Intel(R) Xeon(R)", flush_denormals=True), base]))
    assert "| unlearning CPU time, wall time (2 torch threads, Intel(R) Xeon(R), subnormals flushed) |" in text
    assert "| base model (before) |  | 0.912 | 0.90 |  | 0.950 |  |  |  |  |  |" in text
    assert "Concept unlearning" not in text  # no concept rows, no concept table

    # Rows timed at different thread counts (or not recorded) say so in each cell.
    other = dict(row, method="npo", threads=1, unlearning_seconds=90.0)
    legacy = {k: v for k, v in dict(row, method="dpo").items() if k != "threads"}
    text = tables.comparison_table(dict(result, rows=[row, other, legacy, base]))
    assert "| unlearning CPU time, wall time |" in text
    assert "| > 200 |  |  | not recorded, 61 s (2 torch threads) |" in text
    assert "| > 200 |  |  | not recorded, 90 s (1 torch thread) |" in text
    assert "| > 200 |  |  | not recorded, 61 s (threads not recorded) |" in text


def test_the_concept_table_names_the_rows_that_meet_the_concept_target():
    tables = _bench_module("doc_tables")
    base = {"task": "concept", "method": "base model (before)", "variant": "", "forgetting": 1.0, "fid": 1.0,
            "fid_other_classes": 2.0, "class_accuracy": 0.95, "other_class_accuracy": 0.944, "steps_to_target": None,
            "unlearning_seconds": 0.0}
    good = dict(base, method="esd", variant="x", forgetting=0.1, fid=9.0, fid_other_classes=2.3, other_class_accuracy=0.924,
                unlearning_seconds=5.0, threads=2)
    result = {"date": "2026-12-04", "steps": 200, "snapshot_every": 25, "target": 0.1, "concept": "sneaker",
              "final_eval": [], "rows": [good, base]}
    text = tables.comparison_table(result)
    assert ("accuracy within 2 points of the base model's (0.944) and their FID at most 1.15x its (2.30). "
            "Met by: esd (x).") in text
    assert "| esd | x | 0.100 | 9.00 | 2.30 | 0.950 | 0.924 |" in text  # the FID of all classes is shown, not judged
    # the attacks: a share and a step count, "not back" when the budget did not bring it back, blank when not measured
    attacked = dict(good, attack_prompt_success_rate=0.85, attack_relearn_steps=10.0)
    assert "| 0.850 | 10 |" in tables.comparison_table(dict(result, rows=[attacked, base]))
    assert "| 0.850 | not back |" in tables.comparison_table(dict(result, rows=[dict(attacked, attack_relearn_steps=None), base]))
    assert "| > 200 |  |  |" in tables.comparison_table(dict(result, rows=[dict(attacked, evaluation="earlier"), base]))
    # a closed-form edit meets the snapshot target before any step: 0 steps, not "> 200"
    assert "| 0.924 | 0 | 0.850 |" in tables.comparison_table(dict(result, rows=[dict(attacked, steps_to_target=0), base]))
    # each bound, just missed, fails the row
    for miss in ({"forgetting": 0.125}, {"fid_other_classes": 2.31}, {"other_class_accuracy": 0.923}):
        assert "No row meets it yet." in tables.comparison_table(dict(result, rows=[dict(good, **miss), base]))
    # a row without the FID of the other classes is not judged, and the line says so
    text = tables.comparison_table(dict(result, rows=[dict(good, fid_other_classes=None), base]))
    assert "No row meets it yet. 1 row without the FID of the other classes cannot be checked." in text
    # without the base model's per-class accuracy or its FID of the other classes nothing is claimed
    for blank in ({"other_class_accuracy": None}, {"fid_other_classes": None}):
        text = tables.comparison_table(dict(result, rows=[good, dict(base, **blank)]))
        assert "cannot be checked" in text and "Met by" not in text


def test_comparison_records_what_lethe_timed_the_run_with():
    compare = _bench_module("compare_objectives")
    summary = {"wall_seconds": 12.5, "cpu_seconds": 11.75,
               "machine": {"threads": 3, "cpu": "Some CPU", "flush_denormals": True}}
    assert compare.timing_facts(summary) == {"unlearning_seconds": 12.5, "unlearning_cpu_seconds": 11.75, "threads": 3,
                                             "cpu": "Some CPU", "flush_denormals": True}
    with pytest.raises(KeyError):  # a summary from before `lethe` recorded them is not guessed at
        compare.timing_facts({"wall_seconds": 12.5, "cpu_seconds": 1.0})


def _record_models(section, data, hashes):
    """`data` (a measured JSON of `section`) recording `hashes` ({model: sha256}) as its script does."""
    data = json.loads(json.dumps(data))
    if section == "comparison":
        data["base_sha256"] = hashes["base"]
        data["evaluators"] = {m: hashes[m] for m in ("descriptor", "classifier")}
    elif section == "tuning":
        for trial in data["trials"]:
            trial["base_sha256"], trial["descriptor_sha256"] = hashes["base"], hashes["descriptor"]
    elif section == "performance":
        data["models"] = {m: hashes[m] for m in ("base", "descriptor", "classifier")}
    elif section == "unlearning":
        data["models_sha256"] = dict(hashes)
    elif section.startswith("precision-parity"):
        data["models_sha256"] = {m: hashes[m] for m in ("base", "descriptor", "classifier")}
    elif section == "distributed-scaling":  # unlearning only: the base model
        data["models_sha256"] = {"base": hashes["base"]}
    elif section == "builds":
        data["models"] = {m: hashes[m] for m in ("base", "retrained", "descriptor", "classifier")}
    elif section == "bench-models":
        for model, entry in data["models"].items():
            entry["sha256"] = hashes[model]
    return data


@pytest.mark.parametrize("section", ["comparison", "tuning", "performance", "unlearning", "bench-models",
                                     "precision-parity-amx", "precision-parity-avx512", "distributed-scaling",
                                     "builds"])
def test_a_table_fails_its_check_when_its_json_names_other_models_than_the_shipped_cards(tmp_path, section):
    tables = _bench_module("doc_tables")
    source, make, models, rerun = tables.SECTIONS[section]
    shipped = tables.shipped_models()
    with open(source) as f:
        measured = json.load(f)
    text = f"<!-- {section}:begin -->\n<!-- {section}:end -->\n"
    doctored_path = str(tmp_path / os.path.basename(source))
    sections = dict(tables.SECTIONS)
    try:
        for model in ("base",) if section == "distributed-scaling" else ("base", "descriptor"):
            for hashes, fails in ((shipped, False), (dict(shipped, **{model: "0" * 64}), True)):
                with open(doctored_path, "w") as f:
                    json.dump(_record_models(section, measured, hashes), f)
                tables.SECTIONS[section] = (doctored_path, make, models, rerun)
                if not fails:
                    assert tables.render(text).startswith(f"<!-- {section}:begin -->\n")
                    continue
                with pytest.raises(SystemExit) as error:
                    tables.render(text)
                message = str(error.value)
                assert f"{model} 000000000000 (shipped: {shipped[model][:12]})" in message and rerun in message
        # a JSON that records no hashes cannot be checked: it fails too
        with open(doctored_path, "w") as f:
            json.dump({**measured, **({"models": {}} if section in ("performance", "builds") else {}),
                       **({"models_sha256": {}} if section in ("unlearning", "precision-parity-amx", "precision-parity-avx512",
                                                               "distributed-scaling") else {})}, f)
        if section in ("performance", "unlearning", "precision-parity-amx", "precision-parity-avx512", "distributed-scaling",
                       "builds"):
            with pytest.raises(SystemExit, match="records no model hashes"):
                tables.render(text)
    finally:
        tables.SECTIONS.clear()
        tables.SECTIONS.update(sections)


def test_precision_parity_files_are_named_by_the_cpus_bf16_instructions(tmp_path):
    parity = _bench_module("precision_parity")
    cpuinfo = tmp_path / "cpuinfo"
    for flags, expected in (("fpu avx512f avx512_bf16 amx_bf16 amx_tile", "amx_bf16"), ("fpu avx512f avx512_bf16", "avx512_bf16"),
                            ("fpu avx2", "none")):
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        assert parity.bf16_hardware(str(cpuinfo)) == expected
    assert parity.bf16_hardware(str(tmp_path / "missing")) == "none"


def test_the_default_recipe_tables_name_the_recipe_they_measured(tmp_path):
    """The unlearning table describes bench/configs/siss-tf.json: measured with another recipe it
    fails its check. A precision-parity table measured with an earlier default says so."""
    tables = _bench_module("doc_tables")
    with open(tables.SECTIONS["unlearning"][0]) as f:
        unlearning = json.load(f)
    tables.unlearning_table(unlearning)
    changed = json.loads(json.dumps(unlearning))
    changed["config"]["objective_config"]["scaling_norm"] = 31.0
    with pytest.raises(SystemExit, match="another recipe than bench/configs/siss-tf.json.*make unlearning-check"):
        tables.unlearning_table(changed)
    with open(tables.SECTIONS["precision-parity-avx512"][0]) as f:
        parity = json.load(f)
    current = dict(parity, recipe=tables.default_recipe())
    assert "the default unlearning (bench/configs/siss-tf.json)" in tables.precision_parity_table(current)
    earlier = dict(parity, recipe=dict(tables.default_recipe(), objective="neggrad"))
    assert "an earlier recipe than the shipped bench/configs/siss-tf.json" in tables.precision_parity_table(earlier)


def test_the_unlearning_acceptance_uses_the_data_tasks_bounds():
    check = _bench_module("unlearning_check")
    before = {"memorization_rate": 0.99, "fid": 0.80, "class_accuracy": 0.950}
    after = {"memorization_rate": 0.05, "normalized_sscd": 0.10, "fid": 0.88, "class_accuracy": 0.940}
    checks = check.acceptance(before, after, 0.01)
    assert all(c["ok"] for c in checks.values()), checks  # every bound reached exactly (0.95 - 0.94 > 0.01 in floats)
    for key, value in (("memorization_rate", 0.0501), ("normalized_sscd", 0.1001), ("fid", 0.8801), ("class_accuracy", 0.938)):
        failed = check.acceptance(before, dict(after, **{key: value}), 0.01)
        assert [name for name, c in failed.items() if not c["ok"]] == \
            [{"memorization_rate": "memorization_after", "normalized_sscd": "normalized_sscd", "fid": "fid_ratio",
              "class_accuracy": "class_accuracy_drop"}[key]]
    assert not check.acceptance(before, after, 0.0101)["compute_fraction"]["ok"]


def test_the_quickstart_timing_names_an_earlier_workflow():
    bench = _bench_module("run_bench")
    results = {"date": "2026-12-04", "evaluation": {"bf16": {"seconds": 50.0, "command": "lethe eval", "settings": "default"}},
               "quickstart": {"seconds": 80.0, "command": "make demo", "precision": "bf16",
                              "node_seconds": {"LetheUnlearn": 30.0, "LetheEvaluate": 49.0},
                              "workflow_sha256": bench.quickstart_sha256()}}
    assert "The quickstart (`make demo`, bf16): 80 s" in bench.evaluation_line(results, stages=False)
    results["quickstart"]["workflow_sha256"] = "0" * 64
    assert "The previous quickstart (`make demo`, bf16): 80 s" in bench.evaluation_line(results, stages=False)


def test_the_python_side_takes_turns_and_names_itself_when_the_turns_end_early(monkeypatch, capsys):
    """bench/turns.py: ready, then one burst per line on stdin, each said as a JSON line; a stdin
    closed before a burst's turn stops the script with its name, not a hang or a traceback."""
    import io

    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from turns import take_turns

    calls = []

    def burst():
        calls.append(len(calls))
        return {"seconds": [0.5], "n": len(calls)}

    monkeypatch.setattr(sys, "stdin", io.StringIO("go\ngo\ngo\n"))
    take_turns("demo.py", {"ready": "step"}, 3, burst)
    said = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert said == [{"ready": "step"}] + [{"seconds": [0.5], "n": n} for n in (1, 2, 3)] and calls == [0, 1, 2]

    calls.clear()
    monkeypatch.setattr(sys, "stdin", io.StringIO("go\n"))
    with pytest.raises(SystemExit, match=r"demo.py --paired: standard input closed before the next burst's turn"):
        take_turns("demo.py", {"ready": "step"}, 3, burst)
    assert calls == [0]


def test_a_second_bench_run_into_a_folder_in_use_stops_and_names_the_run_there(tmp_path):
    """Two runs in one scratch folder would overwrite each other's process outputs (and timings):
    the second stops before any work, naming the first, and the folder is free again after."""
    import fcntl

    hold_lock = _bench_module("run_bench").hold_lock
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with open(scratch / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242, started 2026-12-07T08:19:20\n")
        held.flush()
        done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run_bench.py"), "--tiny", "--no-readme",
                               "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"make bench: {scratch} is in use by another run (pid 4242, started 2026-12-07T08:19:20)" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert sorted(os.listdir(scratch)) == [".lock"] and not (tmp_path / "results.json").exists()
    lock = hold_lock(str(scratch))  # released: the next run takes it and says who it is
    assert (scratch / ".lock").read_text().startswith(f"pid {os.getpid()}, started ")
    lock.close()


def test_a_measuring_process_output_that_is_not_one_json_object_is_named():
    last_json = _bench_module("run_bench").last_json
    assert last_json('warm-up 1/3\n{"seconds": 0.5,\n "steps": 2}\n', "perf.stdout") == {"seconds": 0.5, "steps": 2}
    for text in ('{"a": 1}\n_batch": 0.03\n}\n{"a": 2}\n', "killed\n", ""):  # two runs' output in one file; none
        with pytest.raises(SystemExit, match=r"^bench/tmp/perf.stdout: expected one JSON object after the progress "
                                             r"lines, got text that is not one \(.+, line \d+\)$"):
            last_json(text, "bench/tmp/perf.stdout")
