"""What nodes hand back and write: Lethe SSCD Score names its descriptor, refuses images the
bench's embedded descriptor cannot judge, and writes the per-image scores as JSON and CSV beside
its preview; Lethe Save Model saves under its prefix in ComfyUI's output folder (as SaveImage),
headless in the run folder, and names the file relative to that folder."""
import csv
import io
import json
import os
import re

import pytest
import torch

from comfy_helpers import needs_bench


def _gray(count, size, seed):
    """IMAGE [B, H, W, 3] with equal channels (grayscale as ComfyUI carries it)."""
    pixels = torch.rand(count, size, size, 1, generator=torch.Generator().manual_seed(seed))
    return pixels.expand(-1, -1, -1, 3).contiguous()


def _score(lethe, tmp_path, images, reference, threshold=0.5):
    inputs = {"images": images, "reference": reference, "threshold": threshold, "match": "any"}
    return lethe.run_node("LetheSSCDScore", inputs, "5", str(tmp_path))


@needs_bench
def test_sscd_score_names_its_descriptor_and_writes_the_scores_as_json_and_csv(lethe, tmp_path):
    images, reference = _gray(3, 28, 1), _gray(2, 28, 2)
    (rate, scores_json, _), ui = _score(lethe, tmp_path, images, torch.cat([reference, images[:1]]))
    scores = json.loads(scores_json)
    line = ui["texts"][0]
    copies = sum(row["score"] >= 0.5 for row in scores["scores"])
    assert copies >= 1  # image 0 is among the references
    assert line == (f"memorization rate {rate:g} at threshold 0.5: {copies} of 3 images are copies "
                    f"(descriptor lethe-embedded {scores['descriptor_file']})")
    assert scores["descriptor"] == "lethe-embedded" and scores["descriptor_file"].endswith(".safetensors")

    written = sorted(os.listdir(tmp_path))
    assert written == ["sscd-scores-node-5_00001_.csv", "sscd-scores-node-5_00001_.json"]
    assert ui["texts"][1] == "per-image scores: sscd-scores-node-5_00001_.json, sscd-scores-node-5_00001_.csv"
    assert json.loads((tmp_path / written[1]).read_text()) == scores
    rows = list(csv.DictReader(io.StringIO((tmp_path / written[0]).read_text())))
    assert [int(r["image"]) for r in rows] == [s["image"] for s in scores["scores"]]
    assert [int(r["reference"]) for r in rows] == [s["reference"] for s in scores["scores"]]
    assert [float(r["score"]) for r in rows] == pytest.approx([s["score"] for s in scores["scores"]], abs=1e-6)
    assert [int(r["copy"]) for r in rows] == [int(s["score"] >= 0.5) for s in scores["scores"]]

    # a second score writes the next number, never over the first
    _score(lethe, tmp_path, images, reference)
    assert "sscd-scores-node-5_00002_.json" in os.listdir(tmp_path) and "sscd-scores-node-5_00002_.csv" in os.listdir(tmp_path)


@needs_bench
@pytest.mark.parametrize("case", ["large", "colour", "colour reference"])
def test_the_bench_descriptor_refuses_images_it_cannot_judge(lethe, tmp_path, case):
    gray = _gray(2, 28, 3)
    colour = torch.rand(2, 28, 28, 3, generator=torch.Generator().manual_seed(4))
    images, reference, field, got = {
        "large": (_gray(2, 512, 5), gray, "images", "got 512x512"),
        "colour": (colour, gray, "images", "got colour"),
        "colour reference": (gray, colour, "reference", "got colour"),
    }[case]
    with pytest.raises(lethe.LetheError) as raised:
        _score(lethe, tmp_path, images, reference)
    message = str(raised.value)
    assert f"node 5 (LetheSSCDScore) input '{field}'" in message
    assert "the descriptor lethe-embedded" in message and "cannot judge these images" in message
    assert "trained on" in message and got in message
    assert "models/sscd/sscd_disc_mixup.torchscript.pt" in message
    assert os.listdir(tmp_path) == []  # nothing written


def test_a_missing_sscd_file_says_where_it_looked_and_what_to_put_there(lethe, tmp_path):
    path = tmp_path / "models" / "sscd" / "sscd_disc_mixup.torchscript.pt"
    with pytest.raises(lethe.LetheError) as raised:
        lethe.run_node("LetheLoadDescriptor", {"source": "file", "path": str(path)}, "3", str(tmp_path))
    message = str(raised.value)
    assert f"looked for {path}" in message
    assert "sscd_disc_mixup.torchscript.pt" in message and "put it at that path" in message


@needs_bench
def test_save_model_lands_under_its_prefix_in_the_output_folder(lethe, tmp_path):
    model = lethe.run_node("LetheBenchModel", {"which": "base"}, "1", str(tmp_path / "run"))[0][0]
    output = tmp_path / "output"
    output.mkdir()
    _, ui = lethe.run_node("LetheSaveModel", {"model": model, "filename_prefix": "lethe/siss"}, "2",
                           str(output / "lethe"), None, {"output": str(output)})
    assert (output / "lethe" / "siss_00001_.safetensors").is_file()
    assert not (output / "lethe" / "lethe").exists()
    assert ui["texts"] == ["saved lethe/siss_00001_.safetensors"]
    # headless (no output folder given): under the run folder
    _, ui = lethe.run_node("LetheSaveModel", {"model": model, "filename_prefix": "lethe/siss"}, "2", str(tmp_path / "run"))
    assert (tmp_path / "run" / "lethe" / "siss_00001_.safetensors").is_file()
    assert re.fullmatch(r"saved lethe/siss_00001_\.safetensors", ui["texts"][0])
