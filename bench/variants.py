"""The Python ways `make bench` times the reference in, with their names in the tables: one
source for bench/python_reference.py (its --variant choices) and bench/run_bench.py."""

VARIANT_NAMES = {"eager_fp32": "eager fp32", "eager_bf16": "eager bf16 autocast",
                 "compile_fp32": "torch.compile fp32", "compile_bf16": "torch.compile bf16 autocast"}
VARIANTS = tuple(VARIANT_NAMES)
