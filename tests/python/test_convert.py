"""`lethe convert WORKFLOW --object-info FILE`: with the /object_info a ComfyUI serves, nodes that are
not Lethe's keep their widgets and links, so every shipped workflow converts to the prompt the
frontend's own conversion gives and the server accepts (the mock's graph_to_prompt and
validate_prompt, ComfyUI's own nodes included as stand-ins: the SD ones, and the Flux loaders and
FluxGuidance); without an entry for such a node the
conversion refuses and names it."""
import glob
import json
import os
import subprocess

import pytest

from comfy_helpers import comfy
from conftest import LETHE_EXE, ROOT
from sd_helpers import SPEC

WORKFLOWS = sorted(glob.glob(os.path.join(ROOT, "workflows", "*.json")))


@pytest.fixture(scope="module")
def mock_object_info(tmp_path_factory):
    """The mock ComfyUI's /object_info with the stand-ins for ComfyUI's own nodes registered and the
    model files the shipped workflows name present (their combo lists come from the folders)."""
    tmp_path = tmp_path_factory.mktemp("object_info")
    base = tmp_path / "comfyui"
    for folder, name in (("checkpoints", "v1-5-pruned-emaonly.safetensors"), ("checkpoints", "sd_xl_base_1.0.safetensors")):
        (base / "models" / folder).mkdir(parents=True, exist_ok=True)
        (base / "models" / folder / name).write_bytes(b"")
    spec = {k: list(v) if isinstance(v, tuple) else v for k, v in SPEC.items()}
    out = comfy(tmp_path, f"""
        sys.path.insert(0, {os.path.join(ROOT, "tests", "python")!r})
        import flux_standins, sd_standins, server
        sd_standins.register({spec!r})
        flux_standins.register(shared=False)
        info = server.object_info()
        prompts = {{}}
        for path in {WORKFLOWS!r}:
            prompt = executor.graph_to_prompt(json.load(open(path)))
            prompts[os.path.basename(path)] = prompt
        print(json.dumps({{"object_info": info, "frontend": prompts}}))
    """)
    path = tmp_path / "object_info.json"
    path.write_text(json.dumps(out["object_info"]))
    return tmp_path, path, out["frontend"], spec


def _convert(*args):
    return subprocess.run([LETHE_EXE, "convert", *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=os.path.basename)
def test_convert_with_object_info_gives_the_frontends_prompt_and_the_server_accepts_it(mock_object_info, workflow):
    tmp_path, object_info, frontend, spec = mock_object_info
    done = _convert(workflow, "--object-info", str(object_info))
    assert done.returncode == 0, done.stderr
    prompt = json.loads(done.stdout)
    for node in prompt.values():
        node.pop("_meta", None)
    assert prompt == frontend[os.path.basename(workflow)]
    out = comfy(tmp_path, f"""
        sys.path.insert(0, {os.path.join(ROOT, "tests", "python")!r})
        import flux_standins, sd_standins
        sd_standins.register({spec!r})
        flux_standins.register(shared=False)
        prompt = json.loads({json.dumps(prompt)!r})
        executor.validate(prompt)
        print(json.dumps({{"valid": True, "classes": sorted({{n["class_type"] for n in prompt.values()}})}}))
    """)
    assert out["valid"]
    if "artist-removal" in workflow:  # ComfyUI's own nodes, with their widgets
        assert {"CLIPTextEncode", "KSampler", "VAEEncode", "EmptyLatentImage"} <= set(out["classes"])
        sampler = next(n for n in prompt.values() if n["class_type"] == "KSampler")["inputs"]
        expected = (7.5, "ddim") if "sd15" in workflow else (7.0, "euler")
        assert sampler["steps"] == 25 and (sampler["cfg"], sampler["sampler_name"]) == expected
        assert all(isinstance(sampler[k], list) for k in ("model", "positive", "negative", "latent_image"))


def test_convert_without_object_info_refuses_and_names_the_nodes():
    workflow = os.path.join(ROOT, "workflows", "sd15-artist-removal.json")
    done = _convert(workflow)
    assert done.returncode != 0 and done.stdout == ""
    message = done.stderr
    for node in ("node 5 (CLIPTextEncode)", "node 17 (KSampler)", "node 1 (CheckpointLoaderSimple)"):
        assert node in message
    assert "--object-info" in message and "/object_info" in message and "Traceback" not in message
    # Lethe's own workflows need none
    assert _convert(os.path.join(ROOT, "workflows", "quickstart.json")).returncode == 0


def test_convert_names_what_the_object_info_lacks(mock_object_info, tmp_path):
    _, object_info, _, _ = mock_object_info
    info = json.loads(object_info.read_text())
    workflow = os.path.join(ROOT, "workflows", "sd15-artist-removal.json")

    without_sampler = tmp_path / "no-ksampler.json"
    without_sampler.write_text(json.dumps({k: v for k, v in info.items() if k != "KSampler"}))
    done = _convert(workflow, "--object-info", str(without_sampler))
    assert done.returncode != 0 and "node 17 (KSampler)" in done.stderr and "CLIPTextEncode" not in done.stderr

    old = tmp_path / "old.json"
    old.write_text(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "input_order"} for k, v in info.items()}))
    done = _convert(workflow, "--object-info", str(old))
    assert done.returncode != 0 and "has no 'input_order'" in done.stderr and str(old) in done.stderr

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(dict(info, KSampler={"input": {"required": {"seed": "INT"}},
                                                      "input_order": {"required": ["seed"]}})))
    done = _convert(workflow, "--object-info", str(broken))
    assert done.returncode != 0 and "KSampler: input 'seed': expected [type, {options}], got \"INT\"" in done.stderr

    not_json = tmp_path / "page.html"
    not_json.write_text("<html>")
    done = _convert(workflow, "--object-info", str(not_json))
    assert done.returncode != 0 and str(not_json) in done.stderr and "Traceback" not in done.stderr
