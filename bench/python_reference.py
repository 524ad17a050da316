"""The Python ways of doing what `lethe perf` does natively: diffusers' UNet2DConditionModel
with the bench UNet's configuration and the same weights, run eager or under torch.compile
(inductor), in fp32 or with torch.autocast bf16 (`--variant`), one SISS step
(two forwards, two gradients, rescaled forget gradient, clip, AdamW: the same work as
Lethe's SISS objective) and a plain loop over the UNet and DDIMScheduler for sampling.
`--device cuda` runs it on a GPU. `--sd15-lora` instead times the same SISS step on an
SD1.5-sized UNet (random weights in bf16) at 512x512 with a peft LoRA under bf16 autocast, the
way diffusers' LoRA training scripts run it, and reports the GPU's peak allocated memory.

Run by bench/run_bench.py in its own process (so its peak RSS is its own). Prints JSON.
Also `--write-unet PATH` writes the model's weights in the LDM layout for the native side.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "python"))

from ldm_convert import diffusers_to_ldm  # noqa: E402
from test_objective_losses import siss_reference  # noqa: E402 (the loss written from docs/methods.md)
from turns import take_turns  # noqa: E402
from variants import VARIANTS  # noqa: E402


def bench_unet(seed=0):
    """diffusers' twin of bench_unet_config(): 32 channels x (1, 2, 2), one res block per
    level, attention (head width 32) at the coarsest level and in the middle, context 64."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=28, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"), layers_per_block=1,
        cross_attention_dim=64, attention_head_dim=2, norm_num_groups=8, use_linear_projection=False,
    )


def write_unet(path):
    from safetensors.torch import save_file

    unet = bench_unet()
    with torch.no_grad():  # non-trivial weights everywhere (zero-initialised output layers too)
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ldm = diffusers_to_ldm(unet.state_dict(), 1, [True, False, False])
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in ldm.items()}, path)
    torch.save(unet.state_dict(), path + ".diffusers.pt")


def siss_step(unet, optimizer, params, alphas_cumprod, x, a, c_x, c_a, generator, lam=0.5, scaling_norm=5.0):
    """Random draws come from `generator` on the CPU, then move to the data's device."""
    n, device = x.shape[0], x.device
    t = torch.randint(0, 1000, (n,), generator=generator).to(device)
    eps = torch.randn(x.shape, generator=generator).to(device)
    gamma = alphas_cumprod[t].sqrt().view(n, 1, 1, 1)
    sigma = (1 - alphas_cumprod[t]).sqrt().view(n, 1, 1, 1)
    from_forget = (torch.rand(n, generator=generator) < lam).view(n, 1, 1, 1).to(device)
    m = torch.where(from_forget, gamma * a + sigma * eps, gamma * x + sigma * eps)
    p_x = unet(m, t, encoder_hidden_states=c_x).sample
    p_a = unet(m, t, encoder_hidden_states=c_a).sample
    l_x, l_a = siss_reference(p_x, p_a, m, x, a, gamma, sigma, lam, torch.ones(n, device=device), None, None)
    g_x = torch.autograd.grad(l_x, params, retain_graph=True)
    g_a = torch.autograd.grad(l_a, params)
    norm_a = torch.cat([g.flatten() for g in g_a]).norm()
    for p, gx, ga in zip(params, g_x, g_a):
        p.grad = gx - scaling_norm / norm_a * ga
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step, device, warmup, timed):
    """(first step's seconds, median seconds of the timed steps after warm-up)."""
    start = time.perf_counter()
    step()  # torch.compile compiles here
    synchronize(device)
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        step()
    synchronize(device)
    return first, statistics.median(timed_calls(step, device, timed))


def timed_calls(work, device, count):
    """Seconds of each of `count` calls of `work`, the device synchronised after each."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        work()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]  # Lethe's default LoRA targets


def sd15_lora(args, device):
    """The SISS step with a LoRA (rank 4, alpha 4, Lethe's default targets) on an SD1.5-sized
    UNet (diffusers' default UNet2DConditionModel with SD1.5's 768-wide context), weights in
    bf16, adapters in fp32, forward under bf16 autocast: diffusers' train_text_to_image_lora.py."""
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from peft import LoraConfig

    torch.manual_seed(11)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).to(device, dtype=torch.bfloat16)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=LORA_TARGETS))
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()  # diffusers' cast_training_params: trainable weights in fp32
    unet.train()
    model = Bf16Forward(unet, device.type)
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    alphas_cumprod = DDIMScheduler(num_train_timesteps=1000).alphas_cumprod.to(device)
    g = torch.Generator().manual_seed(7)
    n = args.batch
    x, a = ((torch.rand(n, 4, 64, 64, generator=g) * 2 - 1).to(device) for _ in range(2))
    c_x, c_a = (torch.randn(n, 77, 768, generator=g).to(device) for _ in range(2))
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first, median = timed_steps(lambda: siss_step(model, optimizer, params, alphas_cumprod, x, a, c_x, c_a, g),
                                device, args.warmup, args.timed)
    cuda = device.type == "cuda"
    return {"variant": "eager_bf16", "torch": torch.__version__, "device": torch.cuda.get_device_name(device) if cuda else "cpu",
            "unet_parameters": sum(p.numel() for p in unet.parameters()),
            "lora_parameters": sum(p.numel() for p in params), "batch": n, "timed_steps": args.timed,
            "median_seconds": median, "first_step_seconds": first,
            "peak_allocated_bytes": torch.cuda.max_memory_allocated(device) if cuda else None}


class Output:
    def __init__(self, sample):
        self.sample = sample


class Bf16Forward(torch.nn.Module):
    """The model's forward under torch.autocast(bf16), its output back in fp32: how a PyTorch
    user runs mixed precision (backward outside autocast, as the autocast docs advise)."""

    def __init__(self, unet, device_type="cpu"):
        super().__init__()
        self.unet = unet
        self.device_type = device_type

    def forward(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return Output(self.unet(*args, **kwargs).sample.float())


def paired_bursts(args, device, work):
    """make bench's paired bursts (bench/turns.py): warm up, then take turns, each burst running
    `work` (--burst-steps times for a step, once for sampling) and saying its seconds."""
    per_burst = args.burst_steps if args.paired == "step" else 1
    for _ in range(args.warmup if args.paired == "step" else 1):  # sampling: one whole pass (torch.compile compiles)
        work()
    synchronize(device)

    def burst():
        seconds = timed_calls(work, device, per_burst)
        return {"seconds": seconds, "median_seconds": statistics.median(seconds)} if args.paired == "step" else \
            {"seconds": seconds[0], "images_per_second": args.sample_batch / seconds[0]}

    take_turns("python_reference.py", {"ready": args.paired, "variant": args.variant}, args.bursts, burst)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write-unet")
    parser.add_argument("--unet-state")
    parser.add_argument("--variant", choices=VARIANTS, default="eager_fp32",
                        help="eager or torch.compile (inductor), fp32 or bf16 autocast")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timed", type=int, default=20)
    parser.add_argument("--sample-batch", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=28, help="images and latents are this square size")
    parser.add_argument("--sample-steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--sd15-lora", action="store_true", help="the SD1.5-sized LoRA step instead (a GPU's job)")
    parser.add_argument("--paired", choices=("step", "sampling"),
                        help="only that, in bursts taking turns with `lethe perf --paired` (make bench): a JSON line "
                             "on stdout after the warm-up and after each burst; each next burst waits for a line on stdin")
    parser.add_argument("--bursts", type=int, default=8)
    parser.add_argument("--burst-steps", type=int, default=5, help="training steps per burst of --paired step")
    parser.add_argument("--sample-forwards", type=int, choices=(1, 2), default=1,
                        help="--paired sampling: guidance as one forward of 2 x batch rows, or two forwards")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.write_unet:
        write_unet(args.write_unet)
        return
    if args.sd15_lora:
        print(json.dumps(sd15_lora(args, device)))
        return

    from diffusers import DDIMScheduler
    from torch.utils.flop_counter import FlopCounterMode

    unet = bench_unet()
    unet.load_state_dict(torch.load(args.unet_state))
    unet.to(device).train()
    params = [p for p in unet.parameters() if p.requires_grad]
    model = Bf16Forward(unet, device.type) if args.variant.endswith("bf16") else unet
    if args.variant.startswith("compile"):
        model = torch.compile(model)
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    alphas_cumprod = DDIMScheduler(num_train_timesteps=1000).alphas_cumprod.to(device)
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(args.batch, 1, args.image_size, args.image_size, generator=g) * 2 - 1).to(device)
    a = (torch.rand(args.batch, 1, args.image_size, args.image_size, generator=g) * 2 - 1).to(device)
    c_x = torch.randn(args.batch, 8, 64, generator=g).to(device)
    c_a = torch.randn(args.batch, 8, 64, generator=g).to(device)

    def step():
        siss_step(model, optimizer, params, alphas_cumprod, x, a, c_x, c_a, g)

    if args.paired == "step":
        paired_bursts(args, device, step)
        return
    first_step = median_step = flops = None
    if args.paired is None:
        first_step, median_step = timed_steps(step, device, args.warmup, args.timed)
    if args.variant == "eager_fp32" and args.paired is None:
        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()

    # Sampling: 25-step DDIM with classifier-free guidance, timed both ways a user would write
    # it: uncond + cond in one forward of 2 x batch rows, or two forwards of batch rows (the
    # native sampler splits a forward whose widest activations glibc would map afresh every
    # time, so the reference gets that choice too); the faster one counts.
    unet.eval()
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    scheduler.set_timesteps(args.sample_steps)
    context = torch.randn(args.sample_batch, 8, 64, generator=g).to(device)
    uncond = torch.zeros(args.sample_batch, 8, 64, device=device)

    def sample(batch, forwards):
        latents = torch.randn(batch, 1, args.image_size, args.image_size, generator=g).to(device)
        with torch.inference_mode():
            for t in scheduler.timesteps:
                if forwards == 1:
                    both = model(torch.cat([latents, latents]), t,
                                 encoder_hidden_states=torch.cat([uncond[:batch], context[:batch]])).sample
                    e_u, e_c = both.chunk(2)
                else:
                    e_u = model(latents, t, encoder_hidden_states=uncond[:batch]).sample
                    e_c = model(latents, t, encoder_hidden_states=context[:batch]).sample
                latents = scheduler.step(e_u + 3.0 * (e_c - e_u), t, latents).prev_sample
        return latents.cpu()  # the images on the host, as the native sampler returns them

    if args.paired == "sampling":
        paired_bursts(args, device, lambda: sample(args.sample_batch, args.sample_forwards))
        return
    sampling_ways = {}
    for forwards in (1, 2):
        start = time.perf_counter()
        sample(args.sample_batch, forwards)  # warm-up at the timed shape (torch.compile compiles here)
        first = time.perf_counter() - start
        start = time.perf_counter()
        sample(args.sample_batch, forwards)
        sampling_ways[forwards] = {"seconds": time.perf_counter() - start, "first_run_seconds": first}
    forwards = min(sampling_ways, key=lambda f: sampling_ways[f]["seconds"])
    sample_seconds = sampling_ways[forwards]["seconds"]
    first_sample = sampling_ways[1]["first_run_seconds"]
    print(json.dumps({
        "variant": args.variant, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "device": str(device),
        "train_step": {"batch": args.batch, "image_size": args.image_size, "timed_steps": args.timed, "median_seconds": median_step,
                       "first_step_seconds": first_step, "flops": flops},
        "sampling": {"batch": args.sample_batch, "steps": args.sample_steps, "seconds": sample_seconds,
                     "first_run_seconds": first_sample, "images_per_second": args.sample_batch / sample_seconds,
                     "guidance_forwards": forwards,
                     "images_per_second_by_forwards": {str(f): args.sample_batch / w["seconds"]
                                                       for f, w in sampling_ways.items()}},
    }))


if __name__ == "__main__":
    main()
