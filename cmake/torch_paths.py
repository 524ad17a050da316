"""Prints what CMake needs to build against this Python's torch, found as torch's own extension
builder (torch.utils.cpp_extension) finds it, one `key=value` line each; lists are ';'-joined.
No CUDA toolkit is involved: a CUDA wheel's libraries are named, never compiled against."""
import glob
import os

import torch
from torch.utils import cpp_extension

torch_dir = os.path.dirname(torch.__file__)
# The nvidia-* wheels (site-packages/nvidia/<name>/lib, or nvidia/cu13/lib) that libtorch_cuda needs.
nvidia = os.path.join(os.path.dirname(torch_dir), "nvidia")
nvidia_dirs = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(nvidia, "**", "lib", "*.so*"), recursive=True)})
print(f"version={torch.__version__}")
print(f"include_dirs={';'.join(cpp_extension.include_paths())}")
print(f"library_dirs={';'.join(cpp_extension.library_paths())}")
print(f"cxx11_abi={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
print(f"cuda={torch.version.cuda or ''}")
print(f"nvidia_library_dirs={';'.join(nvidia_dirs)}")
print(f"site_packages={os.path.dirname(torch_dir)}")
