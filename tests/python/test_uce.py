"""UCE (docs/methods.md §5.4): the closed-form projection edit against its formula in NumPy,
the token rows it edits against UCE's alignment of an erased and a destination prompt, and a
run on the bench concept task that edits only the cross-attention keys and values."""
import json
import os
import subprocess

import numpy as np
import pytest
import torch

from conftest import LETHE_EXE, ROOT

BASE = os.path.join(ROOT, "models", "bench", "base.safetensors")


def uce_reference(w, c, d, p, lam, s_e, s_p):
    """W' = (lam W + s_e sum_i W d_i c_i^T + s_p sum_j W p_j p_j^T)(lam I + s_e sum_i c_i c_i^T + s_p sum_j p_j p_j^T)^-1,
    written with explicit outer-product sums."""
    left = lam * w.copy()
    right = lam * np.eye(w.shape[1])
    for ci, di in zip(c, d):
        left += s_e * np.outer(w @ di, ci)
        right += s_e * np.outer(ci, ci)
    for pj in p:
        left += s_p * np.outer(w @ pj, pj)
        right += s_p * np.outer(pj, pj)
    return left @ np.linalg.inv(right)


def test_uce_weight_matches_the_formula(lethe):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 5))
    c, d, p = rng.normal(size=(3, 5)), rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    ours = lethe.uce_weight(torch.from_numpy(w), torch.from_numpy(c), torch.from_numpy(d), torch.from_numpy(p), 0.1, 1.0, 0.25)
    assert np.allclose(ours.numpy(), uce_reference(w, c, d, p, 0.1, 1.0, 0.25), rtol=1e-10, atol=1e-12)
    # float32 weights come back float32; with nothing preserved only the erase terms act.
    ours32 = lethe.uce_weight(torch.from_numpy(w).float(), torch.from_numpy(c), torch.from_numpy(d), torch.zeros(0, 5), 0.1, 1.0, 0.25)
    assert ours32.dtype == torch.float32
    assert np.allclose(ours32.numpy(), uce_reference(w, c, d, [], 0.1, 1.0, 0.25), rtol=1e-5, atol=1e-6)


def test_uce_sends_erased_rows_where_the_destination_went_and_keeps_preserved_ones(lethe):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 16))
    c, d, p = rng.normal(size=(2, 16)), rng.normal(size=(2, 16)), rng.normal(size=(3, 16))
    new = lethe.uce_weight(*(torch.from_numpy(a) for a in (w, c, d, p)), 1e-4, 1.0, 1.0).numpy()
    assert np.abs(new @ c.T - w @ d.T).max() < 1e-3 * np.abs(w @ d.T).max()
    assert np.abs(new @ p.T - w @ p.T).max() < 1e-3 * np.abs(w @ p.T).max()


def test_uce_rows_align_an_erased_and_a_destination_prompt(lethe):
    # UCE takes each prompt's last word token and everything after it, and cuts the longer
    # tail so both have as many rows: [t_o .. L - (f - t_o)), [t_n .. L - (f - t_n)), f = max.
    context, destination = torch.arange(12.0).view(6, 2), 100 + torch.arange(12.0).view(6, 2)
    rows, target = lethe.uce_rows(context, 3, destination, 1)  # tokens: 3 words vs 1
    assert torch.equal(rows, context[2:6]) and torch.equal(target, destination[0:4])
    rows, target = lethe.uce_rows(context, 2, destination, 2)
    assert torch.equal(rows, context[1:6]) and torch.equal(target, destination[1:6])


@pytest.mark.usefixtures("bench_models")
def test_a_uce_run_edits_only_cross_attention_keys_and_values(tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    config = {"data": {"preset": "bench", "task": "concept", "concept": "sneaker", "anchor": "sandal", "retain_limit": 64},
              "objective": "uce", "output": str(out)}
    (tmp_path / "config.json").write_text(json.dumps(config))
    done = subprocess.run([LETHE_EXE, "unlearn", "--config", str(tmp_path / "config.json")], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 0 and summary["edit"]["projections_edited"] > 0 and summary["wall_seconds"] > 0
    assert summary["edit"]["preserve_rows"] > 0
    before, after = load_file(BASE), load_file(str(out / "model.safetensors"))
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    edited = {k for k in before if k.endswith(("attn2.to_k.weight", "attn2.to_v.weight"))}
    assert moved == edited and len(edited) == summary["edit"]["projections_edited"]


def bench_contexts(weights, metadata, captions):
    """The embedded text encoder in NumPy (native/models/text_encoder.hpp): LayerNorm(token
    embedding + position embedding), padded with <pad> to max_tokens. [N, L, D]"""
    config = json.loads(metadata["lethe.text_encoder_config"])
    ids = np.zeros((len(captions), config["max_tokens"]), dtype=np.int64)
    for n, caption in enumerate(captions):
        words = caption.split()
        ids[n, :len(words)] = [config["vocabulary"].index(w) for w in words]
    x = weights["text_encoder.token_embedding.weight"].double().numpy()[ids] \
        + weights["text_encoder.position_embedding.weight"].double().numpy()[None]
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    return x * weights["text_encoder.norm.weight"].double().numpy() + weights["text_encoder.norm.bias"].double().numpy()


@pytest.mark.usefixtures("bench_models")
def test_uce_rows_setting_decides_whether_the_concepts_own_token_is_edited(tmp_path):
    # The embedded encoder is not causal: the row of `sneaker` in `sneaker footwear` carries only
    # that word. With all_tokens it goes where `sandal`'s row went; UCE's from_last_token edits
    # `footwear` and the padding only, and moves it a quarter of the way (the least-squares edit is shared).
    from safetensors import safe_open
    from safetensors.torch import load_file

    before = load_file(BASE)
    with safe_open(BASE, "pt") as f:
        metadata = f.metadata()
    sneaker, sandal = bench_contexts(before, metadata, ["sneaker footwear", "sandal footwear"])[:, 0]  # [D] each
    moved = {}
    for rows in ("all_tokens", "from_last_token"):
        out = tmp_path / rows
        config = {"data": {"preset": "bench", "task": "concept", "concept": "sneaker", "anchor": "sandal", "retain_limit": 64},
                  "objective": "uce", "objective_config": {"rows": rows}, "output": str(out)}
        (tmp_path / f"{rows}.json").write_text(json.dumps(config))
        done = subprocess.run([LETHE_EXE, "unlearn", "--config", str(tmp_path / f"{rows}.json")], capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        summary = json.loads((out / "summary.json").read_text())
        after = load_file(str(out / "model.safetensors"))
        names = [k for k in before if k.endswith("attn2.to_v.weight")]
        # how far the erased row's value moved towards the destination's: 0 = not at all, 1 = all the way
        moved[rows] = np.mean([np.dot(after[k].double().numpy() @ sneaker - before[k].double().numpy() @ sneaker,
                                      before[k].double().numpy() @ (sandal - sneaker))
                               / np.sum((before[k].double().numpy() @ (sandal - sneaker)) ** 2) for k in names])
        moved[rows + " rows"] = summary["edit"]["erase_rows"]
    assert moved["all_tokens"] > 0.99 and abs(moved["from_last_token"]) < 0.5, moved  # measured: 0.999, 0.26
    assert moved["all_tokens rows"] > moved["from_last_token rows"], moved


def test_uce_rows_setting_is_checked(tmp_path):
    config = {"data": {"preset": "bench", "task": "concept", "concept": "sneaker", "anchor": "sandal"},
              "objective": "uce", "objective_config": {"rows": "first_token"}, "output": str(tmp_path / "run")}
    (tmp_path / "c.json").write_text(json.dumps(config))
    done = subprocess.run([LETHE_EXE, "unlearn", "--config", str(tmp_path / "c.json")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode != 0
    assert ".rows: expected \"all_tokens\" or \"from_last_token\", got \"first_token\"" in done.stderr
    assert "Traceback" not in done.stderr
