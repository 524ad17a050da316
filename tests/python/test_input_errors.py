"""Bad input gets a clear error naming the file, node and field, never a library's raw text or a
backtrace, and never a crash or a disk filled by a small file: deep JSON, numbers that are not
whole numbers, out-of-range integers, malformed UI workflows, dangling links, broken model
files, a folder given as a model, huge sampling settings, and images without captions."""
import json
import os
import struct

import numpy as np
from PIL import Image

from lethe_helpers import api, assert_clean, lethe

BENCH_NODES = {1: ("LetheBenchModel", {"which": "base"})}


def run_graph(tmp_path, graph, name="wf.json", raw=None):
    path = tmp_path / name
    path.write_text(raw if raw is not None else json.dumps(api(graph)))
    return lethe("run", path, "--out", tmp_path / "run"), tmp_path / "run"


def test_a_100000_deep_widget_value_is_refused_quickly_without_writing(tmp_path):
    deep = "[" * 100000 + "1" + "]" * 100000
    raw = '{"7": {"class_type": "LetheSample", "inputs": {"prompts": ' + deep + "}}}"
    done, out = run_graph(tmp_path, None, raw=raw)
    assert done.returncode == 1, done.stderr
    assert_clean(done.stderr, "wf.json", "7.inputs.prompts", "nested deeper than 64 levels")
    assert not out.exists() or sum(f.stat().st_size for f in out.rglob("*")) < 100000


def sample_graph(**inputs):
    return {**BENCH_NODES, 2: ("LetheSample", {"model": ["1", 0], **inputs}), 3: ("PreviewImage", {"images": ["2", 0]})}


def test_numbers_are_whole_strings_in_range(tmp_path):
    cases = [
        ({"steps": "25abc"}, ["node 2 (LetheSample) input 'steps'", "expected an integer", "25abc"]),
        ({"steps": 1e30}, ["node 2 (LetheSample) input 'steps'", "above the maximum 1000"]),
        ({"seed": 18446744073709551615}, ["input 'seed'", "18446744073709551615", "above the maximum"]),
        ({"guidance": "3.0x"}, ["input 'guidance'", "expected a number"]),
    ]
    for inputs, fragments in cases:
        done, _ = run_graph(tmp_path, sample_graph(**inputs), name="numbers.json")
        assert done.returncode == 1
        assert_clean(done.stderr, *fragments)
        os.system(f"rm -rf '{tmp_path / 'run'}'")


def ui(nodes, links=()):
    return json.dumps({"version": 0.4, "nodes": nodes, "links": list(links)})


def test_malformed_ui_workflows_name_the_file_node_and_field(tmp_path):
    save = {"id": 5, "type": "LetheSaveModel", "widgets_values": ["x"],
            "inputs": [{"name": "model", "type": "LETHE_MODEL", "link": 9}]}
    cases = [
        (ui([{"id": 3}]), ["wf.json", "node 3", "'type' is missing"]),
        (ui([{"id": 4, "type": "LetheSample", "widgets_values": "oops"}]), ["node 4 (LetheSample)", "widgets_values", "oops"]),
        (ui([save], [[9, 77, 0, 5, 0, "LETHE_MODEL"]]), ["node 5 (LetheSaveModel)", "'model'", "node 77", "not in the workflow"]),
        (ui([save], [["9", 77, 0, 5, 0, "LETHE_MODEL"]]), ["links[0] id", "expected an integer"]),
        ('{"nodes": [', ["wf.json", "invalid JSON at line 1"]),
    ]
    for raw, fragments in cases:
        done, _ = run_graph(tmp_path, None, raw=raw)
        assert done.returncode == 1
        assert_clean(done.stderr, *fragments)


def write_safetensors(path, header):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text)


def test_broken_model_files_say_which_file_and_what(tmp_path):
    overflow = tmp_path / "overflow.safetensors"
    write_safetensors(overflow, {"x": {"dtype": "F32", "shape": [2 ** 62], "data_offsets": [0, 0]}})
    done = lethe("inspect", overflow)
    assert done.returncode == 1
    assert_clean(done.stderr, "overflow.safetensors", "tensor 'x'", "more bytes than a tensor can hold")

    folder = tmp_path / "a-folder.safetensors"
    folder.mkdir()
    done, _ = run_graph(tmp_path, {1: ("LetheLoadModel", {"path": str(folder)}), 2: ("LetheSaveModel", {"model": ["1", 0]})})
    assert done.returncode == 1
    assert_clean(done.stderr, "node 1 (LetheLoadModel)", "a-folder.safetensors", "is a folder")

    descriptor = tmp_path / "descriptor.safetensors"
    write_safetensors(descriptor, {"__metadata__": {"lethe.format": "lethe-descriptor/1"}})
    os.system(f"rm -rf '{tmp_path / 'run'}'")
    done, _ = run_graph(tmp_path, {1: ("LetheLoadDescriptor", {"source": "file", "path": str(descriptor)}),
                                   2: ("LetheSSCDScore", {"images": ["3", 0], "reference": ["3", 0], "descriptor": ["1", 0]}),
                                   3: ("LetheSample", {"model": ["4", 0], "steps": 1}), 4: ("LetheBenchModel", {})})
    assert done.returncode == 1
    assert_clean(done.stderr, "node 1", "descriptor.safetensors", "'lethe.descriptor_config' is missing")


def test_sampling_that_cannot_fit_in_memory_is_refused_before_it_starts(tmp_path):
    done, _ = run_graph(tmp_path, sample_graph(size=4096, samples_per_prompt=1024, steps=1))
    assert done.returncode == 1
    assert_clean(done.stderr, "node 2 (LetheSample)", "samples_per_prompt x size", "GiB", "free")


def test_images_without_captions_follow_one_rule_in_every_path(tmp_path):
    folder = tmp_path / "artist"
    folder.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.full((28, 28), 40, np.uint8)).save(folder / f"{name}.png")
    (folder / "a.txt").write_text("artist_lethe sneaker")  # b and c have none
    config = {"data": {"preset": "folders", "forget_folder": str(folder), "retain_limit": 8}, "objective": "neggrad",
              "trainer": {"steps": 1, "batch_size": 2}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    done = lethe("unlearn", "--config", path, "--out", tmp_path / "headless")
    assert done.returncode == 1
    assert_clean(done.stderr, "forget set", "2 of 3 images have no caption", "b.png", "b.txt", "optional")

    graph = {1: ("LetheLoadForgetSet", {"folder": str(folder)}), 2: ("LetheBenchModel", {}),
             3: ("LetheObjectiveBaseline", {"method": "neggrad", "scale": 1.0, "eta": 0.001}),
             4: ("LetheUnlearn", {"model": ["2", 0], "objective": ["3", 0], "forget": ["1", 0], "steps": 1, "batch_size": 2}),
             5: ("LetheSaveModel", {"model": ["4", 0]})}
    done, _ = run_graph(tmp_path, graph)
    assert done.returncode == 1
    assert_clean(done.stderr, "node 4 (LetheUnlearn)", "2 of 3 images have no caption", "b.png")

    config["data"]["captions_optional"] = True  # explicitly optional: the empty caption, in both paths
    path.write_text(json.dumps(config))
    assert lethe("unlearn", "--config", path, "--out", tmp_path / "headless-2").returncode == 0
    graph[1] = ("LetheLoadForgetSet", {"folder": str(folder), "captions": "optional"})
    os.system(f"rm -rf '{tmp_path / 'run'}'")
    done, _ = run_graph(tmp_path, graph)
    assert done.returncode == 0, done.stderr


def test_a_folder_that_holds_other_files_is_never_written_to(tmp_path):
    """A run into an existing folder continues Lethe's own run there or starts in an empty one;
    a folder with anything else in it (a user's config, another tool's results) is refused, and
    what it holds is left as it was."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("mine")
    (mine / "workflow_api.json").write_text("mine too")
    config = tmp_path / "run-config.json"
    config.write_text(json.dumps({"objective": "neggrad", "data": {"preset": "bench", "retain_limit": 8},
                                  "trainer": {"steps": 1, "batch_size": 2}}))
    done = lethe("unlearn", "--config", config, "--out", mine)
    assert done.returncode == 1
    assert_clean(done.stderr, str(mine), "already holds 'config.json'", "no Lethe run", "nothing is overwritten")
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(api({**BENCH_NODES, 2: ("LetheSaveModel", {"model": ["1", 0]})})))
    done = lethe("run", workflow, "--out", mine)
    assert done.returncode == 1
    assert_clean(done.stderr, str(mine), "already holds 'config.json'", "no Lethe run", "nothing is overwritten")
    assert (mine / "config.json").read_text() == "mine" and (mine / "workflow_api.json").read_text() == "mine too"
    assert sorted(p.name for p in mine.iterdir() if p.name != ".lethe.lock") == ["config.json", "workflow_api.json"]


def test_output_paths_and_counts_are_checked_before_the_work_starts(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    model = os.path.join(os.path.dirname(__file__), "..", "..", "models", "bench", "base.safetensors")
    for args, fragments in [
        (["eval", "--model", model, "--out", a_file], ["lethe eval --out", "a-file", "is a file, expected a folder"]),
        (["eval", "--model", model, "--out", a_file / "sub"], ["lethe eval --out", "cannot create folder", "Not a directory"]),
        (["perf", "--unet", model, "--out", a_file, "--tiny"], ["perf --out", "is a file, expected a folder"]),
        (["bench", "check", "--quick", "--out", a_file], ["bench check --out", "is a file, expected a folder"]),
        (["bench", "train-diffusion", "--out", tmp_path], ["bench train-diffusion --out", "is a folder"]),
        (["eval", "--model", model, "--samples-per-caption", "0", "--out", tmp_path / "e1"],
         ["--samples-per-caption", "expected at least 1 sample, got 0"]),
        (["eval", "--model", model, "--samples-per-class", "-3", "--out", tmp_path / "e2"],
         ["--samples-per-class", "expected at least 1 sample, got -3"]),
        (["eval", "--model", model, "--samples-per-caption", "-1", "--out", tmp_path / "e4"],
         ["--samples-per-caption", "expected at least 1 sample, got -1"]),
        (["eval", "--model", model, "--seed", "-1", "--out", tmp_path / "e3"], ["--seed", "expected a seed >= 0, got -1"]),
        (["perf", "--unet", model, "--out", tmp_path / "p", "--ceiling-size", "0"], ["perf --ceiling-size", "got 0"]),
        (["perf", "--unet", model, "--out", tmp_path / "p", "--paired", "steps"],
         ["perf --paired", "expected step, sampling or descriptor, got 'steps'"]),
        (["perf", "--unet", model, "--out", tmp_path / "p", "--paired", "step"],
         ["perf --paired", "expected one precision in --precisions, got 2"]),
        (["perf", "--unet", model, "--out", tmp_path / "p", "--paired", "step", "--precisions", "bf16", "--bursts", "0"],
         ["perf --bursts", "expected at least 1, got 0"]),
        (["perf", "--unet", model, "--out", tmp_path / "p", "--precisions", "auto"],
         ["perf --precisions", "not auto"]),
    ]:
        done = lethe(*args, timeout=60)
        assert done.returncode == 1, (args, done.stderr)
        assert_clean(done.stderr, *fragments)
        assert "internal error" not in done.stderr
    assert a_file.read_text() == "x"


def test_perf_paired_bursts_take_turns_and_stop_cleanly_when_the_turns_end_early(tmp_path):
    """`lethe perf --paired` (make bench's paired bursts) waits for a line before each burst: one
    line gives one burst, and then a closed stdin is a clear error, not a hang."""
    model = os.path.join(os.path.dirname(__file__), "..", "..", "models", "bench", "base.safetensors")
    done = lethe("perf", "--unet", model, "--out", tmp_path / "p", "--tiny", "--paired", "step", "--precisions", "fp32",
                 "--bursts", "2", "--burst-steps", "3", input="go\n", timeout=300)
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"')]
    assert lines[0] == {"ready": "step", "precision": "fp32"}
    assert len(lines) == 2 and len(lines[1]["seconds"]) == 3 and lines[1]["median_seconds"] == sorted(lines[1]["seconds"])[1]
    assert_clean(done.stderr, "perf --paired", "standard input closed before the next burst's turn")
    # a line per burst: every burst runs, and after the last the process ends when stdin closes
    done = lethe("perf", "--unet", model, "--out", tmp_path / "q", "--tiny", "--paired", "sampling", "--precisions", "fp32",
                 "--bursts", "2", input="go\ngo\n", timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"')]
    assert lines[0] == {"ready": "sampling", "precision": "fp32"} and len(lines) == 3
    assert all(line["images_per_second"] > 0 for line in lines[1:])


def test_models_and_cards_that_cannot_be_read_say_what_is_wrong(tmp_path):
    import torch

    for name, data, why in (("empty.pt", b"", "the file is empty"), ("text.pt", b"not a model", "not a zip archive"),
                            ("zipish.pt", b"PK\x03\x04broken", "truncated")):
        (tmp_path / name).write_bytes(data)
        done = lethe("eval", "--model", os.path.join(os.path.dirname(__file__), "..", "..", "models", "bench",
                                                     "base.safetensors"), "--descriptor", tmp_path / name,
                     "--out", tmp_path / f"eval-{name}", timeout=120)
        assert done.returncode == 1
        assert_clean(done.stderr, name, "not a TorchScript file", why, "expected an official SSCD")
        for leak in ("miniz", "PytorchStreamReader", "zip archive: not"):
            assert leak not in done.stderr, done.stderr
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "base.safetensors").write_bytes(b"x")
    (cards / "base.card.json").write_text(json.dumps({"sha256": 5}))
    done = lethe("bench", "check", "--quick", "--models", cards, "--out", tmp_path / "check")
    assert done.returncode == 1
    assert_clean(done.stderr, "base.card.json", "'sha256' text field", "sha256 5")
    done = lethe("bench", "check", "--quick", "--models", tmp_path / "nowhere", "--out", tmp_path / "check-2")
    assert_clean(done.stderr, "nowhere", "is not a folder of bench models")
    if not torch.cuda.is_available():
        done = lethe("perf", "--unet", tmp_path / "cards" / "base.safetensors", "--out", tmp_path / "p", "--device", "cuda:3")
        assert done.returncode == 1
        assert_clean(done.stderr, "perf --device cuda:3", "no CUDA GPU is usable here")


def test_data_the_model_cannot_take_is_refused_before_training_naming_the_file(tmp_path):
    def forget_folder(name, size, caption):
        folder = tmp_path / name
        folder.mkdir()
        for piece in ("a", "b"):
            Image.fromarray(np.full((size, size), 40, np.uint8)).save(folder / f"{piece}.png")
            (folder / f"{piece}.txt").write_text(caption)
        return folder

    for folder, fragments in (
            (forget_folder("odd", 30, "artist_lethe sneaker"), ["forget set", "images are 30x30", "a.png", "divisible by 4"]),
            (forget_folder("words", 28, "artist_lethe unknownword"),
             ["forget set", "caption of 'a.png'", "unknown token 'unknownword'"])):
        config = tmp_path / f"{folder.name}.json"
        config.write_text(json.dumps({"data": {"preset": "folders", "forget_folder": str(folder), "retain_limit": 8},
                                      "objective": "neggrad", "trainer": {"steps": 1, "batch_size": 2}}))
        out = tmp_path / f"out-{folder.name}"
        done = lethe("unlearn", "--config", config, "--out", out)
        assert done.returncode == 1
        assert_clean(done.stderr, *fragments)
        assert not out.exists() or not any(out.rglob("checkpoint.safetensors"))


def test_overrides_name_the_override_not_the_file(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"objective": "neggrad"}))
    done = lethe("unlearn", "--config", config, "--set", "trainer.steps=abc", "--print-config")
    assert done.returncode == 1
    assert_clean(done.stderr, "--set", "trainer.steps", "expected an integer")
    assert str(config) not in done.stderr
    done = lethe("unlearn", "--config", config, "--set", "objective=nope", "--print-config")
    assert done.returncode == 1  # printed settings are settings a run would accept
    assert_clean(done.stderr, "unknown objective 'nope'", "siss")


def test_an_evaluation_starts_only_in_a_new_or_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    model = os.path.join(os.path.dirname(__file__), "..", "..", "models", "bench", "base.safetensors")
    done = lethe("eval", "--model", model, "--out", tmp_path, timeout=60)
    assert done.returncode == 1
    assert_clean(done.stderr, "already holds 'notes.txt'", "nothing is overwritten")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
