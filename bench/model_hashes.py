"""The SHA-256 of model files, as the measured JSONs record them (bench/doc_tables.py checks them
against the shipped cards, models/bench/<model>.card.json)."""
import hashlib
import os

# The precision the results tables are measured in (make unlearning-check, make compare,
# bench/tune_defaults.py): fp32, as they were before precision was a setting, so their rows and
# cached evaluations stay comparable whatever `auto` picks on the machine. make precision-check
# measures bf16 against fp32 (docs/performance.md §Quality parity).
TABLE_PRECISION = "fp32"

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "bench")


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bench_model_hashes(*names):
    """{name: sha256} of models/bench/<name>.safetensors."""
    return {name: file_sha256(os.path.join(BENCH, name + ".safetensors")) for name in names}
