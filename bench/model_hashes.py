"""The SHA-256 of model files, as the measured JSONs record them (bench/doc_tables.py checks them
against the shipped cards, models/bench/<model>.card.json)."""
import hashlib
import json
import os

# The precision the results tables are measured in (make unlearning-check, make compare,
# bench/tune_defaults.py): fp32, as they were before precision was a setting, so their rows and
# cached evaluations stay comparable whatever `auto` picks on the machine. make precision-check
# measures bf16 against fp32 (docs/performance.md §Quality parity).
TABLE_PRECISION = "fp32"

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "bench")
# The bench's default unlearning recipe (make unlearning-check, make precision-check and make
# distributed-scaling run it): their JSONs record its content, and bench/doc_tables.py compares
# that with this file, so a table of an earlier recipe says so or fails its check.
DEFAULT_RECIPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "siss-tf.json")


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_recipe():
    """The content of bench/configs/siss-tf.json."""
    with open(DEFAULT_RECIPE) as f:
        return json.load(f)


def ran_default_recipe(recorded):
    """Whether a measured JSON's recorded recipe (its "recipe" entry) is the shipped
    bench/configs/siss-tf.json. Results record it since the default gained caption ablation
    (2026-12-04); earlier ones name the path only and ran SISS without it."""
    return recorded.get("recipe") == default_recipe()


def bench_model_hashes(*names):
    """{name: sha256} of models/bench/<name>.safetensors."""
    return {name: file_sha256(os.path.join(BENCH, name + ".safetensors")) for name in names}
