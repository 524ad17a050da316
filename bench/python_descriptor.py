"""The Python way of running a Lethe copy descriptor (`lethe-descriptor/1` files, such as the
bench's models/bench/descriptor.safetensors): the same network in plain PyTorch (a residual
conv trunk with group norms, GeM pooling, a linear projection, L2 normalisation), with the
weights and configuration read from the file. `make bench` times it beside the native
descriptor (bench/run_bench.py); tests/python/test_eval_metrics.py checks it embeds as the
native one does.

    python bench/python_descriptor.py --descriptor models/bench/descriptor.safetensors [--compile]

prints the embedding throughput as JSON.
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

from turns import take_turns


class Descriptor(torch.nn.Module):
    """models/copy_descriptor.hpp in PyTorch: embed(images [B, C, H, W] in [0, 1]) -> [B, D], unit rows."""

    def __init__(self, path):
        super().__init__()
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("lethe.format") != "lethe-descriptor/1":
                raise ValueError(f"{path}: expected lethe.format 'lethe-descriptor/1', got {metadata.get('lethe.format')!r}")
            self.config = json.loads(metadata["lethe.descriptor_config"])
            self.weights = {key: f.get_tensor(key) for key in f.keys()}

    def _conv(self, x, name, stride=1):
        w = self.weights[name + ".weight"]
        return F.conv2d(x, w, self.weights[name + ".bias"], stride=stride, padding=w.shape[-1] // 2)

    def _norm(self, x, name):
        groups = self.config["trunk"]["norm_groups"]
        return F.group_norm(x, groups, self.weights[name + ".weight"], self.weights[name + ".bias"], eps=1e-5)

    def forward(self, x):  # x [B, C, s, s] in [-1, 1]
        trunk = self.config["trunk"]
        h = F.silu(self._norm(self._conv(x, "trunk.stem.conv"), "trunk.stem.norm"))
        for stage in range(len(trunk["widths"])):
            for block in range(trunk["blocks_per_stage"]):
                name = f"trunk.stages.{stage}.{block}"
                stride = 2 if stage > 0 and block == 0 else 1
                inner = F.silu(self._norm(self._conv(h, name + ".conv1", stride), name + ".norm1"))
                inner = self._norm(self._conv(inner, name + ".conv2"), name + ".norm2")
                skip = self._conv(h, name + ".skip", stride) if name + ".skip.weight" in self.weights else h
                h = F.silu(inner + skip)
        p = self.config["gem_p"]
        features = h.clamp_min(1e-6).pow(p).mean((2, 3)).pow(1.0 / p)  # [B, C] GeM
        return F.normalize(F.linear(features, self.weights["projection.weight"], self.weights["projection.bias"]), dim=1)

    def embed(self, images):
        x = images.float()
        channels, size = self.config["trunk"]["in_channels"], self.config["input_size"]
        if x.shape[1] == 3 and channels == 1:
            x = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        if x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        return self((x - 0.5) / 0.5)


def timed_batches(embed, images, count):
    """Seconds of each of `count` embeddings of `images`."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        embed(images)
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--descriptor", required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10, help="timed batches (after two warm-up batches)")
    parser.add_argument("--compile", action="store_true", help="torch.compile (inductor) the embedding")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--paired", action="store_true",
                        help="bursts of --batches batches taking turns with `lethe perf --paired descriptor` (make "
                             "bench): a JSON line after the warm-up and after each burst; each burst waits for a line on stdin")
    parser.add_argument("--bursts", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    descriptor = Descriptor(args.descriptor).eval()
    embed = torch.compile(descriptor.embed) if args.compile else descriptor.embed
    size = descriptor.config["input_size"]
    images = torch.rand(args.batch, descriptor.config["trunk"]["in_channels"], size, size,
                        generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        start = time.perf_counter()
        embed(images)  # torch.compile compiles here
        first = time.perf_counter() - start
        embed(images)
        if args.paired:
            def burst():
                times = timed_batches(embed, images, args.batches)
                return {"seconds": times, "median_seconds": statistics.median(times),
                        "images_per_second": args.batch / statistics.median(times)}

            take_turns("python_descriptor.py", {"ready": "descriptor",
                                                "variant": "compile_fp32" if args.compile else "eager_fp32"},
                       args.bursts, burst)
            return
        times = timed_batches(embed, images, args.batches)
    seconds = statistics.median(times)
    print(json.dumps({"variant": "compile_fp32" if args.compile else "eager_fp32", "batch": args.batch,
                      "seconds_per_batch": seconds, "first_batch_seconds": first,
                      "images_per_second": args.batch / seconds, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
