"""The pack's frontend extension (web/results.js, docs/comfyui-contract.md §9): ComfyUI registers
the pack's WEB_DIRECTORY and serves its scripts; in a stand-in of the ComfyUI frontend run by
Node.js (tests/python/web_mock/), the text results a real Lethe node returned inside the mock
ComfyUI appear on that node after it runs, a second run replaces them, and neither the saved
workflow's widgets_values nor the queued prompt changes; a reloaded workflow shows nothing."""
import glob
import json
import os
import shutil
import subprocess
import urllib.parse

from comfy_helpers import comfy, needs_bench, write_score_folder_inputs
from conftest import ROOT

WEB_MOCK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web_mock")
PACK = os.path.basename(ROOT)


def served_scripts(web_dirs):
    """server.py's GET /extensions: every .js under each registered folder, as the URL the
    frontend imports (/extensions/<pack folder>/<path inside the folder>)."""
    return sorted(f"/extensions/{urllib.parse.quote(name)}/{os.path.relpath(path, folder)}"
                  for name, folder in web_dirs.items()
                  for path in glob.glob(os.path.join(glob.escape(folder), "**", "*.js"), recursive=True))


def run_frontend(tmp_path, web_dirs, definitions, messages):
    """Lays out the web root as ComfyUI serves it (scripts/ from the stand-in, each pack's folder
    under extensions/<name>/), then runs the harness in Node.js; returns its report."""
    node = shutil.which("node")
    assert node, "node (Node.js) not found on PATH: the web extension tests need it (`make system-packages` installs nodejs)"
    root = tmp_path / "web"
    shutil.copytree(os.path.join(WEB_MOCK, "scripts"), root / "scripts")
    for name, folder in web_dirs.items():
        shutil.copytree(folder, root / "extensions" / name)
    scripts = [str(root / url.lstrip("/")) for url in served_scripts(web_dirs)]
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"root": str(root), "extensions": scripts, "definitions": definitions, "messages": messages}))
    done = subprocess.run([node, os.path.join(WEB_MOCK, "harness.mjs"), str(case)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_pack_exports_its_web_directory_and_comfyui_serves_the_extension(tmp_path):
    out = comfy(tmp_path, """
        print(json.dumps({"web_directory": getattr(pack, "WEB_DIRECTORY", None), "web_dirs": nodes.EXTENSION_WEB_DIRS}))
    """)
    assert out["web_directory"] == "./web"
    assert out["web_dirs"] == {PACK: os.path.join(ROOT, "web")}
    assert served_scripts(out["web_dirs"]) == [f"/extensions/{urllib.parse.quote(PACK)}/results.js"]


@needs_bench
def test_a_nodes_text_results_show_on_it_and_leave_the_workflow_and_prompt_unchanged(tmp_path):
    write_score_folder_inputs(tmp_path)
    out = comfy(tmp_path, f"""
        prompt = executor.graph_to_prompt(json.load(open(os.path.join({ROOT!r}, "workflows", "score-folder.json"))))
        uis = []
        for threshold in (0.5, 0.99):
            prompt["4"]["inputs"]["threshold"] = threshold
            result = executor.execute(prompt)
            if result.error is not None: raise result.error
            uis.append(result.ui)
        schemas = json.loads(native.node_schemas_json())
        print(json.dumps({{"uis": uis, "definitions": [schemas["LetheSSCDScore"], schemas["LetheUnlearn"]],
                          "web_dirs": nodes.EXTENSION_WEB_DIRS}}))
    """)
    # the Python side: every ui a Lethe node returned has its text as a list of strings
    lethe_uis = [ui for run in out["uis"] for node_id, ui in run.items() if node_id != "5"]
    assert lethe_uis and all(isinstance(ui["text"], list) and ui["text"] and all(isinstance(t, str) for t in ui["text"])
                             for ui in lethe_uis), lethe_uis
    first, second = out["uis"][0]["4"], out["uis"][1]["4"]
    assert first["text"][0].startswith("memorization rate 0.5 at threshold 0.5: 2 of 4 images are copies (descriptor ")
    assert first["text"][1].startswith("per-image scores: sscd-scores-node-4_") and first["images"], first
    assert second["text"] != first["text"], "the second run must say something else, or replacing is not tested"
    nothing = dict(second, text=[])  # a run with previews and no text

    core = {"name": "PreviewImage", "display_name": "Preview Image", "category": "image", "output_node": True,
            "input": {"required": {"images": ["IMAGE", {}]}}, "input_order": {"required": ["images"]}}
    report = run_frontend(tmp_path, out["web_dirs"], out["definitions"] + [core], [first, second, nothing])
    assert report["extensions"] == ["Lethe.Results"]

    for name in ("LetheSSCDScore", "LetheUnlearn"):
        life = report["nodes"][name]
        assert life["saved_before"]["widgets_values"], f"{name}: no widgets to shift, the check would be empty"
        shown = [run["shown"] for run in life["runs"]]
        assert shown == [[{"value": "\n".join(first["text"]), "readOnly": True}],
                         [{"value": "\n".join(second["text"]), "readOnly": True}],
                         [{"value": "", "readOnly": True}]], f"{name}: {shown}"
        for run in life["runs"]:
            assert run["saved"] == life["saved_before"], f"{name}: widgets_values changed: {run['saved']}"
            assert run["prompt"] == life["prompt_before"], f"{name}: the queued prompt changed: {run['prompt']}"
            assert run["size"][1] >= life["size_before"][1] + 54, f"{name}: the node did not grow by the box: {run['size']}"
        assert life["reloaded"] == {"shown": [], "saved": life["saved_before"]}, f"{name}: reloaded {life['reloaded']}"

    assert all(run["shown"] == [] for run in report["nodes"]["PreviewImage"]["runs"]), "a core node got Lethe's box"
