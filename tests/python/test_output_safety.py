"""Nothing is lost and nothing is written outside the output root: concurrent runs into one
folder never share it (2 and 4 processes, 20 trials), concurrent savers into a shared output
folder get distinct numbered files, and filename prefixes, node ids and symlinks cannot lead a
write outside the run folder."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from lethe_helpers import BASE, api, assert_clean, lethe, start

SAVE = {1: ("LetheBenchModel", {"which": "base"}), 2: ("LetheSaveModel", {"model": ["1", 0], "filename_prefix": "model"})}


def same_weights(path, reference=BASE):
    from safetensors.torch import load_file
    import torch

    a, b = load_file(str(path)), load_file(str(reference))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def all_files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_runs_into_one_folder_never_lose_or_mix_results(tmp_path, writers):
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(api(SAVE)))
    for trial in range(20):
        out = tmp_path / f"trial-{trial}"
        processes = [start("run", workflow, "--out", out) for _ in range(writers)]
        results = [(p.wait(timeout=300), p.communicate()) for p in processes]
        winners = [r for r in results if r[0] == 0]
        assert len(winners) == 1, f"trial {trial}: {len(winners)} runs claimed one folder"
        for code, (stdout, stderr) in results:
            if code != 0:
                assert_clean(stderr)
                assert "in use by another Lethe process" in stderr or "already holds a run" in stderr, stderr
        record = json.loads((out / "run.json").read_text())
        assert record["status"] == "success"
        assert all_files(out) == [".lethe.lock", "model_00001_.safetensors", "run.json", "workflow_api.json"]
        assert same_weights(out / "model_00001_.safetensors")


SAVERS = """
import json, sys
sys.path.insert(0, {root!r})
from python_bridge import _lethe
model = _lethe.run_node("LetheBenchModel", {{"which": "base"}}, "1", {out!r})[0][0]
names = []
for k in range(3):
    ui = _lethe.run_node("LetheSaveModel", {{"model": model, "filename_prefix": "shared/m"}}, "2", {out!r})[1]
    names += ui["files"]
print(json.dumps(names))
"""


def test_concurrent_savers_into_a_shared_output_folder_get_distinct_files(tmp_path):
    """ComfyUI's output/lethe is shared by every prompt: numbered names are claimed atomically."""
    out = str(tmp_path / "output")
    script = SAVERS.format(root=ROOT, out=out)
    processes = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=dict(os.environ, LETHE_THREADS="1")) for _ in range(4)]
    names = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        names += json.loads(stdout.strip().splitlines()[-1])
    assert len(names) == len(set(names)) == 12
    for name in names:
        assert same_weights(name), name
    assert sorted(os.listdir(os.path.join(out, "shared"))) == [f"m_{i:05d}_.safetensors" for i in range(1, 13)]


@pytest.mark.parametrize("prefix, message", [
    ("/tmp/lethe-escape/model", "absolute path"),
    ("../escape/model", "'..'"),
    ("a/../../../../escape/model", "'..'"),
])
def test_filename_prefixes_cannot_leave_the_run_folder(tmp_path, prefix, message):
    for node in (("LetheSaveModel", "model", ["1", 0]), ("SaveImage", "images", ["3", 0])):
        graph = {1: ("LetheBenchModel", {"which": "base"}),
                 3: ("LetheSample", {"model": ["1", 0], "samples_per_prompt": 1, "steps": 1}),
                 2: (node[0], {node[1]: node[2], "filename_prefix": prefix})}
        workflow = tmp_path / "wf.json"
        workflow.write_text(json.dumps(api(graph)))
        done = lethe("run", workflow, "--out", tmp_path / "run" / node[0])
        assert done.returncode == 1
        assert_clean(done.stderr, "node 2", "filename_prefix", message)
    assert not os.path.exists("/tmp/lethe-escape")
    assert not (tmp_path / "escape").exists()


LINKED_SAVE = """
import sys
sys.path.insert(0, {root!r})
from python_bridge import _lethe
model = _lethe.run_node("LetheBenchModel", {{"which": "base"}}, "1", {out!r})[0][0]
try:
    _lethe.run_node("LetheSaveModel", {{"model": model, "filename_prefix": "link/model"}}, "2", {out!r})
except _lethe.LetheError as e:
    print(e)
"""


def test_a_symlink_in_the_output_folder_cannot_lead_a_save_outside(tmp_path):
    """ComfyUI's output folder may hold the user's symlinks: a prefix through one that leads
    outside is refused. A headless run starts only in a new or empty folder, so there a folder
    holding a link is refused whole."""
    out = tmp_path / "output"
    out.mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", out / "link")
    done = subprocess.run([sys.executable, "-c", LINKED_SAVE.format(root=ROOT, out=str(out))], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_clean(done.stdout, "node 2", "filename_prefix", "leads outside the output folder")
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(api({1: ("LetheBenchModel", {"which": "base"}),
                                        2: ("LetheSaveModel", {"model": ["1", 0], "filename_prefix": "link/model"})})))
    done = lethe("run", workflow, "--out", out)
    assert done.returncode == 1
    assert_clean(done.stderr, "already holds 'link'", "nothing is overwritten")
    assert os.listdir(tmp_path / "outside") == []


def test_node_ids_with_separators_stay_inside_the_run_folder(tmp_path):
    evil = "a/../../../../x"
    graph = {
        "d": ("LetheBenchData", {"task": "data", "forget_pieces": "0", "retain_limit": 16}),
        "m": ("LetheBenchModel", {"which": "base"}),
        "o": ("LetheObjectiveBaseline", {"method": "neggrad", "scale": 1.0, "eta": 0.001}),
        evil: ("LetheUnlearn", {"model": ["m", 0], "objective": ["o", 0], "forget": ["d", 0], "retain": ["d", 1],
                                "steps": 1, "batch_size": 2, "learning_rate": 1e-5, "seed": 0, "trainable": "full",
                                "lora_rank": 4, "retain_caption_dropout": 0.1}),
        "../../p": ("PreviewImage", {"images": ["d", 4]}),
        "s/../../x": ("LetheSaveModel", {"model": [evil, 0], "filename_prefix": "model"}),
    }
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps({str(k): {"class_type": t, "inputs": i} for k, (t, i) in graph.items()}))
    out = tmp_path / "deep" / "er" / "run"
    done = lethe("run", workflow, "--out", out)
    assert done.returncode == 0, done.stderr
    inside = set(all_files(tmp_path))
    assert all(f.startswith(os.path.join("deep", "er", "run")) or f == "wf.json" for f in inside), inside
    folders = os.listdir(out)
    assert any(f.startswith("unlearn-node-a____") for f in folders), folders
    assert any(f.startswith("preview-node-______p-") for f in folders), folders
