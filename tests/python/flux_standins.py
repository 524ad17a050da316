"""Test stand-ins for the ComfyUI nodes of workflows/flux-concept-erasure.json, with the real
nodes' names, INPUT_TYPES (ComfyUI @ a125cd84: nodes.py, comfy_extras/nodes_flux.py,
nodes_sd3.py) and value types, so the workflow runs end to end inside the mock ComfyUI:

- UNETLoader: a tiny random Flux (family_standins.TinyFlux, seeded) inside the mock's
  comfy.model_base.Flux with ModelSamplingFlux (shift 1.15), loaded under inference mode;
- DualCLIPLoader / CLIPTextEncode: a toy text encoder giving Flux's CONDITIONING form, tokens
  [1, 7, 48] and a pooled_output [1, 32] (a fixed random vector per word);
- FluxGuidance: node_helpers.conditioning_set_values(conditioning, {"guidance": g});
- VAELoader / VAEEncode / VAEDecode: a toy VAE (8x8 average pooling to 16 channels and back,
  raw latents: ComfyUI's LATENT before process_latent_in);
- EmptySD3LatentImage and KSampler: Euler steps of the flow ODE over the "simple" schedule of
  the MODEL's sigmas, through apply_model with each prompt's extra_conds, on the MODEL's weights
  with its patches merged, classifier-free guidance when cfg != 1.
They are not models of Flux, T5/CLIP or its VAE: they give the workflow's values the right
types and shapes."""
import copy
import zlib

import torch

import nodes
from comfy.model_base import Flux
from comfy.model_patcher import ModelPatcher
from comfy.model_sampling import flow_sampling
from family_standins import TinyFlux

TOKENS, WIDTH, POOLED, CHANNELS = 7, 48, 32, 16


class ToyFluxCLIP:
    def encode(self, text):
        """(tokens [1, 7, 48], pooled [1, 32]) from a fixed random vector per word."""
        words = (text.split() or [""])[:TOKENS]
        rows = [torch.randn(WIDTH + POOLED, generator=torch.Generator().manual_seed(zlib.crc32(w.encode()))) for w in words]
        tokens = torch.zeros(TOKENS, WIDTH)
        tokens[: len(rows)] = torch.stack(rows)[:, :WIDTH]
        return tokens.unsqueeze(0), torch.stack(rows)[:, WIDTH:].mean(0, keepdim=True)


class ToyFluxVAE:
    def encode(self, pixels):  # IMAGE [B, H, W, 3] in [0, 1] -> raw latents [B, 16, H/8, W/8]
        x = pixels.movedim(-1, 1) * 2 - 1
        x = torch.cat([x] * 5 + [x.mean(1, keepdim=True)], dim=1)
        return torch.nn.functional.avg_pool2d(x, 8)

    def decode(self, latents):  # raw latents -> IMAGE
        x = torch.nn.functional.interpolate(latents[:, :3], scale_factor=8, mode="nearest")
        return ((x + 1) / 2).clamp(0, 1).movedim(1, -1).contiguous()


def _types(**inputs):
    """INPUT_TYPES of a node whose inputs are all required."""
    return classmethod(lambda cls: {"required": inputs})


class UNETLoader:
    INPUT_TYPES = _types(unet_name=(["flux1-dev.safetensors"],),
                         weight_dtype=(["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"],))
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_unet"

    def load_unet(self, unet_name, weight_dtype):
        with torch.inference_mode():
            torch.manual_seed(0)
            model = Flux(TinyFlux(), flow_sampling("flux"))
            model.requires_grad_(False)
            model.eval()
        return (ModelPatcher(model),)


class DualCLIPLoader:
    INPUT_TYPES = _types(clip_name1=(["clip_l.safetensors"],), clip_name2=(["t5xxl_fp16.safetensors"],),
                         type=(["sdxl", "sd3", "flux", "hunyuan_video"],))
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load_clip"

    def load_clip(self, clip_name1, clip_name2, type):  # noqa: A002 (the real name)
        return (ToyFluxCLIP(),)


class VAELoader:
    INPUT_TYPES = _types(vae_name=(["ae.safetensors"],))
    RETURN_TYPES = ("VAE",)
    FUNCTION = "load_vae"

    def load_vae(self, vae_name):
        return (ToyFluxVAE(),)


class CLIPTextEncode:
    INPUT_TYPES = _types(text=("STRING", {"multiline": True, "dynamicPrompts": True}), clip=("CLIP",))
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    def encode(self, clip, text):
        tokens, pooled = clip.encode(text)
        return ([[tokens, {"pooled_output": pooled}]],)


class FluxGuidance:
    INPUT_TYPES = _types(conditioning=("CONDITIONING",),
                         guidance=("FLOAT", {"default": 3.5, "min": 0.0, "max": 100.0, "step": 0.1}))
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"

    def append(self, conditioning, guidance):
        return ([[tokens, dict(values, guidance=guidance)] for tokens, values in conditioning],)


class VAEEncode:
    INPUT_TYPES = _types(pixels=("IMAGE",), vae=("VAE",))
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"

    def encode(self, vae, pixels):
        return ({"samples": vae.encode(pixels)},)


class VAEDecode:
    INPUT_TYPES = _types(samples=("LATENT",), vae=("VAE",))
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"

    def decode(self, vae, samples):
        return (vae.decode(samples["samples"]),)


class EmptySD3LatentImage:
    INPUT_TYPES = _types(width=("INT", {"default": 1024, "min": 16, "max": 16384, "step": 16}),
                         height=("INT", {"default": 1024, "min": 16, "max": 16384, "step": 16}),
                         batch_size=("INT", {"default": 1, "min": 1, "max": 4096}))
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "generate"

    def generate(self, width, height, batch_size=1):
        return ({"samples": torch.zeros(batch_size, CHANNELS, height // 8, width // 8)},)


class KSampler:
    INPUT_TYPES = _types(model=("MODEL",),
                         seed=("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}),
                         steps=("INT", {"default": 20, "min": 1, "max": 10000}),
                         cfg=("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
                         sampler_name=(["euler"],), scheduler=(["simple"],),
                         positive=("CONDITIONING",), negative=("CONDITIONING",), latent_image=("LATENT",),
                         denoise=("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}))
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    patched_keys = None  # how many patched weights the last call merged (for the test)

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0):
        base = model.model
        KSampler.patched_keys = len(model.patches)
        patched = copy.deepcopy(base)
        with torch.no_grad():
            patched.load_state_dict({k: model.patched_weight(k) if k in model.patches else v
                                   for k, v in base.state_dict().items()})
        sigmas = base.model_sampling.sigmas
        step = len(sigmas) / steps  # comfy/samplers.py:simple_scheduler
        schedule = torch.tensor([float(sigmas[-(1 + int(i * step))]) for i in range(steps)] + [0.0])
        latent = base.process_latent_in(latent_image["samples"])
        noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(seed))
        x = base.model_sampling.noise_scaling(schedule[:1], noise, latent)
        batch = latent.shape[0]

        def conds(conditioning):
            tokens, values = conditioning[0]
            made = patched.extra_conds(**dict(values, cross_attn=tokens, device=x.device, noise=x,
                                            width=x.shape[3] * 8, height=x.shape[2] * 8))
            return {name: cond.process_cond(batch_size=batch).cond for name, cond in made.items()}

        cond, uncond = conds(positive), conds(negative)
        with torch.no_grad():
            for i in range(steps):
                sigma = schedule[i].expand(batch)
                denoised = patched.apply_model(x, sigma, **cond)
                if cfg != 1.0:
                    unconditioned = patched.apply_model(x, sigma, **uncond)
                    denoised = unconditioned + cfg * (denoised - unconditioned)
                x = x + (x - denoised) / schedule[i] * (schedule[i + 1] - schedule[i])
        return ({"samples": base.process_latent_out(x)},)


FLUX_ONLY = (UNETLoader, DualCLIPLoader, VAELoader, FluxGuidance, EmptySD3LatentImage)


def register(shared=True):
    """Registers the stand-ins; shared=False leaves out the nodes the SD stand-ins also define
    (CLIPTextEncode, VAEEncode, VAEDecode, KSampler), for validating prompts only."""
    for cls in FLUX_ONLY + ((CLIPTextEncode, VAEEncode, VAEDecode, KSampler) if shared else ()):
        nodes.NODE_CLASS_MAPPINGS[cls.__name__] = cls
