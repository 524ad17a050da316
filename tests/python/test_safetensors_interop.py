"""safetensors files written by Lethe load in the Python `safetensors` library with the same
tensors and metadata, and files written by the library load in Lethe."""
import torch
from safetensors import safe_open
from safetensors.torch import save_file

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool,
          torch.float64, torch.int8, torch.int16]


def _tensors():
    g = torch.Generator().manual_seed(1)
    out = {}
    for i, dtype in enumerate(DTYPES):
        base = torch.randn(3, i + 1, generator=g) * 50
        out[f"t_{str(dtype).split('.')[-1]}"] = base.to(dtype) if dtype != torch.bool else base > 0
    out["scalar"] = torch.tensor(2.5)
    out["empty"] = torch.zeros(0, 4)
    return out


def test_lethe_files_load_in_python_safetensors(lethe, tmp_path):
    tensors = _tensors()
    meta = {"objective": "siss", "note": "ünïcode ✓"}
    path = str(tmp_path / "lethe.safetensors")
    lethe.save_safetensors(path, tensors, meta)
    with safe_open(path, framework="pt") as f:
        assert f.metadata() == meta
        assert set(f.keys()) == set(tensors)
        for name, tensor in tensors.items():
            loaded = f.get_tensor(name)
            assert loaded.dtype == tensor.dtype and loaded.shape == tensor.shape, name
            assert torch.equal(loaded, tensor), name


def test_python_files_load_in_lethe(lethe, tmp_path):
    tensors = _tensors()
    meta = {"format": "pt", "k": "v"}
    path = str(tmp_path / "py.safetensors")
    save_file(tensors, path, metadata=meta)
    loaded, loaded_meta = lethe.load_safetensors(path)
    assert loaded_meta == meta
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name


def test_non_contiguous_and_strided_tensors_are_written_contiguous(lethe, tmp_path):
    x = torch.randn(6, 4).t()[:, ::2]
    path = str(tmp_path / "s.safetensors")
    lethe.save_safetensors(path, {"x": x})
    with safe_open(path, framework="pt") as f:
        assert torch.equal(f.get_tensor("x"), x)
