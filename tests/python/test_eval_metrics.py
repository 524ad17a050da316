"""Evaluation metrics against references: FID/KID against NumPy/SciPy on the same
features, SSCD metrics against hand-computed cases, TorchScript descriptors against
Python torch with the official SSCD preprocessing written out in Python."""
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from sd_helpers import TinySSCD


def fid_reference(a, b):
    a, b = a.double().numpy(), b.double().numpy()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def mmd_reference(x, y):
    x, y = x.double().numpy(), y.double().numpy()
    d = x.shape[1]
    k = lambda p, q: (p @ q.T / d + 1) ** 3
    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


@pytest.mark.parametrize("shift", [0.0, 0.3, 2.0])
def test_fid_matches_scipy(lethe, shift):
    g = torch.Generator().manual_seed(4)
    a = torch.randn(400, 16, generator=g)
    b = torch.randn(300, 16, generator=g) * 1.3 + shift
    b[:, 0] += torch.randn(300, generator=g) * 0.5 + b[:, 1]  # correlated features
    expected = fid_reference(a, b)
    assert lethe.frechet_distance(a, b) == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_fid_of_a_set_with_itself_is_zero(lethe):
    a = torch.randn(200, 8)
    assert abs(lethe.frechet_distance(a, a)) < 1e-6


def test_kid_matches_numpy_on_the_full_sets(lethe):
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(120, 10, generator=g), torch.randn(120, 10, generator=g) + 0.5
    mean, std = lethe.kernel_distance(a, b, subsets=1, subset_size=120)
    assert mean == pytest.approx(mmd_reference(a, b), rel=1e-6) and std == 0.0


def unit(v):
    return F.normalize(torch.as_tensor(v, dtype=torch.float32), dim=-1)


def test_memorization_rate_identical_disjoint_and_threshold_edges(lethe):
    forget = unit([[1.0, 0, 0], [0, 1.0, 0]])
    identical = forget.clone()
    disjoint = unit([[0, 0, 1.0], [0, 0, -1.0]])
    assigned = torch.tensor([0, 1])
    best_identical = lethe.best_match(lethe.similarity_matrix(identical, forget), assigned)
    best_disjoint = lethe.best_match(lethe.similarity_matrix(disjoint, forget), assigned)
    assert lethe.memorization_rate(best_identical, 0.5) == 1.0
    assert lethe.memorization_rate(best_disjoint, 0.5) == 0.0
    edge = torch.tensor([0.5, 0.49999, 0.7, 0.2])
    assert lethe.memorization_rate(edge, 0.5) == 0.5  # >= threshold counts


def test_best_match_own_versus_any(lethe):
    sim = torch.tensor([[0.1, 0.9], [0.8, 0.3]])
    assert lethe.best_match(sim, torch.tensor([0, 1])).tolist() == pytest.approx([0.1, 0.3])
    assert lethe.best_match(sim, torch.tensor([-1, -1])).tolist() == pytest.approx([0.9, 0.8])


def test_normalized_sscd_progress_hand_values(lethe):
    assert lethe.sscd_progress(0.9, 0.9, 0.2) == pytest.approx(1.0)
    assert lethe.sscd_progress(0.2, 0.9, 0.2) == pytest.approx(0.0)
    assert lethe.sscd_progress(0.55, 0.9, 0.2) == pytest.approx(0.5)
    assert lethe.sscd_progress(0.1, 0.9, 0.2) == pytest.approx(-1 / 7)
    with pytest.raises(lethe.LetheError, match="undefined"):
        lethe.sscd_progress(0.5, 0.4, 0.4)


def test_sscd_margin_hand_case(lethe):
    forget = unit([[1.0, 0.0, 0.0]])
    retain = unit([[0.8, 0.6, 0.0], [0.0, 0.0, 1.0], [-1.0, 0, 0]])
    # a copy of the forget image (m > 0) and a retain neighbour (m < 0)
    generated = unit([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0]])
    mean, negative = lethe.sscd_margin(generated, forget, torch.tensor([0, 0]), retain, neighbours=1)
    # nearest retain to the forget image is [0.8, 0.6, 0]: m1 = 1 - 0.8 = 0.2, m2 = 0.8 - 1 = -0.2
    assert mean == pytest.approx(0.0, abs=1e-6) and negative == 0.5


def test_sscd_direction_hand_case(lethe):
    forget = unit([[1.0, 0.0]])
    before = unit([[1.0, 0.0], [0.0, 1.0]])
    after = unit([[0.0, 1.0], [0.0, 1.0]])  # first moved straight away from x_f, second unchanged
    value = lethe.sscd_direction(before, after, forget, torch.tensor([0, 0]))
    assert value == pytest.approx((-1 / np.sqrt(2) + 0.0) / 2, abs=1e-6)


def test_percentile_matches_numpy(lethe):
    values = torch.randn(101)
    for q in (0, 37.5, 95, 100):
        assert lethe.percentile(values, q) == pytest.approx(float(np.percentile(values.numpy(), q)), rel=1e-6)


def test_copy_detection_metrics_hand_case(lethe):
    database = unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    queries = unit([[0.9, 0.1, 0], [0.2, 0.0, 0.9]])  # copies of rows 0 and 2
    result = lethe.copy_detection(queries, database, torch.tensor([0, 2]))
    assert result["recall_at_1"] == 1.0 and result["micro_average_precision"] == pytest.approx(1.0)


def python_official_preprocess(images):
    x = images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(320, 320), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def test_official_preprocessing_matches_python(lethe):
    for shape in [(2, 1, 28, 28), (3, 3, 500, 375)]:
        images = torch.rand(*shape)
        assert torch.allclose(lethe.sscd_official_preprocess(images), python_official_preprocess(images), atol=1e-5)


def test_torchscript_descriptor_scores_match_python(lethe, tmp_path):
    torch.manual_seed(0)
    model = TinySSCD().eval()
    path = tmp_path / "sscd_tiny.torchscript.pt"
    torch.jit.script(model).save(str(path))
    descriptor = lethe.Descriptor.load(str(path))
    assert descriptor.dim == 512 and descriptor.kind == "torchscript"
    images = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        expected = model(python_official_preprocess(images))
    got = descriptor.embed(images, batch_size=2)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(got.norm(dim=1), torch.ones(5), atol=1e-5)


def test_descriptor_with_wrong_dimension_or_unnormalised_output_is_rejected(lethe, tmp_path):
    torch.manual_seed(0)
    unnormalised = tmp_path / "raw.torchscript.pt"
    torch.jit.script(TinySSCD(normalize=False).eval()).save(str(unnormalised))
    with pytest.raises(lethe.LetheError, match="not L2-normalised"):
        lethe.Descriptor.load(str(unnormalised))
    small = tmp_path / "small.torchscript.pt"
    torch.jit.script(TinySSCD(dim=128).eval()).save(str(small))
    with pytest.raises(lethe.LetheError, match="dimension 128, expected 512"):
        lethe.Descriptor.load(str(small))
    assert lethe.Descriptor.load(str(small), expected_dim=128).dim == 128
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(lethe.LetheError, match="not a TorchScript file"):
        lethe.Descriptor.load(str(tmp_path / "junk.pt"))


def test_the_python_descriptor_embeds_as_the_native_one(lethe):
    """bench/python_descriptor.py (what `make bench` times beside the native descriptor) is the same
    network: the bench descriptor's embeddings agree, at its size and through the resize."""
    import os
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.join(root, "bench"))
    from python_descriptor import Descriptor

    path = os.path.join(root, "models", "bench", "descriptor.safetensors")
    python = Descriptor(str(path)).eval()
    native = lethe.Descriptor.load(str(path))
    generator = torch.Generator().manual_seed(3)
    for shape in [(6, 1, 28, 28), (3, 3, 40, 36)]:
        images = torch.rand(*shape, generator=generator)
        with torch.no_grad():
            expected = python.embed(images)
        got = native.embed(images, batch_size=4)
        assert torch.allclose(got, expected, atol=2e-5), (shape, (got - expected).abs().max())
